// A partial's bytes in the store, as the write queue's file (storage/write-queue.ts): full
// segments of segmentBytes, each a part of one multipart upload this open starts (at
// `TOKEN-data` in the partial's folder, when its first segment fills), and the segment being
// filled, held whole in memory. A segment that fills is written in the background: up to
// MAX_SEGMENT_WRITES at once, each holding its buffer (charged to the connection's memory) until
// the store has it; a write that would start one more waits for the oldest (that is the
// backpressure). datasync() writes what the segment being filled gained since the last one as a
// piece (an object of its own: parts cannot be read back, pieces can) and waits for the segment
// writes started before it, so a checkpoint covers every byte written before it; writes go on
// meanwhile. Every byte is written at most twice, once in a piece and once in its part. After
// MAX_PIECES pieces the next datasync writes the segment so far as one piece instead, which
// bounds the record. Publishing completes the upload: the store never copies the bytes.
//
// What is stored (stored(), the record's segment list) is the longest prefix the store holds:
// the full segments already written, then the pieces of the first segment not yet written whole.
// A segment keeps its pieces until its own write is done, so that prefix only grows.
//
// Full segments an open keeps from an earlier one are stretches of an object (the backend
// completes the earlier open's upload when it takes the partial over, so that its bytes can be
// read back for the SHA-256, §9.7): they are readable, and a publish copies them in as parts.

import { ResourceError } from '../../proto/errors.js';
import type { LeaseAccount } from '../../transfer/body-pool.js';
import type { PositionalFile } from '../write-queue.js';
import type { Objects } from './objects.js';
import type { Segment, Upload } from './record.js';

/** Pieces one segment may have in the record before they are written again as one. */
export const MAX_PIECES = 16;
/** Full segments one partial writes at once (each holds its buffer until written). */
export const MAX_SEGMENT_WRITES = 4;
/**
 * How long a checkpoint waits for the segment being filled to fill (its part then holds the
 * checkpoint's bytes) before it writes them as a piece. At the tens of MiB/s one partial takes,
 * most checkpoints see their segment fill and write no piece; a slower upload's ACK comes this
 * much later.
 */
export const PIECE_WAIT_MS = 250;
/** The first buffer of a segment whose length is not known yet (it doubles as it fills). */
const FIRST_BUFFER_BYTES = 64 * 1024;

/** One segment of the partial: filling, being written, or written. */
interface Slot {
  /** Where it is once stored whole: its part, or (kept from an earlier open) a stretch of an object. */
  entry: Segment | undefined;
  /** Its bytes while it fills or is being written; undefined once written (or released). */
  buffer: Buffer | undefined;
  length: number;
  /** Written whole as its object. */
  stored: boolean;
  /** Its write, settled (never rejects) once the store answered; undefined while it fills. */
  writing: Promise<void> | undefined;
  /** Stored pieces holding its first piecesBytes (until it is stored whole). */
  pieces: Segment[];
  /** What is charged to the memory account for it. */
  charged: number;
  piecesBytes: number;
}

export class SegmentFile implements PositionalFile {
  readonly #objects: Objects;
  /** Key prefix of this partial's objects (relative to the store's prefix). */
  readonly #folder: string;
  readonly #token: string;
  readonly #segmentBytes: number;
  /** The partial's size (a stream's is the largest allowed): a last segment's buffer is allocated at its size. */
  readonly #size: number;
  /** Every segment so far in order; the last one is being filled. */
  readonly #slots: Slot[] = [];
  /** This open's multipart upload, started when its first segment fills. */
  #upload: Promise<Upload> | undefined;
  #uploadStarted: Upload | undefined;
  #pieceNo = 0;
  /** Writes one at a time; datasyncs one at a time (beside the writes). */
  #chain: Promise<unknown> = Promise.resolve();
  #syncChain: Promise<unknown> = Promise.resolve();
  /** The first failed segment write: every later write and sync fails with it. */
  #failure: Error | undefined;
  #released = false;
  /** No more writes come (end()). */
  #ended = false;
  /** Checkpoints waiting for the segment being filled to fill. */
  readonly #fillWaiters = new Set<() => void>();
  /** Segment writes not answered yet. */
  #busy = 0;
  /** Slots below it are stored whole (a hint for #firstUnstored). */
  #stable = 0;
  /** Charged with the buffers held (the connection's share of --max-memory). */
  readonly #memory: LeaseAccount | undefined;
  /** A written segment's buffer, kept for the next segment (no fresh pages to fault in, no garbage). */
  #spare: Buffer | undefined;
  /** Keys of the objects this open wrote (pieces, and its upload's once completed), below the folder. */
  readonly #written: string[] = [];
  /** Buffers a piece write is sending from: not reused until it is answered. */
  readonly #pinned = new Map<Buffer, number>();

