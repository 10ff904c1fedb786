// The budgets every connection shares. ByteBudget: the queued chunks of all write queues
// (MAX_QUEUED_BYTES_TOTAL on the daemon), counted in bytes and in chunks, taken when a chunk is
// accepted and given back once it is done with; a paused queue is called back at the low-water
// mark. MemoryBudget: everything a connection holds in memory (--max-memory), which decides whom
// the daemon stops reading when it is reached.
import { LOW_WATER_FRACTION, MAX_QUEUED_CHUNKS_TOTAL } from './config.js';

/**
 * Queued bytes and chunks shared by every connection (MAX_QUEUED_BYTES_TOTAL,
 * MAX_QUEUED_CHUNKS_TOTAL). Queues take them when they accept a chunk and give them back once it
 * is on disk; a queue paused on the budget is called back when usage falls to the low-water mark.
 */
export class ByteBudget {
  readonly maxBytes: number;
  readonly lowWaterBytes: number;
  readonly maxChunks: number;
  #used = 0;
  #chunks = 0;
  #peak = 0;
  readonly #waiters = new Set<() => void>();

  constructor(maxBytes: number, lowWaterBytes = Math.floor(maxBytes * LOW_WATER_FRACTION), maxChunks = MAX_QUEUED_CHUNKS_TOTAL) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError('maxBytes must be a positive integer');
    if (!Number.isSafeInteger(lowWaterBytes) || lowWaterBytes < 0 || lowWaterBytes >= maxBytes) {
      throw new RangeError('lowWaterBytes must be an integer in [0, maxBytes)');
    }
    if (!Number.isSafeInteger(maxChunks) || maxChunks <= 0) throw new RangeError('maxChunks must be a positive integer');
    this.maxBytes = maxBytes;
    this.lowWaterBytes = lowWaterBytes;
    this.maxChunks = maxChunks;
  }

  get usedBytes(): number {
    return this.#used;
  }
  get usedChunks(): number {
    return this.#chunks;
  }
  /** Highest usage seen: lets tests and metrics check the bound. */
  get peakBytes(): number {
    return this.#peak;
  }
  /** Whether `bytes` (and `chunks`) more would still fit under the maximum. */
  hasRoomFor(bytes: number, chunks = 0): boolean {
    return this.#used + bytes <= this.maxBytes && this.#chunks + chunks <= this.maxChunks;
  }
  get belowLowWater(): boolean {
    return this.#used <= this.lowWaterBytes && this.#chunks <= this.maxChunks * LOW_WATER_FRACTION;
  }

  take(bytes: number, chunks = 0): void {
    this.#used += bytes;
    this.#chunks += chunks;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  give(bytes: number, chunks = 0): void {
    this.#used -= bytes;
    this.#chunks -= chunks;
    if (this.#waiters.size > 0 && this.belowLowWater) {
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const waiter of waiters) waiter();
    }
  }

  /** Calls `cb` once, the next time usage falls to the low-water mark. */
  whenLow(cb: () => void): void {
    this.#waiters.add(cb);
  }
  cancelWhenLow(cb: () => void): void {
    this.#waiters.delete(cb);
  }
}

/** One connection's side of the MemoryBudget. */
export interface MemoryUser {
  /** Bytes it holds now: bodies, its share of queues and hashing, incomplete records, unread output. */
  measure(): number;
  /**
   * Whether stopping it now would stop it growing. False in the middle of a record whose buffer
   * it already holds: stopped there it would keep that memory (and not even see its peer leave),
   * while reading on costs nothing more and frees it.
   */
  pausable(): boolean;
  /** Stop reading (the budget is reached and this user holds among the most). */
  pause(): void;
  /** Read again. */
  resume(): void;
}

interface Entry {
  used: number;
  paused: boolean;
  /** Bytes it waits to start a record of (admit() said no), or 0. */
  wants: number;
}

/**
 * The buffers long records are opened into, counted apart (the body pool's buffers out): what
 * they hold in all now, and how much of the budget they may take.
 */
export interface RecordBuffers {
  held(): number;
  readonly maxBytes: number;
}

/**
 * Everything the daemon holds for its connections, against one maximum (--max-memory). Two
 * rules keep it there:
 * - A long record's buffer is admitted only while it fits (admit()), and, with `records`, while
 *   the record buffers out stay within their share (or none is out); otherwise its connection
 *   waits, reading nothing, and is called back as memory frees (first come, first served).
 * - When usage passes the maximum anyway (small records, unread output), the connections
 *   holding the most stop being read, largest first, until the rest are under the low-water
 *   mark; connections holding at most `floorBytes` are never stopped, so a newcomer still gets
 *   its handshake and OPEN through. Each is read again once it is no longer among them.
 */
export class MemoryBudget {
  readonly maxBytes: number;
  readonly lowWaterBytes: number;
  readonly floorBytes: number;
  #used = 0;
  #peak = 0;
  readonly #users = new Map<MemoryUser, Entry>();
  /** Users waiting for a record's buffer, first come first served... */
  readonly #waiting = new Set<MemoryUser>();
  /** ...and the one called back to take it now. */
  #called: MemoryUser | null = null;
  #checking = false;
  readonly #records: RecordBuffers | undefined;

