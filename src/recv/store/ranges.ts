// Ranged uploads (spec/PROTOCOL.md §9.13), the policy side: several connections carry one file,
// each a range it claimed with RANGE, written at its own offsets into one shared partial, each
// range resumed from its own durable end. The whole file's SHA-256 is verified later, by the OPEN
// … END that publishes it (§9.13 step 4), which reads the partial back: what of it is durable
// from 0 on is hashed here already, while the ranges still arrive, and parked for that OPEN.

import { setTimeout as delay } from 'node:timers/promises';
import { ResourceError, UploadError } from '../../proto/errors.js';
import { MAX_RANGES_PER_UPLOAD, MAX_STREAMS_PER_UPLOAD, MIN_RANGE_BYTES } from '../../proto/limits.js';
import { durablePrefix, type PartialMeta, type RangedPartial, type RangeRecord } from '../../storage/backend.js';
import type { ByteBudget } from '../../transfer/budget.js';
import type { Hasher } from '../../transfer/hasher.js';
import { LOW_WATER_FRACTION } from '../../transfer/config.js';
import type { UploadLock } from './locks.js';

/** Bytes one range's connection may have written and not yet on disk (then it stops reading). */
export const MAX_RANGE_INFLIGHT_BYTES = 4 * 1024 * 1024;

/**
 * The durable prefix is hashed ahead (and the hash parked for the publishing OPEN) once it grew by
 * at least this much: each pass is one read on the hashing thread, mostly from the page cache.
 */
export const HASH_AHEAD_MIN_BYTES = 16 * 1024 * 1024;

/** A range's bytes and who carries it now. */
interface RangeSlot {
  readonly start: number;
  readonly end: number;
  durable: number;
  claim: RangeClaim | undefined;
}

export interface RangedParts {
  readonly id: string;
  readonly meta: PartialMeta;
  readonly file: RangedPartial;
  readonly lock: UploadLock;
  readonly budget: ByteBudget;
  readonly handoverTimeoutMs: number;
  /** Hashes the durable prefix ahead of the publishing OPEN (parked under `id`); none: that OPEN reads it all back. */
  readonly hasher?: Hasher | undefined;
  /** Runs once the last claim let go: the file is closed, the lock dropped. */
  readonly onIdle: () => void;
}

/** Who carries `slot` now (read afresh after an await). */
function holderOf(slot: RangeSlot): RangeClaim | undefined {
  return slot.claim;
}

/** Checks a claim's bounds alone (§9.13): BAD_RANGE. */
export function checkRangeBounds(start: number, end: number, size: number): void {
  if (!(start < end) || end > size) throw new UploadError('BAD_RANGE', `range [${start}, ${end}) is empty or beyond the size ${size}`);
  if (end - start < MIN_RANGE_BYTES && end !== size) {
    throw new UploadError('BAD_RANGE', `range [${start}, ${end}) is shorter than ${MIN_RANGE_BYTES} bytes and does not end the file`);
  }
}

/** A change a record carries: `apply` makes it as the record is taken and returns its undo; `syncs`: it needs the partial's writes durable (a range's durable end moved). */
interface RecordChange {
  readonly syncs: boolean;
  readonly apply: () => () => void;
}

/** One ranged upload open on this server: its partial, its ranges and the claims on them. */
export class RangedUpload {
  readonly id: string;
  readonly meta: PartialMeta;
  readonly #file: RangedPartial;
  readonly #lock: UploadLock;
  readonly #budget: ByteBudget;
  readonly #handoverTimeoutMs: number;
  readonly #onIdle: () => void;
  readonly #slots: RangeSlot[];
  /** Claims granted or being granted; the upload closes when it falls to 0. */
  #claims = 0;
  #closed = false;
  /** Resolves once the upload closed after its last claim (file closed, lock dropped). */
  readonly idle: Promise<void>;
  #resolveIdle: () => void = () => undefined;
  /** Serialises records so that they are written one at a time, each with every range's offset. */
  #chain: Promise<unknown> = Promise.resolve();
  /**
   * The record queued behind the one being written, and the changes it carries: all who ask for
   * one meanwhile share it (at a change of range every connection's RANGE_END and next RANGE ask
   * at once; each record costs a record write, and an fdatasync of the partial where a range's
   * durable end moves).
   */
  #queued: { readonly changes: RecordChange[]; readonly written: Promise<void> } | undefined;
  readonly #hasher: Hasher | undefined;
  /** The bytes from 0 whose hash is parked under the id (hashed ahead); the pass running now, if any. */
  #hashed = 0;
  #hashing: Promise<void> | undefined;

