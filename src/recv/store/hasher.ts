// The SHA-256 of each upload as it arrives (§9.1), computed on a worker thread (hash-worker.ts):
// the event loop reads every socket and opens every record, and on a 2-core machine it was the
// receiver's bottleneck with hashing on it (DESIGN.md, "Where the CPU goes per GiB"). Buffers
// from BodyPool live in shared memory and are hashed in place; any other buffer is copied once.
// A hash that falls behind holds the buffers it has not read yet, so past MAX_HASH_BACKLOG_BYTES
// the upload asks its connection to stop reading, as a full write queue does (Upload.write).
// Where no worker thread can be started, uploads are hashed on the event loop as before.
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { ResourceError } from '../../proto/errors.js';
import { MAX_HASH_BACKLOG_BYTES } from '../config.js';
import { hashPrefix } from './file-hash.js';
import { toStxError } from './io-error.js';

/** Main thread → hashing thread. */
export type HashRequest =
  | { kind: 'open'; id: number; fd: number; length: number }
  | { kind: 'update'; id: number; memory: ArrayBuffer | SharedArrayBuffer; offset: number; length: number }
  | { kind: 'digest'; id: number }
  | { kind: 'close'; id: number };

/** Hashing thread → main thread: one reply per open, update and digest, in request order. */
export type HashReply =
  | { kind: 'opened'; id: number }
  | { kind: 'failed'; id: number; message: string; errno: string | undefined }
  | { kind: 'hashed'; id: number }
  | { kind: 'digest'; id: number; sha256: Uint8Array | null };

/** The running SHA-256 of one upload. */
export interface RunningHash {
  /** Adds the next bytes in stream order; `done` runs once `data` is not needed any more. */
  update(data: Buffer, done?: () => void): void;
  /** True while more than MAX_HASH_BACKLOG_BYTES wait to be hashed: stop feeding it. */
  readonly backlogged: boolean;
  /** Resolves once the hash is not backlogged. */
  drained(): Promise<void>;
  /** The SHA-256 of everything added. Call once; the hash is closed by it. */
  digest(): Promise<Buffer>;
  /** Drops the hash; buffers still waiting are released as the thread answers for them. */
  close(): void;
}

/** Hashing on the event loop: the fallback. */
class InlineHash implements RunningHash {
  readonly backlogged = false;
  readonly #hash = createHash('sha256');

