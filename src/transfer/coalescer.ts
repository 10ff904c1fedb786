// Small DATA chunks copied together before they are queued (issue 14): a client sending 1-byte
// records would otherwise cost one queued write, one hash message and one release callback per
// byte. Consecutive chunks of at most MAX_COALESCED_CHUNK_BYTES are copied into the tail of one
// buffer of COALESCE_BUFFER_BYTES and handed on as one chunk when the caller flushes (the daemon:
// at the end of each socket read, and before any other frame), so what is queued stays a few
// chunks per read whatever the records' size. Larger chunks are passed on as they are.
import type { BodyLease, BodyPool, LeaseAccount } from './body-pool.js';
import { COALESCE_BUFFER_BYTES, MAX_COALESCED_CHUNK_BYTES } from './config.js';

/** A chunk handed on: `lease` is one hold on the buffer under `data`, now the receiver's. */
export interface CoalescedChunk {
  readonly offset: number;
  readonly data: Buffer;
  readonly lease: BodyLease;
}

export class Coalescer {
  /** Our own hold on the buffer being filled; each chunk handed on holds it too. */
  #lease: BodyLease | null = null;
  /** Bytes of the buffer in use... */
  #fill = 0;
  /** ...of which those from here on are not handed on yet, */
  #start = 0;
  /** and start at this stream offset. */
  #offset = 0;

  constructor(
    private readonly pool: BodyPool,
    private readonly account?: LeaseAccount,
  ) {}

  /** Whether a chunk of this size is copied (the others are passed on as they are). */
  static takes(data: Buffer): boolean {
    return data.length > 0 && data.length <= MAX_COALESCED_CHUNK_BYTES;
  }

  /** Bytes copied in and not handed on yet. */
  get pendingBytes(): number {
    return this.#fill - this.#start;
  }

  /**
   * Copies `data` (at stream `offset`) after the pending bytes. What is pending is handed to
   * `emit` first if `data` does not follow it or does not fit: chunks keep their order, and a
   * misplaced one is refused where it is handed on.
   */
  add(offset: number, data: Buffer, emit: (chunk: CoalescedChunk) => void): void {
    if (this.pendingBytes > 0 && offset !== this.#offset + this.pendingBytes) this.flush(emit);
    let lease = this.#lease;
    if (lease === null || this.#fill + data.length > lease.buffer.length) {
      this.flush(emit);
      this.#retire();
      lease = this.pool.lease(this.pool.take(COALESCE_BUFFER_BYTES), this.account);
      this.#lease = lease;
    }
    if (this.pendingBytes === 0) this.#offset = offset;
    data.copy(lease.buffer, this.#fill);
    this.#fill += data.length;
  }

  /** Hands the pending bytes to `emit` as one chunk. */
  flush(emit: (chunk: CoalescedChunk) => void): void {
    const lease = this.#lease;
    if (lease === null || this.pendingBytes === 0) return;
    const chunk = { offset: this.#offset, data: lease.buffer.subarray(this.#start, this.#fill), lease: lease.retain() };
    this.#start = this.#fill;
    // A buffer mostly used is let go now rather than held by an idle connection.
    if (this.#fill * 2 > lease.buffer.length) this.#retire();
    emit(chunk);
  }

  /** Lets go of the buffer; pending bytes are dropped (the connection is closing). */
  close(): void {
    this.#retire();
  }

  #retire(): void {
    this.#lease?.release();
    this.#lease = null;
    this.#fill = 0;
    this.#start = 0;
  }
}
