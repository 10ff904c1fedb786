// One open upload (§9.1): in-order chunks into the .part file, checkpoints of the durable
// offset, and verified atomic publication under the final name.

import { timingSafeEqual } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { link, rename } from 'node:fs/promises';
import path from 'node:path';
import { ResourceError, UploadError } from '../../proto/errors.js';
import { resolveInside } from '../names.js';
import type { WriteQueue } from '../../storage/local/write-queue.js';
import { fsyncDir, unlinkIfPresent } from './fs-util.js';
import type { RunningHash } from '../../transfer/hasher.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import type { UploadLock } from './locks.js';
import type { PartialRecord } from './record.js';
import { writeRecord } from './record.js';

const SHA256_BYTES = 32;

/** Where an upload lives on disk; built by Store.open. */
export interface UploadPaths {
  readonly outDir: string;
  readonly components: readonly string[];
  readonly partialsDir: string;
  readonly partFile: string;
  readonly recordFile: string;
  /** `.stx/partials/<id>`, for messages. */
  readonly shown: string;
}

export interface UploadParts {
  /** The upload id (store/record.ts uploadId): its hash is parked under it on release (§9.7). */
  readonly id: string;
  readonly paths: UploadPaths;
  readonly record: PartialRecord;
  readonly fh: FileHandle;
  /** The O_DIRECT handle the queue writes aligned chunks through, if any; closed with fh. */
  readonly direct?: FileHandle | null;
  readonly queue: WriteQueue;
  /** SHA-256 state covering bytes [0, record.durable). */
  readonly hash: RunningHash;
  /** Bytes of the partial that were read back to rebuild `hash` (0 when it was parked). */
  readonly reread: number;
  /** Called once the partial upload is gone (published or discarded). */
  readonly forget: () => void;
  readonly lock: UploadLock;
  readonly appendOnly: boolean;
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
  /** OPEN_OK's offset. */
  readonly offset: number;
  readonly name: string;
  readonly size: number;
  /** The next offset a DATA frame must carry. */
  readonly received: number;
  /** The durable offset last recorded (what the last ACK said). */
  readonly durable: number;
  /** Bytes read back from disk before OPEN_OK (§9.7), for the log. */
  readonly reread: number;
  write(offset: number, data: Buffer, onWritten?: () => void): boolean;
  drained(): Promise<void>;
  checkpoint(): Promise<number>;
  /** END: `onProgress` hears of any read-back it needs (PROGRESS, §9.7). */
  finish(expectedSha256: Buffer, onProgress?: (done: number, total: number) => void): Promise<FinishResult>;
  release(): Promise<number>;
}

type UploadState = 'open' | 'finishing' | 'closed';

export class Upload implements OpenUpload {
  /** Where the client resumes: bytes already durable when OPEN was answered (OPEN_OK.offset). */
  readonly offset: number;
  readonly reread: number;
  readonly #id: string;
  readonly #forget: () => void;
  readonly #paths: UploadPaths;
  readonly #fh: FileHandle;
  readonly #direct: FileHandle | null;
  readonly #queue: WriteQueue;
  readonly #hash: RunningHash;
  readonly #lock: UploadLock;
  readonly #appendOnly: boolean;
  #record: PartialRecord;
  #received: number;
  #state: UploadState = 'open';
  #fileClosed = false;
  /** Serialises checkpoints, finish and release so that records are written one at a time. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(parts: UploadParts) {
    this.#id = parts.id;
    this.#forget = parts.forget;
    this.reread = parts.reread;
    this.#paths = parts.paths;
    this.#record = parts.record;
    this.#fh = parts.fh;
    this.#direct = parts.direct ?? null;
    this.#queue = parts.queue;
    this.#hash = parts.hash;
    this.#lock = parts.lock;
    this.#appendOnly = parts.appendOnly;
    this.offset = parts.record.durable;
    this.#received = parts.record.durable;
  }

  get name(): string {
    return this.#record.name;
  }
  get size(): number {
    return this.#record.size;
  }
  /** The next offset a DATA frame must carry. */
  get received(): number {
    return this.#received;
  }
  /** The durable offset last recorded (what the last ACK said). */
  get durable(): number {
    return this.#record.durable;
  }
  /** True while the caller should not read more DATA: the write queue is full or hashing lags. */
  get paused(): boolean {
    return this.#queue.paused || this.#hash.backlogged;
  }

  /**
   * Takes the next chunk (§9.1 step 3) and returns whether the caller should pause reading.
   * The upload keeps `data` until written: do not reuse or modify it before `onWritten` runs.
   */
  write(offset: number, data: Buffer, onWritten?: () => void): boolean {
    this.#assertOpen();
    if (offset !== this.#received) {
      throw new UploadError('BAD_OFFSET', `DATA at offset ${offset}, expected ${this.#received}`);
    }
    if (offset + data.length > this.#record.size) {
      throw new UploadError('BAD_OFFSET', `DATA ends at ${offset + data.length}, beyond the size ${this.#record.size}`);
    }
    // `data` is needed until it is both written and hashed.
    const release = onWritten === undefined ? undefined : afterBoth(onWritten);
    const pause = this.#queue.enqueue(offset, data, release);
    this.#hash.update(data, release);
    this.#received += data.length;
    return pause || this.#hash.backlogged;
  }

