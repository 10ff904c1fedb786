// The SHA-256 of each upload as it arrives (§9.1), computed on a worker thread (hash-worker.ts):
// the event loop reads every socket and opens every record, and on a 2-core machine it was the
// receiver's bottleneck with hashing on it (DESIGN.md, "Where the CPU goes per GiB"). Buffers
// from BodyPool live in shared memory and are hashed in place; any other buffer is copied once.
// A hash that falls behind holds the buffers it has not read yet, so past MAX_HASH_BACKLOG_BYTES
// the upload asks its connection to stop reading, as a full write queue does (Upload.write).
// Where no worker thread can be started, uploads are hashed on the event loop as before; so are
// re-reads of stored bytes that are not an open file (HashSource without fd: storage/memory.ts),
// and uploads of at most INLINE_HASH_MAX_BYTES in all (HashOpen.size), whose hand-offs would cost
// more than their hashing.
// An interrupted upload's hash is parked, not dropped (RunningHash.park): its resume takes it
// back instead of reading the whole partial again (§9.7).
import { type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { ResourceError } from '../proto/errors.js';
import { INLINE_HASH_MAX_BYTES, MAX_HASH_BACKLOG_BYTES } from './config.js';
import { hashPrefix, ParkedHashes, ParkedLengths, readAtFd, RehashCancelled, type ReadAt } from './file-hash.js';
import { toStxError } from './io-error.js';

/** Main thread → hashing thread. */
export type HashRequest =
  | { kind: 'open'; id: number; fd: number; length: number; key: string | null }
  | { kind: 'update'; id: number; memory: ArrayBuffer | SharedArrayBuffer; offset: number; length: number }
  | { kind: 'digest'; id: number }
  | { kind: 'park'; id: number; key: string; length: number }
  | { kind: 'cancel'; id: number }
  | { kind: 'drop'; key: string }
  | { kind: 'close'; id: number };

/**
 * Hashing thread → main thread: one reply per open, update and digest, in request order, and
 * any number of progress notes while an open re-reads a file.
 */
export type HashReply =
  | { kind: 'opened'; id: number; reused: number }
  | { kind: 'failed'; id: number; message: string; errno: string | undefined; cancelled: boolean }
  | { kind: 'progress'; id: number; done: number }
  | { kind: 'hashed'; id: number }
  | { kind: 'digest'; id: number; sha256: Uint8Array | null };

/**
 * What a re-read reads: an open file (`fd`; a FileHandle is one), read on the hashing thread, or
 * else positional reads (`readAt`), on the event loop.
 */
export interface HashSource {
  readonly fd?: number | undefined;
  readonly readAt?: ReadAt | undefined;
}

/** How to start an upload's hash (Hasher.open). */
export interface HashOpen {
  /**
   * The upload id: a hash parked under it is taken back instead of re-reading (§9.7). Null for a
   * one-off read (a published file, §9.5): nothing is taken or parked.
   */
  readonly key: string | null;
  /** Bytes of the re-read done so far (for PROGRESS, §9.7). */
  readonly onProgress?: ((done: number) => void) | undefined;
  /** Aborting stops a re-read; what it read is parked under `key`. */
  readonly signal?: AbortSignal | undefined;
  /**
   * The upload's whole size, when known: one of at most INLINE_HASH_MAX_BYTES is hashed on the
   * event loop, its parked hash kept there too.
   */
  readonly size?: number | undefined;
}

/** A started hash and how many bytes had to be read back from the file for it. */
export interface OpenedHash {
  readonly hash: RunningHash;
  readonly reread: number;
}

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
  /**
   * Closes the hash but keeps its state for the next open of `key`, provided it covers exactly
   * `length` bytes (the upload's durable prefix); otherwise just closes it.
   */
  park(key: string, length: number): void;
}

/** The typed error of a failed re-read: cancelled (the connection went away) or I/O. */
function rehashError(err: unknown, shown: string): Error {
  if (err instanceof RehashCancelled || (err instanceof Error && 'cancelled' in err && err.cancelled === true)) {
    return new ResourceError('INTERNAL', `re-hashing ${shown} was cancelled`, { cause: err });
  }
  return toStxError(err, 're-hashing', shown);
}

/** Hashing on the event loop: the fallback. */
class InlineHash implements RunningHash {
  readonly backlogged = false;
  #length: number;
  #closed = false;

  private constructor(
    private readonly hash: Hash,
    length: number,
    private readonly parked: ParkedHashes,
  ) {
    this.#length = length;
  }

  static async open(readAt: ReadAt, length: number, shown: string, how: HashOpen, parked: ParkedHashes): Promise<OpenedHash> {
    const from = parked.take(how.key, length);
    try {
      const hash = await hashPrefix(readAt, from, length, { onProgress: how.onProgress, cancelled: () => how.signal?.aborted === true });
      return { hash: new InlineHash(hash, length, parked), reread: length - from.length };
    } catch (err) {
      if (err instanceof RehashCancelled) parked.park(how.key, err.partial);
      throw rehashError(err, shown);
    }
  }

