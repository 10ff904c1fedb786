// The client's upload (spec/PROTOCOL.md §6, §9): handshake, OPEN, DATA from the server's offset,
// END, DONE; on a lost connection, reconnect with backoff and resume where the server says.
import { createHash, timingSafeEqual, type Hash, type KeyObject } from 'node:crypto';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { CryptoError, LocalError, ResourceError, StxError, UploadError } from '../proto/errors.js';
import type { Frame } from '../proto/frames.js';
import { alignedMemory, PAGE_BYTES } from '../runtime/aligned-memory.js';
import { HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS, MAX_DATA_CHUNK_BYTES, PING_INTERVAL_MS } from '../proto/limits.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';
import { ConnectFailed, Connection } from './connection.js';
import { handshake } from './handshake.js';

export interface UploadOptions {
  readonly host: string;
  readonly port: number;
  readonly file: string;
  readonly name: string;
  /** Pinned server fingerprint (§5); when set, known_hosts is not consulted. */
  readonly fingerprint?: string;
  readonly knownHostsFile: string;
  readonly identity?: KeyObject;
  /** Consecutive failed attempts (without progress) before giving up. */
  readonly retries: number;
  /**
   * Keep retrying a lost connection for this long without progress, even past `retries` (a pulled
   * cable): the upload gives up once both budgets are spent.
   */
  readonly retryForMs?: number | undefined;
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly connectTimeoutMs?: number;
  /** Connect + handshake must finish within this (default HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** After the handshake, a connection that receives nothing for this long is dropped and retried. */
  readonly idleTimeoutMs?: number | undefined;
  readonly onProgress?: ((p: Progress) => void) | undefined;
  readonly onEvent?: ((message: string) => void) | undefined;
}

/**
 * Where an attempt is, for the display: connecting (TCP, DNS), handshake (§6), verifying (the
 * server re-reads a partial before OPEN_OK, so nothing else moves), sending DATA, finishing (END
 * sent, waiting for DONE).
 */
export type Stage = 'connecting' | 'handshake' | 'verifying' | 'sending' | 'finishing';

export interface Progress {
  readonly stage: Stage;
  /** In 'verifying': bytes the server has read back so far (PROGRESS, §9.7), of `verifyTotal`. */
  readonly verified?: number;
  readonly verifyTotal?: number;
  readonly size: number;
  /** Bytes handed to the socket (this attempt's offset plus what followed). */
  readonly sent: number;
  /** Highest offset the server reported durable. */
  readonly durable: number;
  readonly reconnects: number;
}

export interface UploadResult {
  readonly file: string;
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly seconds: number;
  readonly bytes_per_second: number;
  readonly resumed_from: number;
  readonly reconnects: number;
  readonly server_fingerprint: string;
}

/** A problem with the file being sent itself: LOCAL_FILE (§10, exit 1). */
export class LocalFileError extends LocalError {
  constructor(message: string, options?: ErrorOptions) {
    super('LOCAL_FILE', message, options);
  }
}

/** Snapshots of the running hash every SNAPSHOT_EVERY bytes, so a resume re-reads little (§9.2). */
const SNAPSHOT_EVERY_BYTES = 64 * 1024 * 1024;
const MAX_SNAPSHOTS = 64;

/** The whole-file SHA-256 in stream order, resumable at any offset. */
class FileHasher {
  private hash: Hash = createHash('sha256');
  private at = 0;
  private readonly snapshots = new Map<number, Hash>([[0, createHash('sha256')]]);

  constructor(private readonly fh: FileHandle) {}

  get offset(): number {
    return this.at;
  }

  /** Positions the hash at `offset`: from the nearest snapshot at or below it, re-reading the rest. */
  async seek(offset: number, buf: Buffer): Promise<void> {
    if (offset === this.at) return;
    let base = 0;
    for (const k of this.snapshots.keys()) if (k <= offset && k > base) base = k;
    const snap = this.snapshots.get(base);
    if (snap === undefined) throw new Error('hash snapshot missing');
    this.hash = snap.copy();
    this.at = base;
    while (this.at < offset) {
      const want = Math.min(buf.length, offset - this.at);
      const { bytesRead } = await this.fh.read(buf, 0, want, this.at);
      if (bytesRead === 0) throw new LocalFileError('the file became shorter while uploading');
      this.update(buf.subarray(0, bytesRead));
    }
  }

