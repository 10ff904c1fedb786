// One partial upload on S3 (storage/backend.ts PartialUpload): its bytes in segments
// (segments.ts), its record and lease in one object written only conditionally (record.ts). The
// lease is renewed every third of its length while open; a conditional write that fails means
// another daemon took the partial over, and this one stops: writes, checkpoints and publish
// fail with LEASE_LOST, and the client resumes where the new holder is (§9.4).

import { ResourceError, type StxError } from '../../proto/errors.js';
import type { PartialRecord, PartialUpload, PositionalReader, PublishOptions, WriteLimits } from '../backend.js';
import { RECORD_VERSION } from '../backend.js';
import { QueuedPartial } from '../queued-partial.js';
import { WriteQueue } from '../write-queue.js';
import { PreconditionFailed, type Objects } from './objects.js';
import { partialRecordOf, type S3Record, type Segment, type Upload } from './record.js';
import type { SegmentFile } from './segments.js';

export interface S3PartialHooks {
  /** Publishes the stored segments and the rest as `name` (claims, checks, completes the upload). */
  readonly publish: (contents: { upload: Upload | undefined; full: Segment[]; rest: Buffer }, name: string, options: PublishOptions) => Promise<void>;
  /** Deletes the partial's objects, record first (and, unless `published`, its unfinished uploads). */
  readonly remove: (published: boolean) => Promise<void>;
  /** The partial is closed: another open of its id may start. */
  readonly closed: () => void;
}

export interface S3PartialSetup {
  readonly id: string;
  readonly objects: Objects;
  /** The record's key, relative to the store's prefix. */
  readonly recordKey: string;
  readonly token: string;
  readonly leaseMs: number;
  readonly file: SegmentFile;
  readonly segmentBytes: number;
  /** What the policy sees at open: meta and the offset writing resumes from. */
  readonly record: PartialRecord;
  /** The stored record and its ETag as this open's lease write left it, if there is one. */
  readonly stored: { readonly record: S3Record; readonly etag: string } | undefined;
  readonly limits: WriteLimits;
  readonly hooks: S3PartialHooks;
}

export function leaseLost(id: string, cause?: unknown): ResourceError {
  return new ResourceError('HELD_ELSEWHERE', `partial ${id.slice(0, 12)}… was taken over by another server of this store`, cause === undefined ? undefined : { cause });
}

export class S3Partial extends QueuedPartial implements PartialUpload {
  readonly id: string;
  readonly prefix: PositionalReader;
  readonly #objects: Objects;
  readonly #recordKey: string;
  readonly #token: string;
  readonly #leaseMs: number;
  readonly #file: SegmentFile;
  readonly #segmentBytes: number;
  readonly #hooks: S3PartialHooks;
  #stored: { record: S3Record; etag: string } | undefined;
  /** Record writes one at a time, each conditional on the ETag the last one returned. */
  #chain: Promise<unknown> = Promise.resolve();
  #lost: ResourceError | undefined;
  #recorded = false;
  /** When the last record write that holds the lease started (ms since the epoch). */
  #wroteAt = 0;
  #closed = false;
  readonly #renewal: NodeJS.Timeout;

  constructor(setup: S3PartialSetup) {
    super(new WriteQueue(setup.file, { maxQueuedBytes: setup.limits.maxQueuedBytes, maxChunkBytes: setup.limits.maxChunkBytes, startOffset: setup.record.durable }, setup.limits.budget), setup.record);
    this.id = setup.id;
    this.#objects = setup.objects;
    this.#recordKey = setup.recordKey;
    this.#token = setup.token;
    this.#leaseMs = setup.leaseMs;
    this.#file = setup.file;
    this.#segmentBytes = setup.segmentBytes;
    this.#hooks = setup.hooks;
    this.#stored = setup.stored;
    const file = setup.file;
    this.prefix = { readAt: (buffer, position) => file.readAt(buffer, position, this.record.durable) };
    this.#renewal = setInterval(() => void this.#renew(), Math.max(1, Math.floor(setup.leaseMs / 3)));
    this.#renewal.unref();
  }

