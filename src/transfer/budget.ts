// The byte budget every connection's queues share (MAX_QUEUED_BYTES_TOTAL on the daemon): bytes
// taken when a chunk is accepted, given back once it is done with; a paused queue is called back
// at the low-water mark.
import { LOW_WATER_FRACTION } from './config.js';

/**
 * Queued bytes shared by every connection (MAX_QUEUED_BYTES_TOTAL). Queues take bytes when they
 * accept a chunk and give them back once it is on disk; a queue paused on the budget is called
 * back when usage falls to the low-water mark.
 */
export class ByteBudget {
  readonly maxBytes: number;
  readonly lowWaterBytes: number;
  #used = 0;
  #peak = 0;
  readonly #waiters = new Set<() => void>();

  constructor(maxBytes: number, lowWaterBytes = Math.floor(maxBytes * LOW_WATER_FRACTION)) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) throw new RangeError('maxBytes must be a positive integer');
    if (!Number.isSafeInteger(lowWaterBytes) || lowWaterBytes < 0 || lowWaterBytes >= maxBytes) {
      throw new RangeError('lowWaterBytes must be an integer in [0, maxBytes)');
    }
    this.maxBytes = maxBytes;
    this.lowWaterBytes = lowWaterBytes;
  }

  get usedBytes(): number {
    return this.#used;
  }
  /** Highest usage seen: lets tests and metrics check the bound. */
  get peakBytes(): number {
    return this.#peak;
  }
  /** Whether `bytes` more would still fit under the maximum. */
  hasRoomFor(bytes: number): boolean {
    return this.#used + bytes <= this.maxBytes;
  }
  get belowLowWater(): boolean {
    return this.#used <= this.lowWaterBytes;
  }

  take(bytes: number): void {
    this.#used += bytes;
    if (this.#used > this.#peak) this.#peak = this.#used;
  }

  give(bytes: number): void {
    this.#used -= bytes;
    if (this.#used <= this.lowWaterBytes && this.#waiters.size > 0) {
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
