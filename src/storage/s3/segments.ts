// A partial's bytes in the store, as the write queue's file (storage/write-queue.ts): segments of
// segmentBytes, each its own object named by the holder's token and its index, and the segment
// being filled held in memory. A full segment is written as soon as it fills (the queue's writes
// wait for it: that is the backpressure); datasync() writes the segment being filled as an object
// of its own (the tail), which the next datasync or its filling rewrites longer. So every byte
// written before a datasync is in some object, which is what a checkpoint records.
//
// Segments are plain objects rather than the parts of a multipart upload because an unfinished
// multipart upload's parts cannot be read: a daemon that takes a partial over must re-read its
// durable prefix for the SHA-256 (§9.7), since node:crypto cannot save a hash's state.

import { ResourceError } from '../../proto/errors.js';
import type { PositionalFile } from '../write-queue.js';
import type { Objects } from './objects.js';
import type { Segment } from './record.js';

export class SegmentFile implements PositionalFile {
  readonly #objects: Objects;
  /** Key prefix of this partial's objects (relative to the store's prefix). */
  readonly #folder: string;
  readonly #token: string;
  readonly #segmentBytes: number;
  /** Written full segments, in order. */
  readonly #full: Segment[];
  /** Where the segment being filled starts in the partial. */
  #start: number;
  #buffer: Buffer;
  #length: number;
  /** The object holding a prefix of the segment being filled, if any. */
  #tail: Segment | undefined;
  /** Writes and syncs one at a time: a sync must not see a segment half reset. */
  #chain: Promise<unknown> = Promise.resolve();

  constructor(objects: Objects, folder: string, token: string, segmentBytes: number, full: Segment[], tail: { bytes: Buffer; stored: Segment } | undefined) {
    this.#objects = objects;
    this.#folder = folder;
    this.#token = token;
    this.#segmentBytes = segmentBytes;
    this.#full = full;
    this.#start = full.length * segmentBytes;
    this.#buffer = tail?.bytes ?? Buffer.alloc(0);
    this.#length = this.#buffer.length;
    this.#tail = tail?.stored;
  }

  /** Every byte that is in an object now, as the segments to record. */
  stored(): Segment[] {
    return this.#tail === undefined ? [...this.#full] : [...this.#full, this.#tail];
  }

  /** The stored segments' keys relative to the store's prefix, in order (for publishing). */
  storedKeys(): string[] {
    return this.stored().map((s) => this.#folder + s.key);
  }

  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    return this.#serialise(async () => {
      if (position !== this.#start + this.#length) throw new ResourceError('INTERNAL', `segment write at ${position}, expected ${this.#start + this.#length}`);
      let copied = 0;
      for (const b of buffers) {
        const room = this.#segmentBytes - this.#length;
        if (room === 0) break;
        const n = Math.min(room, b.length);
        this.#reserve(this.#length + n);
        b.copy(this.#buffer, this.#length, 0, n);
        this.#length += n;
        copied += n;
        if (n < b.length) break;
      }
      if (this.#length === this.#segmentBytes) {
        const segment = { key: this.#keyOf(this.#full.length), length: this.#length };
        await this.#objects.put(this.#folder + segment.key, this.#buffer.subarray(0, this.#length));
        this.#full.push(segment);
        this.#start += this.#length;
        this.#length = 0;
        this.#tail = undefined;
      }
      return { bytesWritten: copied };
    });
  }

  datasync(): Promise<void> {
    return this.#serialise(async () => {
      if (this.#length === 0) return;
      const key = this.#keyOf(this.#full.length);
      if (this.#tail?.key === key && this.#tail.length === this.#length) return;
      await this.#objects.put(this.#folder + key, this.#buffer.subarray(0, this.#length));
      this.#tail = { key, length: this.#length };
    });
  }

  /** Bytes [position, …) of the partial below `limit` into `into`: from the objects, or the segment in memory. */
  async readAt(into: Buffer, position: number, limit: number): Promise<number> {
    const end = Math.min(limit, position + into.length);
    if (position >= end) return 0;
    const index = Math.floor(position / this.#segmentBytes);
    const segment = this.#full[index];
    if (segment !== undefined) {
      const from = position - index * this.#segmentBytes;
      const to = Math.min(segment.length, from + (end - position));
      const bytes = await this.#objects.getRange(this.#folder + segment.key, from, to);
      return bytes.copy(into, 0);
    }
    if (position < this.#start || position >= this.#start + this.#length) return 0;
    return this.#buffer.copy(into, 0, position - this.#start, Math.min(this.#length, end - this.#start));
  }

  #keyOf(index: number): string {
    return `${this.#token}-${String(index).padStart(5, '0')}`;
  }

  /** Grows the in-memory segment (doubling, up to segmentBytes) so that a small file holds little. */
  #reserve(bytes: number): void {
    if (bytes <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.min(this.#segmentBytes, Math.max(bytes, 2 * this.#buffer.length, 64 * 1024)));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
