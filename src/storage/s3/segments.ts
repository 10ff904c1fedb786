// A partial's bytes in the store, as the write queue's file (storage/write-queue.ts): full
// segments of segmentBytes, each its own object named by the holder's token and its index, and
// the segment being filled, held whole in memory. A full segment is written as soon as it fills
// (the queue's writes wait for it: that is the backpressure). datasync() writes what the segment
// being filled gained since the last one as a piece (an object of its own), so a checkpoint
// writes only new bytes: every byte is written at most twice, once in a piece and once in its full
// segment. After MAX_PIECES pieces the next datasync writes the segment so far as one piece
// instead, which bounds the record. The record lists full segments, then the pieces.
//
// Segments are plain objects rather than the parts of a multipart upload because an unfinished
// multipart upload's parts cannot be read: a daemon that takes a partial over must re-read its
// durable prefix for the SHA-256 (§9.7), since node:crypto cannot save a hash's state.

import { ResourceError } from '../../proto/errors.js';
import type { LeaseAccount } from '../../transfer/body-pool.js';
import type { PositionalFile } from '../write-queue.js';
import type { Objects } from './objects.js';
import type { Segment } from './record.js';

/** Pieces one segment may have in the record before they are written again as one. */
export const MAX_PIECES = 16;

export class SegmentFile implements PositionalFile {
  readonly #objects: Objects;
  /** Key prefix of this partial's objects (relative to the store's prefix). */
  readonly #folder: string;
  readonly #token: string;
  readonly #segmentBytes: number;
  /** Written full segments, in order. */
  readonly #full: Segment[];
  /** Stored pieces of the segment being filled, in order: they hold its first piecesBytes. */
  #pieces: Segment[];
  #piecesBytes: number;
  #pieceNo = 0;
  /** Where the segment being filled starts in the partial. */
  #start: number;
  #buffer: Buffer;
  #length: number;
  /** Writes and syncs one at a time: a sync must not see a segment half reset. */
  #chain: Promise<unknown> = Promise.resolve();
  /** Charged with the in-memory segment's size (the connection's share of --max-memory). */
  readonly #memory: LeaseAccount | undefined;
  #charged = 0;

  /**
   * `tail`: the bytes of the segment being filled and the stored pieces that hold them. `memory`
   * is charged with the in-memory segment as it grows, and given it back at release().
   */
  constructor(
    objects: Objects,
    folder: string,
    token: string,
    segmentBytes: number,
    full: Segment[],
    tail: { bytes: Buffer; pieces: Segment[] } | undefined,
    memory?: LeaseAccount,
  ) {
    this.#objects = objects;
    this.#folder = folder;
    this.#token = token;
    this.#segmentBytes = segmentBytes;
    this.#full = full;
    this.#start = full.length * segmentBytes;
    this.#buffer = tail?.bytes ?? Buffer.alloc(0);
    this.#length = this.#buffer.length;
    this.#pieces = tail?.pieces ?? [];
    this.#piecesBytes = this.#length;
    this.#memory = memory;
    this.#charge();
  }

  /** Drops the in-memory segment (the partial is closed) and gives its memory back. */
  release(): void {
    this.#buffer = Buffer.alloc(0);
    this.#length = 0;
    this.#charge();
  }

  #charge(): void {
    const delta = this.#buffer.length - this.#charged;
    if (delta === 0) return;
    this.#charged = this.#buffer.length;
    this.#memory?.held(delta);
  }

  /** Every byte that is in an object now, as the segments to record. */
  stored(): Segment[] {
    return [...this.#full, ...this.#pieces];
  }

  /** The full segments' keys (relative to the store's prefix) and the rest, in memory: what a publish composes. */
  contents(): { keys: string[]; rest: Buffer } {
    return { keys: this.#full.map((s) => this.#folder + s.key), rest: this.#buffer.subarray(0, this.#length) };
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
        const segment = { key: `${this.#token}-${String(this.#full.length).padStart(5, '0')}`, length: this.#length };
        await this.#objects.put(this.#folder + segment.key, this.#buffer.subarray(0, this.#length));
        this.#full.push(segment);
        this.#start += this.#length;
        this.#length = 0;
        this.#pieces = [];
        this.#piecesBytes = 0;
      }
      return { bytesWritten: copied };
    });
  }

  datasync(): Promise<void> {
    return this.#serialise(async () => {
      if (this.#length === this.#piecesBytes) return;
      // Too many pieces: the segment so far becomes one.
      const from = this.#pieces.length >= MAX_PIECES ? 0 : this.#piecesBytes;
      const key = `${this.#token}-${String(this.#full.length).padStart(5, '0')}-${String(this.#pieceNo++)}`;
      await this.#objects.put(this.#folder + key, this.#buffer.subarray(from, this.#length));
      const piece = { key, length: this.#length - from };
      this.#pieces = from === 0 ? [piece] : [...this.#pieces, piece];
      this.#piecesBytes = this.#length;
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

  /** Grows the in-memory segment (doubling, up to segmentBytes) so that a small file holds little. */
  #reserve(bytes: number): void {
    if (bytes <= this.#buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.min(this.#segmentBytes, Math.max(bytes, 2 * this.#buffer.length, 64 * 1024)));
    this.#buffer.copy(grown, 0, 0, this.#length);
    this.#buffer = grown;
    this.#charge();
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
