// Read-backs charged to the client that asks for them (§9.7, issue 14 item 8). Re-hashing a
// partial's durable prefix (a resume without a parked hash) or an append-only re-send's stored
// file costs the hashing thread what it reads, and a client can ask again and again for the price
// of an OPEN. So each client (store/account.ts) has at most one read-back in progress, and an
// allowance of bytes that refills over time (a token bucket that may be overdrawn once): a
// read-back starts only when the allowance is not overdrawn, and its bytes are taken off it. A
// client's further read-backs wait for their turn (a few at most; the connection sends PROGRESS
// meanwhile, §9.7), or are RATE_LIMITED (transient) when the wait would be long.

import { setTimeout as delay } from 'node:timers/promises';
import { ResourceError } from '../../proto/errors.js';

export interface ReadBackLimits {
  readonly bytesPerSecond: number;
  readonly burstBytes: number;
  readonly maxWaiting: number;
  readonly maxWaitMs: number;
}

/** One client's allowance. */
interface Allowance {
  /** Bytes it may read back now; negative while overdrawn. */
  balance: number;
  /** When `balance` was last brought up to date (ms). */
  at: number;
  busy: boolean;
  waiting: number;
  /** Bytes charged over the daemon's life (logs, tests). */
  charged: number;
  /** Wakes the waiters when the read-back in progress ends. */
  wake: (() => void)[];
}

/** A client's turn to read back: charge what was read, then release (once). */
export interface ReadBackTurn {
  charge(bytes: number): void;
  release(): void;
}

/** Allowances not used for this long and full again are forgotten (the map stays small). */
const FORGET_AFTER_MS = 60_000;

export class ReadBackGate {
  readonly #limits: ReadBackLimits;
  readonly #byAccount = new Map<string, Allowance>();
  readonly #now: () => number;
  /** Idle allowances are looked for once the map has grown to this (amortised O(1) per account). */
  #pruneAt = 1024;

  constructor(limits: ReadBackLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  /**
   * Charges `account` for a read-back that ran without a turn (one the store did not foresee:
   * the hashing thread had dropped a parked hash it thought it held).
   */
  chargeUnforeseen(account: string, bytes: number): void {
    const a = this.#allowance(account);
    this.#refill(a);
    a.balance -= bytes;
    a.charged += bytes;
  }

  /**
   * Runs `read` (a read-back) in `account`'s turn and charges what it read: its result's
   * `reread`, or on failure the bytes `progress()` last reported.
   */
  async run<T extends { readonly reread: number }>(account: string, signal: AbortSignal | undefined, progress: () => number, read: () => Promise<T>): Promise<T> {
    const turn = await this.acquire(account, signal);
    try {
      const result = await read();
      turn.charge(result.reread);
      return result;
    } catch (err) {
      turn.charge(progress());
      throw err;
    } finally {
      turn.release();
    }
  }

  /** Bytes read back for `account` so far. */
  chargedTo(account: string): number {
    return this.#byAccount.get(account)?.charged ?? 0;
  }

  /**
   * Waits for `account`'s turn: no read-back of it in progress and its allowance not overdrawn.
   * RATE_LIMITED when too many of its requests wait already or the allowance needs longer than
   * maxWaitMs to recover; rejects with `signal`'s reason when aborted.
   */
  async acquire(account: string, signal?: AbortSignal): Promise<ReadBackTurn> {
    const a = this.#allowance(account);
    if (a.waiting >= this.#limits.maxWaiting) {
      throw new ResourceError('RATE_LIMITED', `more than ${this.#limits.maxWaiting} read-backs of this client wait already; retry later`);
    }
    a.waiting++;
    try {
      // Each round ends with the slot free or the debt paid; bounded by maxWaitMs overall.
      for (let round = 0; ; round++) {
        signal?.throwIfAborted();
        this.#refill(a);
        if (!a.busy && a.balance >= 0) break;
        if (a.busy) {
          await new Promise<void>((resolve, reject) => {
            const onAbort = (): void => reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
            signal?.addEventListener('abort', onAbort, { once: true });
            a.wake.push(() => {
              signal?.removeEventListener('abort', onAbort);
              resolve();
            });
          });
          continue;
        }
        const waitMs = Math.ceil((-a.balance / this.#limits.bytesPerSecond) * 1000);
        if (waitMs > this.#limits.maxWaitMs || round > 1000) {
          throw new ResourceError('RATE_LIMITED', `this client read back more than its allowance; retry in ${Math.ceil(waitMs / 1000)} s`);
        }
        await delay(waitMs, undefined, signal === undefined ? {} : { signal });
      }
    } finally {
      a.waiting--;
    }
    a.busy = true;
    let released = false;
    return {
      charge: (bytes: number) => {
        this.#refill(a);
        a.balance -= bytes;
        a.charged += bytes;
      },
      release: () => {
        if (released) return;
        released = true;
        a.busy = false;
        a.at = Math.max(a.at, this.#now());
        for (const wake of a.wake.splice(0)) wake();
      },
    };
  }

  #allowance(account: string): Allowance {
    let a = this.#byAccount.get(account);
    if (a === undefined) {
      if (this.#byAccount.size >= this.#pruneAt) {
        this.#forgetIdle();
        this.#pruneAt = Math.max(1024, 2 * this.#byAccount.size);
      }
      a = { balance: this.#limits.burstBytes, at: this.#now(), busy: false, waiting: 0, charged: 0, wake: [] };
      this.#byAccount.set(account, a);
    }
    return a;
  }

  #refill(a: Allowance): void {
    const now = this.#now();
    const earned = ((now - a.at) / 1000) * this.#limits.bytesPerSecond;
    a.balance = Math.min(this.#limits.burstBytes, a.balance + earned);
    a.at = now;
  }

  /** Drops allowances that are idle, full and old: a new one is the same. */
  #forgetIdle(): void {
    const now = this.#now();
    for (const [account, a] of this.#byAccount) {
      if (a.busy || a.waiting > 0 || now - a.at < FORGET_AFTER_MS) continue;
      this.#refill(a);
      if (a.balance >= this.#limits.burstBytes) this.#byAccount.delete(account);
    }
  }
}