  /** Resolves once the caller may write again (at once if not paused). */
  async drained(): Promise<void> {
    await Promise.all([this.#queue.drained(), this.#hash.drained()]);
  }

  /** Makes written bytes durable, records the durable offset and returns it (the ACK offset). */
  async checkpoint(): Promise<number> {
    this.#assertOpen();
    return this.#serialise(() => this.#checkpoint());
  }

  /**
   * END (§9.1 steps 5–6): all `size` bytes must have arrived. Verifies SHA-256 and publishes the
   * file atomically under its final name; on a mismatch deletes the partial upload and throws
   * INTEGRITY_FAILED. The upload is closed afterwards whatever happens; on errors other than
   * INTEGRITY_FAILED and EXISTS the partial upload is kept for a resume.
   */
  async finish(expectedSha256: Buffer): Promise<FinishResult> {
    // The digest is kept up to date as data arrives: nothing to read back here.
    this.#assertOpen();
    if (this.#received !== this.#record.size) {
      throw new UploadError('BAD_OFFSET', `END after ${this.#received} of ${this.#record.size} bytes`);
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
    if (this.#state !== 'open') return this.#chain.then(() => this.#record.durable, () => this.#record.durable);
    this.#state = 'closed';
    // Already letting go: a same-identity OPEN meanwhile waits for the lock instead of BUSY.
    this.#lock.onReleaseRequest = () => undefined;
    return this.#serialise(async () => {
      try {
        await this.#queue.close();
        if (this.#queue.failure === undefined) await this.#checkpoint();
      } catch {
        // The record keeps the last durable offset; a resume starts from there.
      }
      // Everything hashed is durable: a resume can go on from this hash instead of re-reading
      // the partial (§9.7). Otherwise it is dropped (closeFile) and the resume re-reads.
      if (this.#queue.failure === undefined && this.#record.durable === this.#received) {
        this.#hash.park(this.#id, this.#received);
      }
      await this.#closeFile();
      this.#lock.release();
      return this.#record.durable;
    });
  }

  #assertOpen(): void {
    if (this.#state !== 'open') {
      throw new ResourceError('INTERNAL', `upload of "${this.#record.name}" is ${this.#state}`);
    }
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #checkpoint(): Promise<number> {
    const durable = await this.#queue.sync();
    if (durable !== this.#record.durable) {
      const record = { ...this.#record, durable, updated: Date.now() };
      await writeRecord(this.#paths.recordFile, this.#paths.partialsDir, record, `${this.#paths.shown}.json`);
      this.#record = record;
    }
    return durable;
  }

  async #finish(expected: Buffer): Promise<FinishResult> {
    const { partFile, outDir, components } = this.#paths;
    const shownPart = `${this.#paths.shown}.part`;
    const shownFinal = components.join('/');
    try {
      await this.#queue.sync();
      await this.#queue.close();
      const digest = await this.#hash.digest();
      if (expected.length !== SHA256_BYTES || !timingSafeEqual(digest, expected)) {
        await this.#discard();
        throw new UploadError('INTEGRITY_FAILED', `SHA-256 of "${shownFinal}" differs from END's`);
      }
      await this.#step('setting mode and mtime of', shownPart, async () => {
        await this.#fh.chmod(this.#record.mode & 0o777); // never setuid, setgid or sticky
        await this.#fh.utimes(new Date(), this.#record.mtime / 1000);
        await this.#fh.sync();
      });
      await this.#closeFile();
      // Directories may have been swapped for links since OPEN: check the whole path again.
      const finalPath = await resolveInside(outDir, components);
      if (this.#appendOnly) {
        // link() never replaces: an atomic no-clobber publish.
        try {
          await link(partFile, finalPath);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'publishing', shownFinal);
          await this.#discard();
          throw new UploadError('EXISTS', `"${shownFinal}" appeared during the upload`);
        }
        // The file is published; a leftover .part is only garbage for the sweep.
        await unlinkIfPresent(partFile).catch(() => undefined);
      } else {
        await this.#step('publishing', shownFinal, () => rename(partFile, finalPath));
      }
      await this.#step('syncing directory of', shownFinal, () => fsyncDir(path.dirname(finalPath)));
      // A leftover record without its .part restarts from 0 on OPEN and is swept.
      await unlinkIfPresent(this.#paths.recordFile).catch(() => undefined);
      this.#forget();
      return { name: this.#record.name, size: this.#record.size, sha256: digest, unchanged: false };
    } finally {
      this.#state = 'closed';
      await this.#closeFile();
      this.#lock.release();
    }
  }

  async #step<T>(what: string, where: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStxError(err, what, where);
    }
  }

  async #closeFile(): Promise<void> {
    if (this.#fileClosed) return;
    this.#fileClosed = true;
    this.#hash.close();
    await this.#queue.close();
    await this.#direct?.close().catch(() => undefined);
    await this.#fh.close().catch(() => undefined);
  }

  /** Deletes the partial upload and its record (after INTEGRITY_FAILED or EXISTS). */
  async #discard(): Promise<void> {
    await this.#closeFile();
    await this.#step('deleting', `${this.#paths.shown}.part`, () => unlinkIfPresent(this.#paths.partFile));
    await this.#step('deleting', `${this.#paths.shown}.json`, () => unlinkIfPresent(this.#paths.recordFile));
    this.#forget();
  }
}

/** A callback that runs `fn` on its second call. */
function afterBoth(fn: () => void): () => void {
  let calls = 0;
  return () => {
    if (++calls === 2) fn();
  };
}