  static async open(fh: FileHandle, length: number, shown: string): Promise<InlineHash> {
    const hash = new InlineHash();
    try {
      await hashPrefix(fh.fd, length, hash.#hash);
    } catch (err) {
      throw toStxError(err, 're-hashing', shown);
    }
    return hash;
  }

  update(data: Buffer, done?: () => void): void {
    this.#hash.update(data);
    done?.();
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  digest(): Promise<Buffer> {
    return Promise.resolve(this.#hash.digest());
  }

  close(): void {}
}

/** One upload's hash on the hashing thread. */
class WorkerHash implements RunningHash {
  /** Updates sent and not answered yet, oldest first: their bytes and release callbacks. */
  readonly #pending: { bytes: number; done: (() => void) | undefined }[] = [];
  #backlog = 0;
  #waiters: (() => void)[] = [];
  #digest: { resolve: (sha256: Buffer) => void; reject: (err: Error) => void } | null = null;
  #failure: Error | null = null;
  #closed = false;

  constructor(
    private readonly thread: HashThread,
    readonly id: number,
  ) {}

  get backlogged(): boolean {
    return this.#backlog > MAX_HASH_BACKLOG_BYTES;
  }

  /** Nothing is waiting for the thread's answer any more. */
  get settled(): boolean {
    return this.#closed && this.#pending.length === 0 && this.#digest === null;
  }

  update(data: Buffer, done?: () => void): void {
    if (this.#failure !== null || this.#closed) {
      done?.();
      return;
    }
    this.#backlog += data.length;
    if (data.buffer instanceof SharedArrayBuffer) {
      this.#pending.push({ bytes: data.length, done });
      this.thread.post(this, { kind: 'update', id: this.id, memory: data.buffer, offset: data.byteOffset, length: data.length });
      return;
    }
    const copy = new Uint8Array(data);
    done?.();
    this.#pending.push({ bytes: data.length, done: undefined });
    this.thread.post(this, { kind: 'update', id: this.id, memory: copy.buffer, offset: 0, length: copy.length }, [copy.buffer]);
  }

  drained(): Promise<void> {
    if (!this.backlogged) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  digest(): Promise<Buffer> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    if (this.#closed) return Promise.reject(new ResourceError('INTERNAL', 'digest of a closed hash'));
    this.#closed = true;
    return new Promise((resolve, reject) => {
      this.#digest = { resolve, reject };
      this.thread.post(this, { kind: 'digest', id: this.id });
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.thread.post(this, { kind: 'close', id: this.id });
  }

  onHashed(): void {
    const entry = this.#pending.shift();
    if (entry === undefined) return;
    this.#backlog -= entry.bytes;
    entry.done?.();
    if (!this.backlogged) this.#wake();
  }

  onDigest(sha256: Uint8Array | null): void {
    const waiting = this.#digest;
    this.#digest = null;
    if (sha256 === null) waiting?.reject(new ResourceError('INTERNAL', 'the hashing thread has no hash for this upload'));
    else waiting?.resolve(Buffer.from(sha256.buffer, sha256.byteOffset, sha256.length));
  }

  /** The thread is gone: release every buffer, fail the digest. */
  fail(err: Error): void {
    this.#failure ??= err;
    this.#closed = true;
    for (const entry of this.#pending.splice(0)) entry.done?.();
    this.#backlog = 0;
    this.#wake();
    this.#digest?.reject(err);
    this.#digest = null;
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}

/** The hashing thread and the uploads it serves. */
class HashThread {
  readonly #worker: Worker;
  readonly #hashes = new Map<number, WorkerHash>();
  readonly #opening = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  /** Requests that still expect a reply: while there are any, the thread keeps the process alive. */
  #outstanding = 0;
  #failure: Error | null = null;
  readonly online: Promise<void>;
  readonly #onGone: () => void;

  constructor(onGone: () => void) {
    this.#onGone = onGone;
    this.#worker = new Worker(new URL('./hash-worker.js', import.meta.url));
    // Kept alive until it is online, and then while requests wait for it (#expect).
    this.#outstanding = 1;
    this.online = new Promise((resolve, reject) => {
      this.#worker.once('online', () => {
        this.#expect(-1);
        resolve();
      });
      this.#worker.once('error', reject);
    });
    this.online.catch(() => undefined);
    this.#worker.on('message', (m: HashReply) => this.#onReply(m));
    this.#worker.on('error', (err) => this.#fail(new ResourceError('INTERNAL', `the hashing thread failed: ${err.message}`, { cause: err })));
    this.#worker.on('exit', (code) => this.#fail(new ResourceError('INTERNAL', `the hashing thread exited (code ${code})`)));
  }

  async open(fh: FileHandle, length: number, shown: string, id: number): Promise<RunningHash> {
    await new Promise<void>((resolve, reject) => {
      this.#opening.set(id, { resolve, reject });
      this.#send({ kind: 'open', id, fd: fh.fd, length });
    }).catch((err: unknown) => {
      // The same typed error as InlineHash.open; a thread that died is INTERNAL already.
      throw toStxError(err, 're-hashing', shown);
    });
    const hash = new WorkerHash(this, id);
    this.#hashes.set(id, hash);
    return hash;
  }

  post(hash: WorkerHash, request: HashRequest, transfer: ArrayBuffer[] = []): void {
    if (this.#failure !== null) {
      hash.fail(this.#failure);
      return;
    }
    if (request.kind !== 'close') this.#expect(1);
    this.#worker.postMessage(request, transfer);
    if (request.kind === 'close' && hash.settled) this.#hashes.delete(hash.id);
  }

  terminate(): Promise<void> {
    this.#fail(new ResourceError('INTERNAL', 'the hashing thread was stopped'));
    return this.#worker.terminate().then(() => undefined);
  }

  #send(request: HashRequest): void {
    if (this.#failure !== null) throw this.#failure;
    this.#expect(1);
    this.#worker.postMessage(request);
  }

  #expect(delta: number): void {
    const before = this.#outstanding;
    this.#outstanding += delta;
    if (before === 0 && this.#outstanding > 0) this.#worker.ref();
    if (before > 0 && this.#outstanding === 0) this.#worker.unref();
  }

  #onReply(m: HashReply): void {
    if (this.#failure !== null) return; // everything it answers for was failed already
    this.#expect(-1);
    if (m.kind === 'opened' || m.kind === 'failed') {
      const waiting = this.#opening.get(m.id);
      this.#opening.delete(m.id);
      if (m.kind === 'opened') waiting?.resolve();
      else waiting?.reject(Object.assign(new Error(m.message), { code: m.errno }));
      return;
    }
    const hash = this.#hashes.get(m.id);
    if (hash === undefined) return;
    if (m.kind === 'hashed') hash.onHashed();
    else hash.onDigest(m.sha256);
    if (hash.settled) this.#hashes.delete(m.id);
  }

  #fail(err: Error): void {
    if (this.#failure !== null) return;
    this.#failure = err;
    for (const hash of this.#hashes.values()) hash.fail(err);
    this.#hashes.clear();
    for (const waiting of this.#opening.values()) waiting.reject(err);
    this.#opening.clear();
    if (this.#outstanding > 0) this.#worker.unref();
    this.#outstanding = 0;
    this.#onGone();
  }
}

/**
 * Starts the hashes of uploads (Store.open): on the hashing thread, started ahead of time by
 * prepare() (Store.init) or on first use, and again after it failed (the uploads it served fail
 * with INTERNAL and resume), or inline where no thread starts.
 */
export class Hasher {
  #thread: HashThread | null = null;
  #inline = false;
  #nextId = 1;

  /** A running hash of the upload whose first `length` bytes are already in `fh` (resume, §9.2). */
  async open(fh: FileHandle, length: number, shown: string): Promise<RunningHash> {
    const thread = await this.#online();
    return thread === null ? InlineHash.open(fh, length, shown) : thread.open(fh, length, shown, this.#nextId++);
  }

  /**
   * Starts the thread now instead of at the first upload: a thread takes tens of milliseconds to
   * come up, which the first OPEN_OK would otherwise wait for.
   */
  async prepare(): Promise<void> {
    await this.#online();
  }

  /** Stops the thread; uploads it still serves fail with INTERNAL. */
  async stop(): Promise<void> {
    const thread = this.#thread;
    this.#thread = null;
    await thread?.terminate();
  }

  /** The running thread (started if need be), or null where hashing is inline. */
  async #online(): Promise<HashThread | null> {
    const thread = this.#inline ? null : this.#start();
    if (thread === null) return null;
    try {
      await thread.online;
      return thread;
    } catch {
      this.#inline = true;
      return null;
    }
  }

  #start(): HashThread | null {
    if (this.#thread !== null) return this.#thread;
    try {
      const thread = new HashThread(() => {
        if (this.#thread === thread) this.#thread = null;
      });
      this.#thread = thread;
      return thread;
    } catch {
      this.#inline = true;
      return null;
    }
  }
}