  get shown(): string {
    return `s3://${this.#objects.bucket}/${this.#objects.prefix}${this.#recordKey.replace(/\/record$/, '')}`;
  }

  override get failure(): StxError | undefined {
    return this.#lost ?? this.queue.failure;
  }

  override write(offset: number, data: Buffer, onWritten?: () => void): boolean {
    if (this.#lost !== undefined) throw this.#lost;
    return super.write(offset, data, onWritten);
  }

  async checkpoint(): Promise<number> {
    await this.queue.sync();
    const segments = this.#file.stored();
    let durable = 0;
    for (const s of segments) durable += s.length;
    if (durable === this.record.durable && this.#recorded) {
      if (this.#lost !== undefined) throw this.#lost;
      return durable;
    }
    const updated = durable !== this.record.durable ? Date.now() : this.record.updated;
    const record: S3Record = { ...this.record, version: RECORD_VERSION, durable, updated, segmentBytes: this.#segmentBytes, segments, upload: this.#file.upload, holder: this.#token, leaseUntil: 0 };
    await this.#write(() => record);
    this.record = partialRecordOf(record);
    this.#recorded = true;
    return durable;
  }

  async endWrites(): Promise<void> {
    await this.queue.close();
    this.#file.end();
  }

  async publish(name: string, options: PublishOptions): Promise<void> {
    try {
      await this.queue.close();
      if (this.failure !== undefined) throw this.failure;
      // The lease confirmed before anything is published (a daemon that lost it publishes nothing):
      // written again unless the last write is recent, which no other daemon can have taken over
      // since (its lease runs leaseMs from before that write).
      if (this.#stored === undefined || Date.now() - this.#wroteAt >= this.#leaseMs / 3) {
        await this.#write((stored) => stored ?? { ...this.record, segmentBytes: this.#segmentBytes, segments: [], holder: '', leaseUntil: 0 });
      }
      await this.#hooks.publish(await this.#file.contents(), name, options);
      this.#stored = undefined;
      await this.#hooks.remove(true);
    } finally {
      await this.close();
    }
  }

  async discard(): Promise<void> {
    await this.close();
    await this.#hooks.remove(false);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#renewal);
    await this.queue.close();
    // Let go of the lease, so that another daemon may take the partial at once (best effort:
    // otherwise it expires).
    if (this.#stored !== undefined && this.#lost === undefined) {
      await this.#write((stored) => stored, false).catch(() => undefined);
    }
    await this.#file.release();
    this.#hooks.closed();
  }

  /** Writes the lease's renewal (while open and held). */
  async #renew(): Promise<void> {
    if (this.#closed || this.#lost !== undefined || this.#stored === undefined) return;
    await this.#write((stored) => stored).catch(() => undefined);
  }

  /**
   * Writes the record `next` makes of the stored one (undefined: none yet; returning undefined
   * writes nothing), held by this open (or let go: `hold` false), conditional on the last version
   * seen. `next` runs when the write's turn comes, not when it is asked for: a renewal or a
   * release queued behind a checkpoint renews what that checkpoint wrote. (A renewal that carried
   * the record as it was when its timer fired wrote an older durable offset over a checkpoint's:
   * a daemon killed then left its successor the older offset, even 0.)
   */
  #write(next: (stored: S3Record | undefined) => S3Record | undefined, hold = true): Promise<void> {
    const run = this.#chain.then(async () => {
      if (this.#lost !== undefined) throw this.#lost;
      const base = next(this.#stored?.record);
      if (base === undefined) return;
      const startedAt = Date.now();
      const record: S3Record = { ...base, holder: hold ? this.#token : '', leaseUntil: hold ? startedAt + this.#leaseMs : 0 };
      const condition = this.#stored === undefined ? { ifNoneMatch: true } : { ifMatch: this.#stored.etag };
      try {
        const etag = await this.#objects.put(this.#recordKey, Buffer.from(JSON.stringify(record)), condition);
        this.#stored = { record, etag };
        if (hold) this.#wroteAt = startedAt;
      } catch (err) {
        if (err instanceof PreconditionFailed) {
          this.#lost = leaseLost(this.id, err);
          throw this.#lost;
        }
        throw err;
      }
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