  constructor(maxBytes: number, floorBytes: number, lowWaterFraction = 0.75, records?: RecordBuffers) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError('maxBytes must be a positive integer');
    this.maxBytes = maxBytes;
    this.lowWaterBytes = Math.floor(maxBytes * lowWaterFraction);
    this.floorBytes = floorBytes;
    this.#records = records;
  }

  /**
   * Whether a record buffer of `bytes` fits now, beside `reserved` bytes about to be taken (one
   * more record buffer when reserved > 0). The record share keeps the buffers out, the pool's
   * working set, small when many connections each hold a record that is still arriving: each
   * buffer first touched costs page faults, and a smaller set stays in cache (issue 15). One
   * record is always admitted while none is out, so that other holdings cannot starve records.
   */
  #fits(bytes: number, reserved: number): boolean {
    if (this.#used + reserved + bytes > this.maxBytes) return false;
    const records = this.#records;
    if (records === undefined) return true;
    const out = records.held() + reserved;
    return out === 0 || out + bytes <= records.maxBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }
  get peakBytes(): number {
    return this.#peak;
  }
  /** Users stopped by the budget right now (paused or waiting for a record's buffer). */
  get stopped(): number {
    let n = 0;
    for (const e of this.#users.values()) if (e.paused || e.wants > 0) n++;
    return n;
  }

  /** Where `user` stands with the budget (for the log of a connection that closes). */
  standing(user: MemoryUser): { used: number; paused: boolean; wants: number; called: boolean } | undefined {
    const e = this.#users.get(user);
    return e === undefined ? undefined : { used: e.used, paused: e.paused, wants: e.wants, called: this.#called === user };
  }

  add(user: MemoryUser): void {
    this.#users.set(user, { used: 0, paused: false, wants: 0 });
  }

  remove(user: MemoryUser): void {
    const e = this.#users.get(user);
    if (e === undefined) return;
    this.#users.delete(user);
    this.#waiting.delete(user);
    if (this.#called === user) this.#called = null;
    this.#used -= e.used;
    this.#afterDecrease();
  }

  /** Re-measures `user` after what it holds changed. */
  update(user: MemoryUser): void {
    const e = this.#users.get(user);
    if (e === undefined) return;
    const now = user.measure();
    const delta = now - e.used;
    if (delta === 0) return;
    e.used = now;
    this.#used += delta;
    if (this.#used > this.#peak) this.#peak = this.#used;
    if (delta > 0 && this.#used > this.maxBytes) this.#rebalance();
    else if (delta < 0) this.#afterDecrease();
  }

  /**
   * Whether `user` may take a buffer of `bytes` for a record now. If not, it is to read nothing
   * until its resume() is called (it waits in line for memory).
   */
  admit(user: MemoryUser, bytes: number): boolean {
    const e = this.#users.get(user);
    if (e === undefined) return true;
    const first = this.#called ?? this.#nextInLine();
    if (this.#fits(bytes, 0) && (first === undefined || first === user)) {
      e.wants = 0;
      this.#waiting.delete(user);
      if (this.#called === user) this.#called = null;
      // The next in line is called if its record fits beside this one's.
      this.#callNext(bytes);
      return true;
    }
    // Called back but beaten to the memory: back in line, and the next may be called.
    if (this.#called === user) this.#called = null;
    if (e.wants === 0) {
      e.wants = bytes;
      this.#waiting.add(user);
    }
    // Sent behind another while memory would have fitted: that one is called now, else both
    // would wait for memory to free, each holding what it has (a record opens piece by piece).
    this.#callNext();
    return false;
  }

  #afterDecrease(): void {
    if (this.#used <= this.lowWaterBytes || this.#anyPaused()) this.#rebalance();
    // After the rebalance, which may have let a waiting user read again: a stopped connection
    // still handles the frames it had read, so it can be in line while stopped.
    this.#callNext();
  }

  /** Calls back the first in line once its record fits (beside `reserved` bytes about to be taken); it then takes it (admit). */
  #callNext(reserved = 0): void {
    if (this.#called !== null) return;
    const first = this.#nextInLine();
    const e = first === undefined ? undefined : this.#users.get(first);
    if (first === undefined || e === undefined || !this.#fits(e.wants, reserved)) return;
    this.#called = first;
    this.#waiting.delete(first);
    e.wants = 0;
    first.resume();
  }

  /** The first waiting user that is not paused (a paused one cannot take its buffer anyway). */
  #nextInLine(): MemoryUser | undefined {
    for (const user of this.#waiting) if (this.#users.get(user)?.paused === false) return user;
    return undefined;
  }

  #anyPaused(): boolean {
    for (const e of this.#users.values()) if (e.paused) return true;
    return false;
  }

  /** Stops the largest users until the rest fit under the low-water mark; reads the others again. */
  #rebalance(): void {
    if (this.#checking) return;
    this.#checking = true;
    try {
      const stop = new Set<MemoryUser>();
      if (this.#used > this.lowWaterBytes) {
        const heavy = [...this.#users]
          .filter(([user, e]) => e.used > this.floorBytes && (e.paused || user.pausable()))
          .sort(([, a], [, b]) => b.used - a.used);
        let rest = this.#used;
        for (const [user, e] of heavy) {
          if (rest <= this.lowWaterBytes) break;
          stop.add(user);
          rest -= e.used;
        }
      }
      for (const [user, e] of this.#users) {
        const pause = stop.has(user);
        if (pause === e.paused) continue;
        e.paused = pause;
        if (pause) user.pause();
        else if (e.wants === 0) user.resume();
      }
    } finally {
      this.#checking = false;
    }
  }
}