  update(data: Buffer, done?: () => void): void {
    this.hash.update(data);
    this.#length += data.length;
    done?.();
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  digest(): Promise<Buffer> {
    this.#closed = true;
    return Promise.resolve(this.hash.digest());
  }

  close(): void {
    this.#closed = true;
  }

  park(key: string, length: number): void {
    if (!this.#closed && length === this.#length) this.parked.park(key, { hash: this.hash, length });
    this.#closed = true;
  }
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

  park(key: string, length: number): void {
    if (this.#closed) return;
    this.#closed = true;
    // The thread answers every update sent before this first, so the length it checks is final.
    this.thread.post(this, { kind: 'park', id: this.id, key, length });
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
  readonly #opening = new Map<
    number,
    { resolve: (reused: number) => void; reject: (err: Error) => void; onProgress: ((done: number) => void) | undefined }
  >();
  /** Requests that still expect a reply: while there are any, the thread keeps the process alive. */
  #outstanding = 0;
  #failure: Error | null = null;
  readonly online: Promise<void>;
  readonly #onGone: () => void;
  /** What this thread has parked, as far as the main thread knows (Hasher.parkedLength). */
  readonly parked = new ParkedLengths();

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

  async open(fd: number, length: number, shown: string, id: number, how: HashOpen): Promise<OpenedHash> {
    const cancel = (): void => {
      if (this.#opening.has(id) && this.#failure === null) this.#worker.postMessage({ kind: 'cancel', id } satisfies HashRequest);
    };
    how.signal?.addEventListener('abort', cancel, { once: true });
    if (how.key !== null) this.parked.forget(how.key); // taken by this open
    const reused = await new Promise<number>((resolve, reject) => {
      this.#opening.set(id, { resolve, reject, onProgress: how.onProgress });
      this.#send({ kind: 'open', id, fd, length, key: how.key });
      if (how.signal?.aborted === true) cancel();
    })
      .catch((err: unknown) => {
        // The same typed error as InlineHash.open; a thread that died is INTERNAL already.
        throw rehashError(err, shown);
      })
      .finally(() => how.signal?.removeEventListener('abort', cancel));
    const hash = new WorkerHash(this, id);
    this.#hashes.set(id, hash);
    return { hash, reread: length - reused };
  }

  /** Forgets a parked hash (its partial upload is gone). */
  drop(key: string): void {
    this.parked.forget(key);
    if (this.#failure === null) this.#worker.postMessage({ kind: 'drop', key } satisfies HashRequest);
  }

  post(hash: WorkerHash, request: HashRequest, transfer: ArrayBuffer[] = []): void {
    if (this.#failure !== null) {
      hash.fail(this.#failure);
      return;
    }
    if (request.kind === 'park') this.parked.park(request.key, request.length);
    const answered = request.kind === 'update' || request.kind === 'digest';
    if (answered) this.#expect(1);
    this.#worker.postMessage(request, transfer);
    if (!answered && hash.settled) this.#hashes.delete(hash.id);
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
    if (m.kind === 'progress') {
      this.#opening.get(m.id)?.onProgress?.(m.done);
      return;
    }
    this.#expect(-1);
    if (m.kind === 'opened' || m.kind === 'failed') {
      const waiting = this.#opening.get(m.id);
      this.#opening.delete(m.id);
      if (m.kind === 'opened') waiting?.resolve(m.reused);
      else waiting?.reject(Object.assign(new Error(m.message), { code: m.errno, cancelled: m.cancelled }));
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
  /** Parked hashes of the inline fallback (the thread keeps its own). */
  readonly #parked = new ParkedHashes();

  /**
   * A running hash of the upload whose first `length` bytes are already in `source` (resume,
   * §9.2): the hash parked under `how.key` extended to `length`, or the bytes read back from 0.
   */
  async open(source: HashSource, length: number, shown: string, how: HashOpen): Promise<OpenedHash> {
    const { fd, readAt } = source;
    if (fd === undefined) {
      if (readAt === undefined) throw new ResourceError('INTERNAL', `nothing to re-read ${shown} from`);
      return InlineHash.open(readAt, length, shown, how, this.#parked);
    }
    if (how.size !== undefined && how.size <= INLINE_HASH_MAX_BYTES && this.#inlineFor(how.key, length)) {
      return InlineHash.open(readAtFd(fd), length, shown, how, this.#parked);
    }
    const thread = await this.#online();
    return thread === null
      ? InlineHash.open(readAtFd(fd), length, shown, how, this.#parked)
      : thread.open(fd, length, shown, this.#nextId++, how);
  }

  /**
   * Bytes of upload `key` covered by its parked hash (0 if none, as far as this thread knows): an
   * open of it up to `length` reads back `length` minus this (§9.7).
   */
  parkedLength(key: string): number {
    return this.#parked.lengthOf(key) || (this.#thread?.parked.lengthOf(key) ?? 0);
  }

  /**
   * Whether a small upload's hash may be kept on the event loop: not if the hashing thread has
   * its parked hash of the prefix to go on from (a ranged upload's, hashed ahead there). A new
   * upload (`length` 0) never goes on from one, so the thread's is dropped.
   */
  #inlineFor(key: string | null, length: number): boolean {
    const thread = this.#thread;
    if (key === null || thread === null || thread.parked.lengthOf(key) === 0) return true;
    if (length > 0) return false;
    thread.drop(key);
    return true;
  }

  /** Forgets the parked hash of upload `key` (deleted or published). */
  drop(key: string): void {
    this.#parked.drop(key);
    this.#thread?.drop(key);
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