  update(data: Buffer): void {
    let rest = data;
    while (rest.length > 0) {
      const toSnap = SNAPSHOT_EVERY_BYTES - (this.at % SNAPSHOT_EVERY_BYTES);
      const piece = rest.length > toSnap ? rest.subarray(0, toSnap) : rest;
      this.hash.update(piece);
      this.at += piece.length;
      rest = rest.subarray(piece.length);
      if (this.at % SNAPSHOT_EVERY_BYTES === 0 && !this.snapshots.has(this.at)) {
        this.snapshots.set(this.at, this.hash.copy());
        if (this.snapshots.size > MAX_SNAPSHOTS) {
          const oldest = [...this.snapshots.keys()].find((k) => k !== 0);
          if (oldest !== undefined) this.snapshots.delete(oldest);
        }
      }
    }
  }

  digest(): Buffer {
    return this.hash.copy().digest();
  }
}

/**
 * Reads the file a chunk at a time into two alternating buffers (one is sealed and sent while the
 * next is read). They come from page-aligned memory where WebAssembly provides it, and each read
 * lands at the same offset within a page as it has in the file: copies out of the page cache into
 * malloc'd buffers cost 4–5× more here (runtime/aligned-memory.ts).
 */
export class ChunkReader {
  readonly #slots: Buffer[];
  #next = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
  ) {
    const slot = MAX_DATA_CHUNK_BYTES + PAGE_BYTES;
    const memory = alignedMemory(2 * slot);
    this.#slots = [0, 1].map((i) => (memory === null ? Buffer.allocUnsafeSlow(slot) : Buffer.from(memory, i * slot, slot)));
  }

  /** A chunk-sized buffer for other reads (re-hashing on resume); the next read() overwrites it. */
  get scratch(): Buffer {
    return this.#slots[this.#next]?.subarray(0, MAX_DATA_CHUNK_BYTES) ?? Buffer.alloc(0);
  }

  /**
   * The bytes at `at`: up to one chunk, fewer where the file ends (empty past its end, or where it
   * became shorter). Valid until the next-but-one read().
   */
  async read(at: number): Promise<Buffer> {
    const slot = this.#slots[this.#next] ?? Buffer.alloc(0);
    this.#next ^= 1;
    if (at >= this.size) return slot.subarray(0, 0);
    const into = slot.subarray(at % PAGE_BYTES, (at % PAGE_BYTES) + Math.min(MAX_DATA_CHUNK_BYTES, this.size - at));
    const { bytesRead } = await this.fh.read(into, 0, into.length, at);
    return into.subarray(0, bytesRead);
  }
}

/**
 * The client collects V8's young generation after this many bytes sealed and sent: the ciphertext
 * buffers node:crypto allocated for them are garbage by then (young-gc.ts).
 */
const YOUNG_GC_INTERVAL_BYTES = 8 * 1024 * 1024;
const youngGc = new YoungGenerationCollector(YOUNG_GC_INTERVAL_BYTES);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a failed attempt should be retried: §10's transient column, nothing else. */
export function isTransient(err: unknown): boolean {
  return err instanceof StxError && err.transient;
}

