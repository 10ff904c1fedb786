// The get command on one Ready connection (spec/PROTOCOL.md §9.9): GET → GET_OK → DATA… →
// GET_END. DATA goes through the receiving half the daemon uploads with (transfer/receiver.ts):
// in order into the local partial's write queue and into the running SHA-256, which starts from
// the kept prefix, so the check at GET_END covers the whole file. While the disk lags, the
// connection stops reading and TCP holds the server back. Publishing is the caller's.
import { createHash, timingSafeEqual, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { ResourceError, UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { WriteQueue } from '../../storage/write-queue.js';
import { ByteBudget } from '../../transfer/budget.js';
import { hashPrefix, readAtFd } from '../../transfer/file-hash.js';
import type { RunningHash } from '../../transfer/hasher.js';
import { Receiver } from '../../transfer/receiver.js';
import type { Connection } from '../connection.js';
import { deferred } from './deferred.js';
import { taking } from './frames.js';

const MiB = 1024 * 1024;
/** Bytes received and not yet written to the local partial before the connection stops reading. */
const MAX_QUEUED_BYTES = 16 * MiB;

type GetOk = Extract<Frame, { type: 'GET_OK' }>;
type GetEnd = Extract<Frame, { type: 'GET_END' }>;

/** The remote version a local prefix belongs to (GET's size and mtime, §9.9). */
export interface Version {
  readonly size: number;
  readonly mtime: number;
}

export interface GetRequest {
  readonly name: string;
  /** What a partial already holds of which version, to resume from. */
  readonly resume?: { readonly version: Version; readonly bytes: number } | undefined;
  /** Opens the local partial for the version GET_OK names, cut to `keep` bytes (0 for a new one). */
  readonly openPartial: (version: Version, keep: number) => Promise<FileHandle>;
}

export interface GetEvents {
  /** GET_OK: the file's size, and where its DATA starts (§9.9 step 2). */
  located?(size: number, offset: number): void;
  /** DATA up to `received` is in. */
  received?(received: number): void;
}

/** A verified download, its partial still open (the caller publishes or closes it). */
export interface Fetched {
  readonly fh: FileHandle;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly sha256: Buffer;
  /** Where this connection's DATA started. */
  readonly from: number;
}

/** SHA-256 on the event loop: a client hashes one download at a time. */
class LocalHash implements RunningHash {
  readonly backlogged = false;
  constructor(private readonly hash: Hash) {}
  update(data: Buffer, done?: () => void): void {
    this.hash.update(data);
    done?.();
  }
  drained(): Promise<void> {
    return Promise.resolve();
  }
  digest(): Promise<Buffer> {
    return Promise.resolve(this.hash.digest());
  }
  close(): void {
    // Nothing is held.
  }
  park(): void {
    // A client keeps no hashes across connections: the partial on disk is re-read.
  }
}

function same(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Runs one GET on `conn` (Ready); resolves once GET_END checked out against the bytes received. */
export async function getOn(conn: Connection, req: GetRequest, events: GetEvents = {}): Promise<Fetched> {
  const located = deferred<GetOk>();
  const ended = deferred<GetEnd>();
  const off = conn.onFailure((err) => {
    located.reject(err);
    ended.reject(err);
  });
  let receiver: Receiver | null = null;
  let queue: WriteQueue | null = null;
  let fh: FileHandle | null = null;
  const resume = req.resume;
  try {
    const get = { type: 'GET', name: req.name, offset: resume?.bytes ?? 0 } as const;
    conn.begin(resume === undefined ? get : { ...get, size: resume.version.size, mtime: resume.version.mtime }, taking(['GET_OK', 'DATA', 'GET_END'], 'a download', (f) => {
      switch (f.type) {
        case 'GET_OK':
          conn.progressed();
          if (f.offset > f.size || (f.offset !== 0 && f.offset !== get.offset)) {
            throw new UploadError('BAD_OFFSET', `the server starts at ${f.offset} of ${f.size} bytes; we asked for ${get.offset} or 0`);
          }
          // No DATA is taken until the local partial is ready for it (§11.2: DATA may follow at once).
          conn.holdReading();
          conn.channel.longRecords = true;
          located.resolve(f);
          return;
        case 'DATA': {
          conn.progressed();
          if (receiver === null) throw new ResourceError('INTERNAL', 'DATA before the download was ready');
          const r: Receiver = receiver;
          if (r.accept(f.offset, f.data)) {
            conn.holdReading();
            void r.drained().then(() => conn.releaseReading());
          }
          events.received?.(r.received);
          return;
        }
        case 'GET_END':
          conn.progressed();
          conn.channel.longRecords = false;
          ended.resolve(f);
          return;
      }
    }));
    const ok = await located.promise;
    events.located?.(ok.size, ok.offset);
    const opened = await req.openPartial({ size: ok.size, mtime: ok.mtime }, ok.offset);
    fh = opened;
    // The SHA-256 covers the whole file: the kept prefix is read back once (§9.9).
    const hash = await hashPrefix(readAtFd(opened.fd), { hash: createHash('sha256'), length: 0 }, ok.offset);
    const q = new WriteQueue(opened, { maxQueuedBytes: MAX_QUEUED_BYTES, startOffset: ok.offset }, new ByteBudget(2 * MAX_QUEUED_BYTES));
    queue = q;
    const running = new LocalHash(hash);
    receiver = new Receiver({ write: (o, d, done) => q.enqueue(o, d, done), get paused() { return q.paused; }, drained: () => q.drained() }, running, ok.offset, ok.size);
    events.received?.(ok.offset);
    conn.releaseReading();
    const end = await ended.promise;
    if (receiver.received !== ok.size) {
      throw new UploadError('BAD_OFFSET', `GET_END after ${receiver.received} of ${ok.size} bytes`);
    }
    await q.flush();
    await q.close();
    queue = null;
    const sha256 = await running.digest();
    const agreed = end.size === ok.size && same(end.sha256, sha256) && (ok.sha256 === undefined || same(ok.sha256, sha256));
    if (!agreed) throw new UploadError('INTEGRITY_FAILED', `the bytes of "${req.name}" do not match the SHA-256 the server sent`);
    fh = null;
    return { fh: opened, size: ok.size, mtime: ok.mtime, mode: ok.mode, sha256, from: ok.offset };
  } finally {
    off();
    conn.releaseReading();
    await queue?.close().catch(() => undefined);
    await fh?.close().catch(() => undefined);
  }
}
