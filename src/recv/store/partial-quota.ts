// Disk held by partial uploads, per client (§9.5, issue 14 item 4): every partial reserves its
// full `size` against the account that opened it last (the client's key fingerprint, or the
// source address of an anonymous client: account.ts), from OPEN until it is published,
// discarded or swept. An OPEN that would take an account above the limit is NO_SPACE before
// anything is created, so clients that leave partials behind can fill only their own share.

import { UploadError } from '../../proto/errors.js';

interface Charge {
  readonly account: string;
  readonly bytes: number;
}

export class PartialQuota {
  readonly limit: number;
  readonly #held = new Map<string, number>();
  readonly #charges = new Map<string, Charge>();

  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes reserved by `account`'s partials. */
  heldBy(account: string): number {
    return this.#held.get(account) ?? 0;
  }

  /** Bytes reserved by every partial. */
  get total(): number {
    let sum = 0;
    for (const bytes of this.#held.values()) sum += bytes;
    return sum;
  }

  /**
   * Charges partial `id` (`bytes`) to `account` in place of its earlier charge, or throws
   * NO_SPACE if `account` would then hold more than the limit. Returns what puts the earlier
   * charge back (for an OPEN that fails after this).
   */
  reserve(id: string, account: string, bytes: number): () => void {
    const before = this.#charges.get(id);
    const held = this.heldBy(account) - (before?.account === account ? before.bytes : 0);
    if (held + bytes > this.limit) {
      throw new UploadError(
        'NO_SPACE',
        `this client's partial uploads would hold ${held + bytes} bytes, above the server's limit of ${this.limit} per client (--max-partial-bytes); finish them, or wait until they expire`,
      );
    }
    this.#set(id, { account, bytes });
    return () => this.#set(id, before);
  }

  /** Rebuilds a charge at start-up (from a partial's record), whatever the limit. */
  restore(id: string, account: string, bytes: number): void {
    this.#set(id, { account, bytes });
  }

  /** The partial is gone (published, discarded or swept): its reservation goes back. */
  release(id: string): void {
    this.#set(id, undefined);
  }

  #set(id: string, charge: Charge | undefined): void {
    const before = this.#charges.get(id);
    if (before !== undefined) {
      const left = this.heldBy(before.account) - before.bytes;
      if (left > 0) this.#held.set(before.account, left);
      else this.#held.delete(before.account);
      this.#charges.delete(id);
    }
    if (charge === undefined) return;
    this.#charges.set(id, charge);
    this.#held.set(charge.account, this.heldBy(charge.account) + charge.bytes);
  }
}
