// One open partial upload on local disk (§9.2): the bytes in <id>.part, written through the write
// queue (aligned chunks by O_DIRECT), made durable by fdatasync, and the durable offset in the
// crash-safe <id>.json record. Published by rename (replace) or link (no-clobber) after fsync.

import { fchmodSync, fstatSync, futimesSync, linkSync, renameSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { readAtFd } from '../../transfer/file-hash.js';
import type { PartialMeta, PartialUpload, PositionalReader, PublishOptions } from '../backend.js';
import { RECORD_VERSION } from '../backend.js';
import { fsyncDir, unlinkIfPresent, unlinkIfPresentSync } from './fs-util.js';
import { prepareParents, removeCreated, stampOf, type PathCounters } from './paths.js';
import { RecordFile } from './record.js';
import type { SumRecords } from './sums.js';
import { QueuedPartial } from '../queued-partial.js';
import type { WriteQueue } from '../write-queue.js';

/** Where a partial lives on disk; built by LocalBackend.openPartial. */
export interface PartialPaths {
  readonly outDir: string;
  /** outDir with its links resolved: a name's directories must resolve under it (paths.ts). */
  readonly realOutDir: string;
  /** The backend's count of path checks and directories made (paths.ts). */
  readonly counters: PathCounters;
  readonly partialsDir: string;
  readonly partFile: string;
  readonly recordFile: string;
  /** `.stx/partials/<id>`, for messages. */
  readonly shown: string;
  /** Where a published file's SHA-256 is recorded (sums.ts). */
  readonly sums: SumRecords;
}

export interface LocalPartialParts {
  readonly id: string;
  readonly paths: PartialPaths;
  readonly meta: PartialMeta;
  /** Bytes kept from the resumed record (the file was cut to them). */
  readonly durable: number;
  /** The resumed record's creation time, or now. */
  readonly created: number;
  /** The resumed record's last progress, or `created`. */
  readonly updated: number;
  readonly fh: FileHandle;
  /** The O_DIRECT handle the queue writes aligned chunks through, if any; closed with fh. */
  readonly direct: FileHandle | null;
  readonly queue: WriteQueue;
  /** Runs once the partial is closed (the backend forgets it is open). */
  readonly onClose: () => void;
  /** True when the partial was opened from a record (a resume): its record file is there. */
  readonly resumed: boolean;
}

export class LocalPartial extends QueuedPartial implements PartialUpload {
  readonly id: string;
  readonly prefix: PositionalReader;
  readonly #paths: PartialPaths;
  readonly #fh: FileHandle;
  readonly #direct: FileHandle | null;
  readonly #onClose: () => void;
  /** The record, kept open between checkpoints (record.ts). */
  readonly #record: RecordFile;
  /** False until the first checkpoint wrote this open's record. */
  #recorded = false;
  /**
   * False while no record of this partial can be on disk: a new partial's first checkpoint writes
   * it (issue 15). Its publish then has no record to delete, and skips the failing unlink.
   */
  #recordMayExist: boolean;
  /** Bytes made durable by the last sync (the queue's offset then). */
  #synced: number;
  #closed = false;

  constructor(parts: LocalPartialParts) {
    super(parts.queue, { version: RECORD_VERSION, ...parts.meta, durable: parts.durable, created: parts.created, updated: parts.updated });
    this.id = parts.id;
    this.#paths = parts.paths;
    this.#fh = parts.fh;
    this.#direct = parts.direct;
    this.#onClose = parts.onClose;
    this.#synced = parts.durable;
    this.#recordMayExist = parts.resumed;
    this.#record = new RecordFile(parts.paths.recordFile, parts.paths.partialsDir, `${parts.paths.shown}.json`);
    this.prefix = { fd: parts.fh.fd, readAt: readAtFd(parts.fh.fd) };
  }

  get shown(): string {
    return `${this.#paths.shown}.part`;
  }
  async checkpoint(): Promise<number> {
    const failure = this.queue.failure;
    if (failure !== undefined) throw failure;
    // Nothing written since the last sync (e.g. the first checkpoint after open): no fdatasync.
    const durable = this.queue.enqueuedOffset === this.#synced ? this.#synced : await this.queue.sync();
    this.#synced = durable;
    if (durable !== this.record.durable || !this.#recorded) {
      // Only bytes made durable count as progress for the sweep (§9.2), not the open itself.
      const updated = durable !== this.record.durable ? Date.now() : this.record.updated;
      const record = { ...this.record, durable, updated };
      this.#recordMayExist = true;
      await this.#record.write(record);
      this.record = record;
      this.#recorded = true;
    }
    return durable;
  }

  async endWrites(): Promise<void> {
    await this.queue.close();
  }

  // The metadata calls here (chmod, utimes, the path checks, rename or link, the sum record) are
  // made synchronously on the event loop, the syncs on libuv's thread pool (paths.ts says why).
  async publish(name: string, options: PublishOptions): Promise<void> {
    const { partFile, outDir, realOutDir, counters } = this.#paths;
    const fd = this.#fh.fd;
    try {
      await this.#step('setting mode and mtime of', this.shown, async () => {
        fchmodSync(fd, options.mode & 0o777);
        futimesSync(fd, new Date(), options.mtime / 1000);
        await this.#fh.sync();
      });
      await this.queue.close();
      // The name's directories are made now, not at OPEN (§9.3), and the whole path is checked
      // again: directories may have been swapped for links since OPEN.
      const { finalPath, created } = prepareParents(outDir, realOutDir, name.split('/'), counters);
      try {
        if (options.how === 'no-clobber') {
          // link() never replaces: an atomic no-clobber publish.
          try {
            linkSync(partFile, finalPath);
          } catch (err) {
            if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'publishing', name);
            throw new UploadError('EXISTS', `"${name}" already exists`);
          }
        } else {
          try {
            renameSync(partFile, finalPath);
          } catch (err) {
            throw toStxError(err, 'publishing', name);
          }
        }
      } catch (err) {
        // Nothing was published: the directories made for it go again, if still empty.
        removeCreated(created, counters);
        throw err;
      }
      // The file is published; a leftover .part is only garbage for the sweep.
      if (options.how === 'no-clobber') await unlinkIfPresent(partFile).catch(() => undefined);
      // New directories' entries and the file's own, durably (innermost is the file's directory).
      for (const dir of created) await this.#step('syncing directory of', name, () => fsyncDir(path.dirname(dir)));
      await this.#step('syncing directory of', name, () => fsyncDir(path.dirname(finalPath)));
      // A leftover record without its .part restarts from 0 on OPEN and is swept.
      if (this.#recordMayExist) {
        try {
          unlinkIfPresentSync(this.#paths.recordFile);
        } catch {
          // Swept later.
        }
      }
      this.#recordSum(name, options.sha256);
    } finally {
      await this.close();
    }
  }

  /**
   * The published file's SHA-256 for its version now, stamped from the published inode itself
   * (still open here; the rename changed its ctime), or the name's old record removed. Best
   * effort: the file is published whatever happens here, its hash then unknown.
   */
  #recordSum(name: string, sha256: Buffer | undefined): void {
    const sums = this.#paths.sums;
    try {
      if (sha256 === undefined) sums.removeSync(name);
      else sums.writeSync(name, stampOf(fstatSync(this.#fh.fd, { bigint: true })), sha256);
    } catch {
      sums.removeSync(name);
    }
  }

  async discard(): Promise<void> {
    await this.close();
    await this.#step('deleting', this.shown, () => unlinkIfPresent(this.#paths.partFile));
    await this.#step('deleting', `${this.#paths.shown}.json`, () => unlinkIfPresent(this.#paths.recordFile));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.queue.close();
    await this.#direct?.close().catch(() => undefined);
    await this.#fh.close().catch(() => undefined);
    await this.#record.close();
    this.#onClose();
  }

  async #step<T>(what: string, where: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStxError(err, what, where);
    }
  }
}
