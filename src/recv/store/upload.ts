// One open upload (§9.1), the policy side: in-order chunks, their SHA-256, checkpoints of the
// durable offset, and verified publication under the final name. Where the bytes go is the
// storage backend's (storage/backend.ts PartialUpload).

import { timingSafeEqual } from 'node:crypto';
import { ResourceError, StxError, UploadError } from '../../proto/errors.js';
import type { PartialMeta, PartialUpload } from '../../storage/backend.js';
import type { RunningHash } from '../../transfer/hasher.js';
import { Receiver, type Held } from '../../transfer/receiver.js';
import type { UploadLock } from './locks.js';

const SHA256_BYTES = 32;

export interface UploadParts {
  /** The upload id (upload-id.ts): its hash is parked under it on release (§9.7). */
  readonly id: string;
  /** What OPEN said: the name as published, size, mode and mtime. */
  readonly meta: PartialMeta;
  readonly partial: PartialUpload;
  /** SHA-256 state covering bytes [0, partial.durable). */
  readonly hash: RunningHash;
  /** Bytes of the partial that were read back to rebuild `hash` (0 when it was parked). */
  readonly reread: number;
  /** Called once the partial upload is gone (published or discarded). */
  readonly forget: () => void;
  readonly lock: UploadLock;
  readonly appendOnly: boolean;
  /** Permission bits the published file never gets (the daemon's umask, §4). */
  readonly umask: number;
  /** A stream of unknown length (§9.8): `meta.size` is only its limit; END says the length. */
  readonly stream?: boolean;
}

export interface FinishResult {
  /** The remote name as published. */
  readonly name: string;
  readonly size: number;
  readonly sha256: Buffer;
  /** True when the file was already there with this content and nothing was written (§9.5). */
  readonly unchanged: boolean;
}

/** What a connection holds between OPEN_OK and DONE: an Upload, or a SameFileCheck (§9.5). */
export interface OpenUpload {
  /** The upload id (upload-id.ts), e.g. for logs. */
  readonly id: string;
  /** OPEN_OK's offset. */
  readonly offset: number;
  readonly name: string;
  readonly size: number;
  /** A stream of unknown length (§9.8): END carries its size, and `size` is what arrived so far. */
  readonly stream: boolean;
  /** The next offset a DATA frame must carry. */
  readonly received: number;
  /** The durable offset last recorded (what the last ACK said). */
  readonly durable: number;
  /** Bytes read back from disk before OPEN_OK (§9.7), for the log. */
  readonly reread: number;
  /** The next chunk; `held` (its buffer's lease) passes to the upload unless this throws. */
  write(offset: number, data: Buffer, held?: Held): boolean;
  drained(): Promise<void>;
  checkpoint(): Promise<number>;
  /** END: `onProgress` hears of any read-back it needs (PROGRESS, §9.7); `endSize` is END's `size`, if any. */
  finish(expectedSha256: Buffer, onProgress?: (done: number, total: number) => void, endSize?: number): Promise<FinishResult>;
  release(): Promise<number>;
}

type UploadState = 'open' | 'finishing' | 'closed';

export class Upload implements OpenUpload {
  /** Where the client resumes: bytes already durable when OPEN was answered (OPEN_OK.offset). */
  readonly offset: number;
  readonly reread: number;
  readonly id: string;
  readonly stream: boolean;
  readonly #forget: () => void;
  readonly #meta: PartialMeta;
  readonly #partial: PartialUpload;
  readonly #hash: RunningHash;
  readonly #lock: UploadLock;
  readonly #appendOnly: boolean;
  readonly #umask: number;
  readonly #receiver: Receiver;
  #state: UploadState = 'open';
  #fileClosed = false;
  /** Serialises checkpoints, finish and release so that records are written one at a time. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(parts: UploadParts) {
    this.id = parts.id;
    this.#forget = parts.forget;
    this.reread = parts.reread;
    this.#meta = parts.meta;
    this.#partial = parts.partial;
    this.#hash = parts.hash;
    this.#lock = parts.lock;
    this.#appendOnly = parts.appendOnly;
    this.#umask = parts.umask;
    this.offset = parts.partial.durable;
    this.stream = parts.stream === true;
    this.#receiver = new Receiver(parts.partial, parts.hash, parts.partial.durable, parts.meta.size);
  }

  get name(): string {
    return this.#meta.name;
  }
  get size(): number {
    return this.stream ? this.#receiver.received : this.#meta.size;
  }
  /** The next offset a DATA frame must carry. */
  get received(): number {
    return this.#receiver.received;
  }
  /** The durable offset last recorded (what the last ACK said). */
  get durable(): number {
    return this.#partial.durable;
  }
  /** True while the caller should not read more DATA: the write queue is full or hashing lags. */
  get paused(): boolean {
    return this.#receiver.paused;
  }