  constructor(parts: RangedParts) {
    this.id = parts.id;
    this.meta = parts.meta;
    this.#file = parts.file;
    this.#lock = parts.lock;
    this.#budget = parts.budget;
    this.#handoverTimeoutMs = parts.handoverTimeoutMs;
    this.#onIdle = parts.onIdle;
    this.#hasher = parts.file.prefix === undefined ? undefined : parts.hasher;
    // A partial that starts over (no ranges kept) must not extend a hash parked for older bytes.
    if (parts.file.ranges.length === 0) this.#hasher?.drop(this.id);
    this.#slots = parts.file.ranges.map((r) => ({ ...r, claim: undefined }));
    this.idle = new Promise((resolve) => (this.#resolveIdle = resolve));
    // An OPEN of the same upload (the client publishing it, §9.13 step 4) takes it over.
    this.#lock.onReleaseRequest = () => {
      for (const slot of this.#slots) slot.claim?.supersede();
    };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /**
   * RANGE [start, end) (§9.13): the same range again resumes it (taking it over from a connection
   * that still holds it, as §9.4); a new one must overlap no other. BAD_RANGE, TOO_MANY_STREAMS, BUSY.
   */
  async claim(start: number, end: number, onTakeover: () => void): Promise<RangeClaim> {
    checkRangeBounds(start, end, this.meta.size);
    this.#claims++;
    try {
      let slot = this.#slots.find((s) => s.start === start && s.end === end);
      if (slot?.claim !== undefined) {
        const holder = slot.claim;
        holder.supersede();
        const abort = new AbortController();
        await Promise.race([holder.released, delay(this.#handoverTimeoutMs, undefined, { signal: abort.signal }).catch(() => undefined)]);
        abort.abort();
        if (holderOf(slot) !== undefined) throw new UploadError('BUSY', `range [${start}, ${end}) of "${this.meta.name}" is still being sent on another connection`);
      }
      if (this.#closed) throw new UploadError('BUSY', `"${this.meta.name}" was closed meanwhile`);
      if (slot === undefined) {
        const other = this.#slots.find((s) => s.start < end && start < s.end);
        if (other !== undefined) throw new UploadError('BAD_RANGE', `range [${start}, ${end}) overlaps [${other.start}, ${other.end}) of "${this.meta.name}"`);
        if (this.#slots.length >= MAX_RANGES_PER_UPLOAD) throw new UploadError('BAD_RANGE', `"${this.meta.name}" has ${MAX_RANGES_PER_UPLOAD} ranges already`);
      }
      const active = this.#slots.filter((s) => s.claim !== undefined).length;
      if (active >= MAX_STREAMS_PER_UPLOAD) {
        throw new ResourceError('TOO_MANY_STREAMS', `"${this.meta.name}" has ${active} ranges being sent already (at most ${MAX_STREAMS_PER_UPLOAD})`);
      }
      if (slot === undefined) {
        slot = { start, end, durable: start, claim: undefined };
        this.#slots.push(slot);
        // The new range is in the record before its first byte is written (no write to sync for it).
        await this.#recordWith({ syncs: false, apply: () => () => undefined });
      }
      const claim = new RangeClaim(this, slot, this.#budget, onTakeover);
      slot.claim = claim;
      return claim;
    } catch (err) {
      await this.#letGo();
      throw err;
    }
  }

  writeAt(offset: number, data: Buffer): Promise<void> {
    return this.#file.writeAt(offset, data);
  }

  /** Makes every write durable and records every range's durable end; returns `slot`'s. */
  async checkpoint(slot: RangeSlot, written: number): Promise<number> {
    await this.#recordWith({
      syncs: true,
      apply: () => {
        const before = slot.durable;
        slot.durable = Math.max(slot.durable, written);
        return () => (slot.durable = before);
      },
    });
    this.#hashAhead();
    return slot.durable;
  }

  /**
   * A record carrying `change` (applied as the record is taken; should it fail, undone): the one
   * queued behind the record being written, shared with every change asked for meanwhile, else a
   * new one. It syncs the partial's writes first if any of its changes needs that.
   */
  #recordWith(change: RecordChange): Promise<void> {
    let queued = this.#queued;
    if (queued === undefined) {
      const changes: RecordChange[] = [];
      const written = this.#serialise(async () => {
        this.#queued = undefined;
        const undo = changes.map((c) => c.apply());
        try {
          await this.#record(changes.some((c) => c.syncs));
        } catch (err) {
          for (const u of undo.reverse()) u();
          throw err;
        }
      });
      queued = this.#queued = { changes, written };
    }
    queued.changes.push(change);
    return queued.written;
  }

  /**
   * Hashes the recorded durable prefix from where the parked hash ends and parks it again (§9.13
   * step 4's read-back, done early), one pass at a time: while the upload is open once the prefix
   * grew by HASH_AHEAD_MIN_BYTES, and a `final` pass of the rest as it closes. The bytes of a
   * durable prefix never change (a range resumes at its durable end), so the hash stays valid; a
   * failed pass only leaves more for the OPEN to read back.
   */
  #hashAhead(final = false): void {
    const hasher = this.#hasher;
    const source = this.#file.prefix;
    if (hasher === undefined || source === undefined || (this.#closed && !final) || this.#hashing !== undefined) return;
    const prefix = durablePrefix(this.#slots);
    if (prefix - this.#hashed < (final ? 1 : HASH_AHEAD_MIN_BYTES)) return;
    this.#hashing = hasher.open(source, prefix, this.#file.shown, { key: this.id }).then(
      (opened) => {
        opened.hash.park(this.id, prefix);
        this.#hashed = prefix;
        this.#hashing = undefined;
        this.#hashAhead();
      },
      () => {
        // Stopped (the upload closed) or failed: the OPEN reads back what no parked hash covers.
        this.#hashing = undefined;
      },
    );
  }

  /** One record at a time: each is written whole (tmp, fsync, rename) before the next starts. */
  #serialise<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#chain.then(task, task);
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** A claim let go of its range (done or cut). */
  async released(slot: RangeSlot, claim: RangeClaim): Promise<void> {
    if (slot.claim === claim) slot.claim = undefined;
    await this.#letGo();
  }

  #record(sync: boolean): Promise<void> {
    const ranges: RangeRecord[] = this.#slots.map(({ start, end, durable }) => ({ start, end, durable }));
    return this.#file.record(ranges, sync);
  }

  async #letGo(): Promise<void> {
    this.#claims--;
    if (this.#claims > 0 || this.#closed) return;
    this.#closed = true;
    await this.#chain;
    // The rest of the durable prefix is hashed (and parked) before the file closes and the lock
    // goes: the OPEN that publishes the upload, waiting for that lock, then reads nothing back.
    await this.#hashing;
    this.#hashAhead(true);
    await this.#hashing;
    await this.#file.close();
    this.#lock.release();
    this.#onIdle();
    this.#resolveIdle();
  }
}

/**
 * One connection's claim on one range: DATA at the next offset within it, written as it comes
 * (no hash here: the whole file is hashed when it is published), checkpoints, and the end.
 */
export class RangeClaim {
  readonly start: number;
  readonly end: number;
  /** RANGE_OK's offset: where this claim resumes its range. */
  readonly offset: number;
  readonly released: Promise<void>;
  #resolveReleased: () => void = () => undefined;
  readonly #upload: RangedUpload;
  readonly #slot: RangeSlot;
  readonly #budget: ByteBudget;
  #onTakeover: (() => void) | undefined;
  #received: number;
  /** While DATA sent before RANGE_OK (from `start`) is still below `offset`: where its next is due. */
  #behind: number | undefined;
  /** The end of the bytes whose writes all completed. */
  #written: number;
  #inflight = 0;
  #failure: Error | undefined;
  #waiters: (() => void)[] = [];
  #done = false;

  constructor(upload: RangedUpload, slot: RangeSlot, budget: ByteBudget, onTakeover: () => void) {
    this.#upload = upload;
    this.#slot = slot;
    this.#budget = budget;
    this.#onTakeover = onTakeover;
    this.start = slot.start;
    this.end = slot.end;
    this.offset = slot.durable;
    this.#received = slot.durable;
    this.#written = slot.durable;
    this.released = new Promise((resolve) => (this.#resolveReleased = resolve));
  }

  get name(): string {
    return this.#upload.meta.name;
  }
  get received(): number {
    return this.#received;
  }
  get durable(): number {
    return this.#slot.durable;
  }

  /** Asks the connection holding this claim to close (a newcomer claims the same range, §9.4). */
  supersede(): void {
    const cb = this.#onTakeover;
    this.#onTakeover = undefined;
    cb?.();
  }

  /**
   * DATA at `offset` (§9.13): the next offset of the range, ending within it, else BAD_OFFSET;
   * or, from `start`, DATA sent before RANGE_OK whose bytes below RANGE_OK's offset are skipped.
   * `onWritten` runs once `data` is no longer needed. Returns whether to pause reading.
   */
  write(offset: number, data: Buffer, onWritten: () => void): boolean {
    if (this.#failure !== undefined) throw this.#failure;
    // DATA the client sent right behind RANGE, before it read RANGE_OK (§9.13 step 2, revision
    // 1.12), goes on from the range's start: where this claim resumes above it, the bytes below
    // RANGE_OK's offset are held already and skipped, until that DATA reaches it or the client,
    // having read RANGE_OK, goes on at its offset (the next check).
    if (offset !== this.#received && this.#received === this.offset && offset === (this.#behind ?? this.start) && offset + data.length <= this.end) {
      const upTo = offset + data.length;
      if (upTo <= this.offset) {
        this.#behind = upTo;
        onWritten();
        return this.paused;
      }
      return this.write(this.offset, data.subarray(this.offset - offset), onWritten);
    }
    if (offset !== this.#received || offset + data.length > this.end) {
      throw new UploadError('BAD_OFFSET', `DATA at ${offset} (${data.length} bytes) in range [${this.start}, ${this.end}) where ${this.#received} was next`);
    }
    this.#received += data.length;
    this.#inflight += data.length;
    this.#budget.take(data.length, 1);
    const end = this.#received;
    this.#upload.writeAt(offset, data).then(
      () => this.#settled(data.length, end, undefined, onWritten),
      (err: unknown) => this.#settled(data.length, end, err instanceof Error ? err : new Error(String(err)), onWritten),
    );
    return this.paused;
  }

  get paused(): boolean {
    return this.#inflight >= MAX_RANGE_INFLIGHT_BYTES || !this.#budget.hasRoomFor(MAX_RANGE_INFLIGHT_BYTES / 4, 1);
  }

  /** Resolves once this claim may take more DATA (its writes and the daemon's budget drained). */
  async drained(): Promise<void> {
    if (this.#inflight > MAX_RANGE_INFLIGHT_BYTES * LOW_WATER_FRACTION) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    if (!this.#budget.hasRoomFor(MAX_RANGE_INFLIGHT_BYTES / 4, 1)) await new Promise<void>((resolve) => this.#budget.whenLow(resolve));
  }

  /** Waits for the writes so far, makes them durable and records them: the ACK offset. */
  async checkpoint(): Promise<number> {
    await this.#allWritten();
    if (this.#failure !== undefined) throw this.#failure;
    return this.#upload.checkpoint(this.#slot, this.#written);
  }

  /** RANGE_END (§9.13): the whole range arrived; it is made durable (RANGE_DONE) and let go. */
  async finish(end: number): Promise<number> {
    if (end !== this.end || this.#received !== this.end) {
      throw new UploadError('BAD_OFFSET', `RANGE_END ${end} after ${this.#received} of range [${this.start}, ${this.end})`);
    }
    const durable = await this.checkpoint();
    await this.release();
    return durable;
  }

  /** Teardown: waits for the writes, records them (best effort), lets go of the range. Idempotent. */
  async release(): Promise<void> {
    if (this.#done) return this.released;
    this.#done = true;
    this.#onTakeover = undefined;
    try {
      await this.checkpoint();
    } catch {
      // The record keeps the range's last durable offset; a resume starts from there.
    }
    await this.#upload.released(this.#slot, this);
    this.#resolveReleased();
    return undefined;
  }

  #settled(bytes: number, end: number, err: Error | undefined, onWritten: () => void): void {
    this.#inflight -= bytes;
    this.#budget.give(bytes, 1);
    onWritten();
    if (err !== undefined) this.#failure ??= err;
    // Writes of one connection complete in any order: the written end moves once all before it did.
    if (this.#inflight === 0 && this.#failure === undefined) this.#written = this.#received;
    else if (this.#failure === undefined && end <= this.#written) this.#written = Math.max(this.#written, end);
    if (this.#inflight <= MAX_RANGE_INFLIGHT_BYTES * LOW_WATER_FRACTION) for (const wake of this.#waiters.splice(0)) wake();
  }

  async #allWritten(): Promise<void> {
    while (this.#inflight > 0) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
}