export async function upload(opts: UploadOptions): Promise<UploadResult> {
  const st = await stat(opts.file).catch((err: unknown) => {
    throw new LocalFileError(`cannot read ${opts.file}: ${err instanceof Error ? err.message : String(err)}`);
  });
  if (!st.isFile()) throw new LocalFileError(`${opts.file} is not a regular file`);
  const fh = await open(opts.file, 'r').catch((err: unknown) => {
    throw new LocalFileError(`cannot open ${opts.file}: ${err instanceof Error ? err.message : String(err)}`);
  });
  const identity = { size: st.size, mtime: Math.floor(st.mtimeMs), mode: st.mode & 0o7777 };
  const started = Date.now();
  const hasher = new FileHasher(fh);
  const state: AttemptState = { reconnects: 0, resumedFrom: -1, durable: 0, fingerprint: '', handshakes: 0 };
  try {
    let failures = 0;
    /** When the current run of attempts without progress began (for --retry-for). */
    let failingSince = 0;
    for (;;) {
      const before = state.durable;
      try {
        const sha = await attempt(opts, fh, identity, hasher, state);
        const seconds = (Date.now() - started) / 1000;
        const bytes = identity.size;
        return {
          file: opts.file,
          name: opts.name,
          bytes,
          sha256: sha.toString('hex'),
          seconds,
          bytes_per_second: Math.round((bytes - Math.max(state.resumedFrom, 0)) / Math.max(seconds, 1e-6)),
          resumed_from: Math.max(state.resumedFrom, 0),
          reconnects: state.reconnects,
          server_fingerprint: state.fingerprint,
        };
      } catch (err) {
        if (!isTransient(err)) throw err;
        // Refused, or a name that does not resolve, before any handshake ever worked: a typo or a
        // server that is not running, which nine attempts over half a minute do not fix. Once a
        // handshake worked, the same errors mean the server is restarting or the link is down.
        if (err instanceof ConnectFailed && state.handshakes === 0) throw err;
        const now = Date.now();
        failures = state.durable > before ? 1 : failures + 1;
        if (failures === 1) failingSince = now;
        const withinTime = opts.retryForMs !== undefined && now - failingSince < opts.retryForMs;
        const reason = err instanceof Error ? err.message : String(err);
        if (failures > opts.retries && !withinTime) {
          const seconds = ((now - failingSince) / 1000).toFixed(1);
          throw new ResourceError('TIMEOUT', `gave up after ${failures} attempts without progress over ${seconds} s: ${reason}`, { cause: err });
        }
        const base = Math.min((opts.backoffMs ?? 250) * 2 ** (failures - 1), opts.maxBackoffMs ?? 10_000);
        const wait = Math.round(base / 2 + (Math.random() * base) / 2);
        const budget =
          opts.retryForMs === undefined
            ? `attempt ${failures + 1} of ${opts.retries + 1}`
            : `attempt ${failures + 1}, retrying for another ${Math.max(0, Math.ceil((opts.retryForMs - (now - failingSince)) / 1000))} s under --retry-for`;
        opts.onEvent?.(`${reason}; reconnecting in ${(wait / 1000).toFixed(1)} s (${budget})`);
        await sleep(wait);
        state.reconnects++;
      }
    }
  } finally {
    await fh.close();
  }
}

interface AttemptState {
  reconnects: number;
  resumedFrom: number;
  durable: number;
  fingerprint: string;
  /** Handshakes that succeeded, over all attempts: before the first, a refused connect is final. */
  handshakes: number;
}

interface FileIdentity {
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
}