  /**
   * Takes the next chunk (§9.1 step 3) and returns whether the caller should pause reading.
   * The upload keeps `data` until written and hashed (transfer/receiver.ts): do not reuse or
   * modify it before `held` is released.
   */
  write(offset: number, data: Buffer, held?: Held): boolean {
    this.#assertOpen();
    // A stream has no size to be beyond, only the quota (§9.8).
    if (this.stream && offset === this.#receiver.received && offset + data.length > this.#meta.size) {
      throw new UploadError('TOO_LARGE', `the stream exceeds the limit of ${this.#meta.size} bytes`);
    }
    return this.#receiver.accept(offset, data, held);
  }

  /** Resolves once the caller may write again (at once if not paused). */
  drained(): Promise<void> {
    return this.#receiver.drained();
  }

  /** Makes written bytes durable, records the durable offset and returns it (the ACK offset). */
  async checkpoint(): Promise<number> {
    this.#assertOpen();
    return this.#serialise(() => this.#partial.checkpoint());
  }

  /**
   * END (§9.1 steps 5–6): all `size` bytes must have arrived. Verifies SHA-256 and publishes the
   * file atomically under its final name; on a mismatch deletes the partial upload and throws
   * INTEGRITY_FAILED. The upload is closed afterwards whatever happens; on errors other than
   * INTEGRITY_FAILED and EXISTS the partial upload is kept for a resume.
   */
  async finish(expectedSha256: Buffer, _onProgress?: unknown, endSize?: number): Promise<FinishResult> {
    // The digest is kept up to date as data arrives: nothing to read back here.
    this.#assertOpen();
    const received = this.#receiver.received;
    if (this.stream) {
      // A stream's END says how long it was (§9.8).
      if (endSize !== received) throw new UploadError('BAD_OFFSET', `stream END says ${endSize ?? 'no'} size after ${received} bytes`);
    } else if (received !== this.#meta.size || (endSize !== undefined && endSize !== this.#meta.size)) {
      throw new UploadError('BAD_OFFSET', `END after ${received} of ${this.#meta.size} bytes${endSize === undefined ? '' : ` (END says ${endSize})`}`);
    }
    this.#state = 'finishing';
    return this.#serialise(() => this.#finish(expectedSha256));
  }

  /**
   * Teardown: lets queued writes finish, makes them durable and records the offset (best
   * effort), closes the file and drops the lock. Keeps the partial upload for a resume.
   * Never rejects; resolves to the recorded durable offset. Safe to call more than once.
   */
  release(): Promise<number> {
    const partial = this.#partial;
    if (this.#state !== 'open') return this.#chain.then(() => partial.durable, () => partial.durable);
    this.#state = 'closed';
    // Already letting go: a same-identity OPEN meanwhile waits for the lock instead of BUSY.
    this.#lock.onReleaseRequest = () => undefined;
    return this.#serialise(async () => {
      try {
        await partial.endWrites();
        if (partial.failure === undefined) await partial.checkpoint();
      } catch {
        // The record keeps the last durable offset; a resume starts from there.
      }
      // Everything hashed is durable: a resume can go on from this hash instead of re-reading
      // the partial (§9.7). Otherwise it is dropped (closeFile) and the resume re-reads.
      if (partial.failure === undefined && partial.durable === this.#receiver.received) {
        this.#hash.park(this.id, this.#receiver.received);
      }
      await this.#closeFile();
      this.#lock.release();
      return partial.durable;
    });
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ResourceError('INTERNAL', `upload of "${this.#meta.name}" is ${this.#state}`);
    }
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #finish(expected: Buffer): Promise<FinishResult> {
    const partial = this.#partial;
    const shownFinal = this.#meta.name;
    try {
      await partial.endWrites();
      if (partial.failure !== undefined) throw partial.failure;
      const digest = await this.#hash.digest();
      if (expected.length !== SHA256_BYTES || !timingSafeEqual(digest, expected)) {
        await this.#discard();
        throw new UploadError('INTEGRITY_FAILED', `SHA-256 of "${shownFinal}" differs from END's`);
      }
      const how = this.#appendOnly ? 'no-clobber' : 'replace';
      try {
        // never setuid, setgid or sticky, and nothing the daemon's umask takes away (§4)
        // with the SHA-256 just verified, for listings and identical re-sends (§9.10, §9.1)
        await partial.publish(shownFinal, { mode: this.#meta.mode & 0o777 & ~this.#umask, mtime: this.#meta.mtime, how, sha256: digest });
      } catch (err) {
        if (!(err instanceof StxError && err.code === 'EXISTS')) throw err;
        await this.#discard();
        throw new UploadError('EXISTS', `"${shownFinal}" appeared during the upload`);
      }
      this.#forget();
      return { name: this.#meta.name, size: this.size, sha256: digest, unchanged: false };
    } finally {
      this.#state = 'closed';
      await this.#closeFile();
      this.#lock.release();
    }
  }

  async #closeFile(): Promise<void> {
    if (this.#fileClosed) return;
    this.#fileClosed = true;
    this.#hash.close();
    await this.#partial.close();
  }

  /** Deletes the partial upload and its record (after INTEGRITY_FAILED or EXISTS). */
  async #discard(): Promise<void> {
    this.#fileClosed = true;
    this.#hash.close();
    await this.#partial.discard();
    this.#forget();
  }
}