  /**
   * `full`: the stored full segments kept; `tail`: the bytes of the segment being filled and the
   * stored pieces that hold them. `size`: the partial's size. `memory` is charged with the buffers
   * held, and given them back at release().
   */
  constructor(
    objects: Objects,
    folder: string,
    token: string,
    segmentBytes: number,
    size: number,
    full: Segment[],
    tail: { bytes: Buffer; pieces: Segment[] } | undefined,
    memory?: LeaseAccount,
  ) {
    this.#objects = objects;
    this.#folder = folder;
    this.#token = token;
    this.#segmentBytes = segmentBytes;
    this.#size = size;
    this.#memory = memory;
    for (const s of full) this.#slots.push({ entry: s, buffer: undefined, length: s.length, stored: true, writing: Promise.resolve(), pieces: [], piecesBytes: 0, charged: 0 });
    const bytes = tail?.bytes ?? Buffer.alloc(0);
    const slot = { ...this.#fresh(), length: bytes.length, pieces: tail?.pieces ?? [], piecesBytes: bytes.length };
    this.#slots.push(slot);
    this.#setBuffer(slot, bytes);
  }

  #fresh(): Slot {
    return { entry: undefined, buffer: Buffer.alloc(0), length: 0, stored: false, writing: undefined, pieces: [], piecesBytes: 0, charged: 0 };
  }

  /** The keys of every object this open wrote or may have (below the partial's folder). */
  written(): string[] {
    return this.#uploadStarted === undefined ? [...this.#written] : [...this.#written, this.#uploadStarted.key];
  }

  /** This open's multipart upload, once started (the record names it while parts of it are listed). */
  get upload(): Upload | undefined {
    return this.#uploadStarted;
  }