/** One connection: returns the server-confirmed SHA-256, or throws. */
async function attempt(
  opts: UploadOptions,
  fh: FileHandle,
  file: FileIdentity,
  hasher: FileHasher,
  state: AttemptState,
): Promise<Buffer> {
  const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const idleMs = opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS;
  // The display shows each stage as it starts, so a slow connect or handshake is never a blank line.
  let stage: Stage = 'connecting';
  const report = (next: Stage, sent: number, verified?: { done: number; total: number }): void => {
    stage = next;
    // Called for every chunk sent: nothing is built when nobody listens (no terminal).
    if (opts.onProgress === undefined) return;
    const p = { stage, size: file.size, sent, durable: state.durable, reconnects: state.reconnects };
    opts.onProgress(verified === undefined ? p : { ...p, verified: verified.done, verifyTotal: verified.total });
  };
  report('connecting', state.durable);
  const conn = await Connection.connect(opts.host, opts.port, opts.connectTimeoutMs ?? handshakeMs);
  let pinger: NodeJS.Timeout | null = null;
  try {
    // Handshake (§6), trust (§5) included.
    report('handshake', state.durable);
    state.fingerprint = await handshake(conn, { ...opts, handshakeTimeoutMs: handshakeMs });
    state.handshakes++;
    // A server that goes silent (a black hole, not a close) must not hang us: PINGs ask for an
    // answer, and nothing received for idleMs drops the connection, which is then retried.
    conn.dropWhenIdle(idleMs);

    // OPEN → OPEN_OK (§9.1).
    conn.send({ type: 'OPEN', name: opts.name, size: file.size, mtime: file.mtime, mode: file.mode });
    // The server may have to read its partial back first: PROGRESS until OPEN_OK (§9.7).
    const verifying = (f: Extract<Frame, { type: 'PROGRESS' }>): void => report('verifying', state.durable, f);
    let ok = await conn.next(idleMs);
    while (ok.frame.type === 'PROGRESS') {
      verifying(ok.frame);
      ok = await conn.next(idleMs);
    }
    if (ok.frame.type !== 'OPEN_OK') throw new CryptoError('HANDSHAKE_FAILED', 'expected OPEN_OK');
    const offset = ok.frame.offset;
    if (offset > file.size) throw new UploadError('BAD_OFFSET', `server offset ${offset} is past the file size ${file.size}`);
    if (state.resumedFrom < 0) state.resumedFrom = offset;
    if (offset > 0) opts.onEvent?.(`the server holds ${offset} of ${file.size} bytes; resuming from there`);
    state.durable = Math.max(state.durable, offset);

    // Frames from here on arrive while we send: ACK, PONG, DONE, or an error that ends it all.
    let done: ((f: Extract<Frame, { type: 'DONE' }>) => void) | null = null;
    const doneFrame = new Promise<Extract<Frame, { type: 'DONE' }>>((resolve, reject) => {
      done = resolve;
      conn.onFailure(reject);
    });
    doneFrame.catch(() => undefined);
    // ACK says what is durable (§4, §9.1): never more than was sent, never less than before. A
    // server that says otherwise could fake progress and keep the retries from ever running out.
    let acked = offset;
    conn.handle((f) => {
      if (f.type === 'ACK') {
        const sent = Math.max(hasher.offset, offset);
        if (f.offset < acked || f.offset > sent) {
          throw new UploadError('BAD_OFFSET', `the server acknowledged offset ${f.offset}, outside what it may hold (${acked} to the ${sent} bytes sent)`);
        }
        acked = f.offset;
        state.durable = Math.max(state.durable, f.offset);
        report(stage, hasher.offset);
      } else if (f.type === 'PROGRESS') verifying(f);
      else if (f.type === 'DONE') done?.(f);
    });
    pinger = setInterval(() => {
      try {
        conn.send({ type: 'PING', seq: Date.now() });
      } catch {
        // The failure surfaces through the connection.
      }
    }, Math.min(PING_INTERVAL_MS, Math.max(Math.floor(idleMs / 4), 100)));

    // DATA (§9.1 step 3), reading ahead one chunk while the last one is sealed and sent.
    const reader = new ChunkReader(fh, file.size);
    await hasher.seek(offset, reader.scratch);
    report('sending', offset);
    let pos = offset;
    let pending = reader.read(pos);
    while (pos < file.size) {
      const chunk = await pending;
      const n = chunk.length;
      if (n === 0) throw new LocalFileError(`${opts.file} became shorter while uploading`);
      hasher.update(chunk);
      if (conn.channel.nearKeyLimit(n + 9)) throw new CryptoError('KEY_LIMIT', 'per-connection key limit reached; reconnecting with new keys');
      const flowing = conn.sendData(pos, chunk);
      youngGc.dropped(n);
      pos += n;
      pending = reader.read(pos);
      if (!flowing) await conn.drain();
      report('sending', pos);
    }
    await pending;

    // END → DONE (§9.1 steps 5–6).
    const now = await stat(opts.file);
    if (now.size !== file.size || Math.floor(now.mtimeMs) !== file.mtime) {
      throw new LocalFileError(`${opts.file} changed while it was being uploaded; run stx-send again to send the new version`);
    }
    const sha = hasher.digest();
    conn.send({ type: 'END', sha256: sha });
    report('finishing', file.size);
    const result = await doneFrame;
    if (result.size !== file.size || result.sha256.length !== sha.length || !timingSafeEqual(result.sha256, sha)) {
      throw new UploadError('INTEGRITY_FAILED', 'the server confirmed a different size or SHA-256 than the file has');
    }
    state.durable = file.size;
    conn.close();
    return sha;
  } catch (err) {
    // Tell the server what went wrong, unless it told us, the link is gone, or the server is not
    // the one we trust (an impostor learns nothing from us, not even why, §5).
    const tell = err instanceof StxError && !err.local && !('reported' in err) && err.code !== 'SERVER_KEY_MISMATCH';
    conn.close(tell ? err : undefined);
    throw err;
  } finally {
    if (pinger !== null) clearInterval(pinger);
  }
}