  get #current(): Slot {
    const slot = this.#slots[this.#slots.length - 1];
    if (slot === undefined) throw new ResourceError('INTERNAL', 'a segment file has no segment');
    return slot;
  }

  /** Where the segment being filled starts in the partial. */
  get #start(): number {
    return (this.#slots.length - 1) * this.#segmentBytes;
  }

  /** Waits for the segment writes, then drops every buffer (the partial is closed) and gives the memory back. */
  async release(): Promise<void> {
    await this.#settled();
    this.#released = true;
    this.end();
    if (this.#spare !== undefined) this.#memory?.held(-this.#spare.length);
    this.#spare = undefined;
    for (let i = this.#firstUnstored; i < this.#slots.length; i++) {
      const s = this.#slots[i];
      if (s !== undefined) this.#setBuffer(s, undefined);
    }
  }

  /** Sets the slot's buffer, charging the difference to the memory account. */
  #setBuffer(slot: Slot, buffer: Buffer | undefined): void {
    slot.buffer = buffer;
    this.#recharge(slot);
  }

  /**
   * Charges what the slot's buffer holds: its bytes so far, not its allocation (a buffer
   * allocated at the segment's length has its pages touched only as it fills; charging it all
   * at once stopped 50 small uploads' connections for buffers still empty).
   */
  #recharge(slot: Slot): void {
    const held = slot.buffer === undefined ? 0 : slot.length;
    const delta = held - slot.charged;
    slot.charged = held;
    if (delta !== 0) this.#memory?.held(delta);
  }

  /** Every byte that is in an object now, as the segments to record: the longest stored prefix. */
  stored(): Segment[] {
    const out: Segment[] = [];
    for (const s of this.#slots) {
      if (s.stored && s.entry !== undefined) {
        out.push(s.entry);
        continue;
      }
      out.push(...s.pieces);
      break;
    }
    return out;
  }

  /**
   * Once every segment write is done: the full segments (parts of `upload`, or stretches of
   * objects) and the rest, in memory: what a publish composes.
   */
  async contents(): Promise<{ upload: Upload | undefined; full: Segment[]; rest: Buffer }> {
    await this.#settled();
    this.#check();
    const current = this.#current;
    const full = this.#slots.slice(0, -1).map((s) => s.entry).filter((e): e is Segment => e !== undefined);
    // Only segments kept from an earlier open: an upload to copy them into.
    if (full.length > 0) await this.#startUpload();
    return { upload: this.#uploadStarted, full, rest: (current.buffer ?? Buffer.alloc(0)).subarray(0, current.length) };
  }

  /** Once the writes asked for so far and their segment writes are answered (never rejects). */
  async #settled(): Promise<void> {
    await this.#chain;
    await Promise.all(this.#slots.slice(this.#firstUnstored).map((s) => s.writing ?? Promise.resolve()));
  }

  #check(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#released) throw new ResourceError('INTERNAL', 'the partial is closed');
  }

  writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    return this.#serialise(async () => {
      this.#check();
      const slot = this.#current;
      if (position !== this.#start + slot.length) throw new ResourceError('INTERNAL', `segment write at ${position}, expected ${this.#start + slot.length}`);
      let copied = 0;
      for (const b of buffers) {
        const room = this.#segmentBytes - slot.length;
        if (room === 0) break;
        const n = Math.min(room, b.length);
        this.#reserve(slot, slot.length + n);
        b.copy(slot.buffer ?? Buffer.alloc(0), slot.length, 0, n);
        slot.length += n;
        copied += n;
        if (n < b.length) break;
      }
      this.#recharge(slot);
      if (slot.length === this.#segmentBytes) {
        // Written in the background; past MAX_SEGMENT_WRITES at once, this write waits for the oldest.
        this.#startWrite(slot);
        this.#slots.push(this.#fresh());
        for (const wake of this.#fillWaiters) wake();
        for (let oldest = this.#firstBusy(); this.#busy > MAX_SEGMENT_WRITES && oldest !== undefined; oldest = this.#firstBusy()) await oldest.writing;
        this.#check();
      }
      return { bytesWritten: copied };
    });
  }

  #startWrite(slot: Slot): void {
    const bytes = (slot.buffer ?? Buffer.alloc(0)).subarray(0, slot.length);
    // The slot being filled is the last one: part numbers follow the segments' places.
    const part = this.#slots.length;
    this.#busy++;
    slot.writing = this.#startUpload()
      .then(async (u) => ({ key: u.key, length: bytes.length, part, etag: await this.#objects.uploadPart(this.#folder + u.key, u.id, part, bytes) }))
      .then(
        (entry) => {
          this.#busy--;
          slot.entry = entry;
          slot.stored = true;
          slot.pieces = [];
          const buffer = slot.buffer;
          this.#setBuffer(slot, undefined);
          if (buffer !== undefined && buffer.length === this.#segmentBytes && this.#spare === undefined && !this.#released && !this.#pinned.has(buffer)) {
            this.#spare = buffer;
            this.#memory?.held(buffer.length);
          }
        },
        (err: unknown) => {
          this.#busy--;
          this.#failure ??= err instanceof Error ? err : new ResourceError('IO_ERROR', `writing a segment failed (${String(err)})`);
        },
      );
  }

  /** This open's multipart upload, started at the first call. */
  #startUpload(): Promise<Upload> {
    const key = `${this.#token}-data`;
    this.#upload ??= this.#objects.createUpload(this.#folder + key).then((id) => {
      this.#uploadStarted = { key, id };
      return this.#uploadStarted;
    });
    return this.#upload;
  }

  /** The oldest segment whose write has not been answered. */
  #firstBusy(): Slot | undefined {
    for (let i = this.#firstUnstored; i < this.#slots.length; i++) {
      const s = this.#slots[i];
      if (s !== undefined && s.writing !== undefined && !s.stored) return s;
    }
    return undefined;
  }

  /** Index of the first slot not stored whole (the slots before it never change again). */
  get #firstUnstored(): number {
    while (this.#slots[this.#stable]?.stored === true) this.#stable++;
    return this.#stable;
  }

  datasync(): Promise<void> {
    const run = this.#syncChain.then(async () => {
      this.#check();
      // What is written now: the segment being filled so far, and the segment writes before it.
      const slot = this.#current;
      const earlier = this.#slots.slice(this.#firstUnstored, -1).map((s) => s.writing ?? Promise.resolve());
      const length = slot.length;
      let piece: Promise<void> = Promise.resolve();
      // While bytes keep coming the segment may fill soon: its part then covers them, and no
      // piece (bytes the store writes twice) is needed.
      // (Not the file's last segment, shorter: it never becomes a part.)
      const fillable = this.#size - this.#start >= this.#segmentBytes;
      if (length > slot.piecesBytes && fillable && !this.#ended && (await this.#fills(slot, PIECE_WAIT_MS))) {
        await slot.writing;
      } else if (length > slot.piecesBytes) {
        // Too many pieces: the segment so far becomes one.
        const from = slot.pieces.length >= MAX_PIECES ? 0 : slot.piecesBytes;
        const index = this.#slots.length - 1;
        const key = `${this.#token}-${String(index).padStart(5, '0')}-${String(this.#pieceNo++)}`;
        this.#written.push(key);
        const buffer = slot.buffer ?? Buffer.alloc(0);
        this.#pinned.set(buffer, (this.#pinned.get(buffer) ?? 0) + 1);
        piece = this.#objects
          .put(this.#folder + key, buffer.subarray(from, length))
          .then(() => {
            const stored = { key, length: length - from };
            slot.pieces = from === 0 ? [stored] : [...slot.pieces, stored];
            slot.piecesBytes = length;
          })
          .finally(() => {
            const n = (this.#pinned.get(buffer) ?? 1) - 1;
            if (n === 0) this.#pinned.delete(buffer);
            else this.#pinned.set(buffer, n);
          });
      }
      await Promise.all([piece, ...earlier]);
      if (this.#failure !== undefined) throw this.#failure;
    });
    this.#syncChain = run.catch(() => undefined);
    return run;
  }

  /** No more writes come (the queue is closed): a checkpoint waits for no segment to fill. */
  end(): void {
    this.#ended = true;
    for (const wake of this.#fillWaiters) wake();
    this.#fillWaiters.clear();
  }

  /** Whether `slot` fills (its part write starts) within `ms`, or before end(). */
  async #fills(slot: Slot, ms: number): Promise<boolean> {
    const filled = (): boolean => slot.writing !== undefined;
    if (filled()) return true;
    let wake: () => void = () => undefined;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    this.#fillWaiters.add(wake);
    const timer = setTimeout(wake, ms);
    try {
      await woken;
    } finally {
      clearTimeout(timer);
      this.#fillWaiters.delete(wake);
    }
    return filled();
  }

  /** Bytes [position, …) of the partial below `limit` into `into`: from the objects, or the segments in memory. */
  async readAt(into: Buffer, position: number, limit: number): Promise<number> {
    const end = Math.min(limit, position + into.length);
    if (position >= end) return 0;
    const index = Math.floor(position / this.#segmentBytes);
    const slot = this.#slots[index];
    if (slot === undefined) return 0;
    const from = position - index * this.#segmentBytes;
    const to = Math.min(slot.length, from + (end - position));
    if (from >= to) return 0;
    if (slot.buffer !== undefined) return slot.buffer.copy(into, 0, from, to);
    const entry = slot.entry;
    // A part of this open's upload cannot be read back; nothing reads past what an open kept.
    if (!slot.stored || entry === undefined || entry.part !== undefined) throw new ResourceError('INTERNAL', `bytes at ${position} of the partial are not readable`);
    const at = entry.from ?? 0;
    const bytes = await this.#objects.getRange(this.#folder + entry.key, at + from, at + to);
    return bytes.copy(into, 0);
  }

  /**
   * Grows the segment's buffer to hold `bytes`: at once to its whole length when the partial's
   * size says it (no copies), else doubling from 64 KiB (a stream's first segment), so that a
   * small upload holds little.
   */
  #reserve(slot: Slot, bytes: number): void {
    const buffer = slot.buffer ?? Buffer.alloc(0);
    if (bytes <= buffer.length) return;
    const start = this.#start;
    const last = Math.min(this.#segmentBytes, Math.max(0, this.#size - start));
    const target = bytes <= last && (start > 0 || last < this.#segmentBytes) ? last : Math.max(bytes, 2 * buffer.length, FIRST_BUFFER_BYTES);
    const want = Math.min(this.#segmentBytes, target);
    let grown: Buffer;
    if (want === this.#segmentBytes && this.#spare !== undefined) {
      grown = this.#spare;
      this.#spare = undefined;
      this.#memory?.held(-grown.length);
    } else {
      grown = Buffer.allocUnsafe(want);
    }
    buffer.copy(grown, 0, 0, slot.length);
    this.#setBuffer(slot, grown);
  }

  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }
}
