// Positional writes of one upload, with backpressure counted in bytes and in chunks (STYLE.md
// "Backpressure"): at most MAX_QUEUED_CHUNKS per queue, and each chunk costs CHUNK_OVERHEAD_BYTES
// more of the shared budget than its bytes (issue 14: a million 1-byte chunks fitted in 5 MiB).
//
// Chunks arrive in stream order (§9.1 step 3) and are written in that order, one write at a time
// (Linux serialises buffered writes to a file anyway): each write takes every chunk queued by the
// time it starts (one writev), so a slow disk gets fewer, larger writes rather than more of them.
// Every byte below `writtenOffset` is written: the only offset that may become durable and be ACKed.

import PQueue from 'p-queue';
import { ResourceError, StxError, UploadError } from '../proto/errors.js';
import { ByteBudget } from '../transfer/budget.js';
import { MAX_DATA_CHUNK_BYTES, MAX_SAFE_UINT } from '../proto/limits.js';
import { CHUNK_OVERHEAD_BYTES, LOW_WATER_FRACTION, MAX_QUEUED_CHUNKS } from '../transfer/config.js';
import { alignedPrefix } from './local/direct-io.js';
import { errnoOf, toStxError } from '../transfer/io-error.js';

const MiB = 1024 * 1024;
/** One write of a queue takes at most this many bytes... */
const MAX_WRITE_BATCH_BYTES = 8 * MiB;
/** ...and at most this many buffers (Linux accepts 1024 per writev). */
const MAX_WRITE_BATCH_BUFFERS = 256;

/** `buffers` without their first `skip` bytes (after a short write). */
function remainder(buffers: readonly Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  let left = skip;
  for (const b of buffers) {
    if (left >= b.length) {
      left -= b.length;
      continue;
    }
    out.push(left > 0 ? b.subarray(left) : b);
    left = 0;
  }
  return out;
}

/**
 * Where the queue writes: an open file (a FileHandle is one), or anything with positional
 * vectored writes and a data sync (storage/memory.ts).
 */
export interface PositionalFile {
  /** Writes `buffers` in order from `position`; may write fewer bytes than given. */
  writev(buffers: Buffer[], position: number): Promise<{ readonly bytesWritten: number }>;
  /** Makes every byte written so far durable (fdatasync). */
  datasync(): Promise<void>;
}

export interface WriteQueueOptions {
  /** Bytes this queue may hold (MAX_QUEUED_BYTES_PER_CONNECTION); a caller that pauses when told never exceeds it. */
  readonly maxQueuedBytes: number;
  /** Largest chunk a caller enqueues (MAX_DATA_CHUNK_BYTES); the pause signal keeps room for one. */
  readonly maxChunkBytes?: number;
  /** Chunks this queue may hold before it asks the caller to pause; MAX_QUEUED_CHUNKS by default. */
  readonly maxQueuedChunks?: number;
  /** Resume at or below this many queued bytes; LOW_WATER_FRACTION of maxQueuedBytes by default. */
  readonly lowWaterBytes?: number;
  /** File offset of the first chunk (the resume offset); 0 by default. */
  readonly startOffset?: number;
  /**
   * An O_DIRECT handle on the same file (direct-io.ts): writes whose buffers, offset and length
   * are all aligned go through it and skip the page cache. The caller owns and closes it.
   */
  readonly direct?: PositionalFile | null;
}

interface FlushWaiter {
  readonly target: number;
  readonly resolve: () => void;
  readonly reject: (err: StxError) => void;
}

/**
 * Writes chunks at their offsets through p-queue. `enqueue` never blocks: it returns true when
 * the caller should stop reading (pause) and the queue calls its drain listeners once the caller
 * may read again. The first write error is kept and thrown by the next enqueue/flush/sync;
 * nothing is ever an unhandled rejection.
 */
export class WriteQueue {
  readonly #fh: PositionalFile;
  /** Null when there is none, or once it refused a write (EINVAL: the filesystem's rules differ). */
  #direct: PositionalFile | null;
  readonly #budget: ByteBudget;
  readonly #pq: PQueue;
  readonly #maxQueued: number;
  readonly #maxChunk: number;
  readonly #lowWater: number;
  /** Every byte below it is written. */
  #written: number;
  readonly #drainListeners = new Set<() => void>();
  readonly #flushWaiters: FlushWaiter[] = [];
  readonly #onBudgetLow = (): void => this.#maybeDrain();
  /**
   * Accepted chunks no write has taken yet, from #head on; contiguous, in offset order. Taken
   * from the front by index (a write takes up to MAX_WRITE_BATCH_BUFFERS): no Array.shift, which
   * moves every element and made a long queue of tiny chunks quadratic.
   */
  #pending: Array<{ readonly buf: Buffer; readonly onWritten: (() => void) | undefined }> = [];
  #head = 0;
  #pendingOffset: number;
  #queued = 0;
  #queuedChunks = 0;
  readonly #maxChunks: number;
  #peakQueued = 0;
  #enqueuedOffset: number;
  #paused = false;
  #closed = false;
  #failure: StxError | undefined;

  constructor(fh: PositionalFile, options: WriteQueueOptions, budget: ByteBudget) {
    const { maxQueuedBytes } = options;
    const maxChunk = options.maxChunkBytes ?? MAX_DATA_CHUNK_BYTES;
    const lowWater = options.lowWaterBytes ?? Math.floor(maxQueuedBytes * LOW_WATER_FRACTION);
    const start = options.startOffset ?? 0;
    if (!Number.isSafeInteger(maxChunk) || maxChunk < 1) throw new RangeError('maxChunkBytes must be ≥ 1');
    if (!Number.isSafeInteger(maxQueuedBytes) || maxQueuedBytes < maxChunk) {
      throw new RangeError('maxQueuedBytes must be ≥ maxChunkBytes');
    }
    if (!Number.isSafeInteger(lowWater) || lowWater < 0 || lowWater > maxQueuedBytes - maxChunk) {
      throw new RangeError('lowWaterBytes must be in [0, maxQueuedBytes − maxChunkBytes]');
    }
    if (!Number.isSafeInteger(start) || start < 0) throw new RangeError('startOffset must be a safe integer ≥ 0');
    this.#fh = fh;
    this.#direct = options.direct ?? null;
    this.#budget = budget;
    this.#pq = new PQueue({ concurrency: 1 });
    this.#maxQueued = maxQueuedBytes;
    this.#maxChunk = maxChunk;
    this.#maxChunks = options.maxQueuedChunks ?? MAX_QUEUED_CHUNKS;
    this.#lowWater = lowWater;
    this.#written = start;
    this.#enqueuedOffset = start;
    this.#pendingOffset = start;
  }

  /** Bytes accepted but not yet written (or dropped after a failure). */
  get queuedBytes(): number {
    return this.#queued;
  }
  /** Chunks accepted but not yet written. */
  get queuedChunks(): number {
    return this.#queuedChunks;
  }
  get peakQueuedBytes(): number {
    return this.#peakQueued;
  }
  /** End of the completed writes: every byte below it has been written. */
  get writtenOffset(): number {
    return this.#written;
  }
  /** End of the last accepted chunk: the next enqueue must start here. */
  get enqueuedOffset(): number {
    return this.#enqueuedOffset;
  }
  /** True from an enqueue that returned true until the drain listeners run. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Accepts `buf` for position `offset` (which must be `enqueuedOffset`) and returns whether the
   * caller should pause: this queue lacks room for another full chunk, or the shared budget
   * does. The queue keeps `buf` until written: the caller must not reuse or modify it before
   * `onWritten` runs, once the write is done (or dropped after a failure).
   * Throws the stored write error, BAD_OFFSET for a misplaced chunk, INTERNAL if the caller
   * overran the hard bound (maxQueuedBytes + maxChunkBytes) by ignoring the pause signal.
   */
  enqueue(offset: number, buf: Buffer, onWritten?: () => void): boolean {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new ResourceError('INTERNAL', 'write queue used after close');
    if (offset !== this.#enqueuedOffset) {
      throw new UploadError('BAD_OFFSET', `chunk at ${offset}, expected ${this.#enqueuedOffset}`);
    }
    const length = buf.length;
    if (offset + length > MAX_SAFE_UINT) throw new UploadError('BAD_OFFSET', 'chunk ends beyond 2^53 − 1');
    if (length > this.#maxChunk) throw new ResourceError('INTERNAL', `chunk of ${length} bytes over ${this.#maxChunk}`);
    if (this.#queued + length > this.#maxQueued + this.#maxChunk) {
      throw new ResourceError('INTERNAL', 'write queue over its bound: the caller ignored backpressure');
    }
    if (length > 0) {
      this.#enqueuedOffset = offset + length;
      this.#queued += length;
      this.#queuedChunks++;
      if (this.#queued > this.#peakQueued) this.#peakQueued = this.#queued;
      this.#budget.take(length + CHUNK_OVERHEAD_BYTES, 1);
      this.#pending.push({ buf, onWritten });
      this.#schedule();
    } else {
      onWritten?.();
    }
    if (
      this.#queued + this.#maxChunk > this.#maxQueued ||
      this.#queuedChunks >= this.#maxChunks ||
      !this.#budget.hasRoomFor(this.#maxChunk + CHUNK_OVERHEAD_BYTES, 1)
    ) {
      this.#paused = true;
    }
    return this.#paused;
  }

  /** Calls `cb` every time the queue leaves the paused state. Returns an unsubscribe function. */
  onDrain(cb: () => void): () => void {
    this.#drainListeners.add(cb);
    return () => this.#drainListeners.delete(cb);
  }

  /** Resolves when not paused (at once if not paused now). Never rejects; the next call throws. */
  drained(): Promise<void> {
    if (!this.#paused) return Promise.resolve();
    return new Promise((resolve) => {
      const off = this.onDrain(() => {
        off();
        resolve();
      });
    });
  }

  /** Waits until every chunk accepted so far is written; returns writtenOffset. */
  flush(): Promise<number> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const target = this.#enqueuedOffset;
    if (this.#written >= target) return Promise.resolve(this.#written);
    return new Promise<void>((resolve, reject) => {
      this.#flushWaiters.push({ target, resolve, reject });
    }).then(() => this.#written);
  }

  /**
   * flush, then fdatasync. Returns the durable offset: the bytes written before the sync started. Writes accepted meanwhile keep going and are not waited for.
   */
  async sync(): Promise<number> {
    await this.flush();
    const durable = this.#written;
    try {
      await this.#fh.datasync();
    } catch (err) {
      // After a failed fsync the kernel may have dropped dirty pages: nothing more is trusted.
      const failure = toStxError(err, 'syncing', 'partial upload');
      this.#fail(failure);
      throw failure;
    }
    return durable;
  }

  /**
   * Lets queued writes finish (errors are kept, not thrown), detaches from the budget, wakes a
   * paused caller and refuses further chunks. The caller still owns and closes the file.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#pq.onIdle();
    this.#budget.cancelWhenLow(this.#onBudgetLow);
    if (this.#paused) {
      this.#paused = false;
      for (const listener of [...this.#drainListeners]) listener();
    }
    this.#drainListeners.clear();
  }

  /** The stored write error, if any. */
  get failure(): StxError | undefined {
    return this.#failure;
  }

  /**
   * Queues a write task unless one is already waiting to start: a task takes every chunk pending
   * when it starts, so one waiting task covers all chunks that arrive meanwhile. A running task
   * calls this before it ends, so the p-queue is never idle while chunks are pending.
   */
  #schedule(): void {
    if (this.#head === this.#pending.length || this.#pq.size > 0) return;
    this.#pq.add(() => this.#writePending()).catch((err: unknown) => this.#fail(toStxError(err, 'writing', 'partial upload')));
  }

  /**
   * One positional writev of the chunks pending now (up to MAX_WRITE_BATCH_*): while a write
   * runs, later chunks pile up and the next write takes them all.
   */
  async #writePending(): Promise<void> {
    const batch: Buffer[] = [];
    const written: Array<() => void> = [];
    let length = 0;
    while (batch.length < MAX_WRITE_BATCH_BUFFERS && length < MAX_WRITE_BATCH_BYTES) {
      const next = this.#pending[this.#head];
      if (next === undefined) break;
      this.#head++;
      batch.push(next.buf);
      if (next.onWritten !== undefined) written.push(next.onWritten);
      length += next.buf.length;
    }
    // Drop the taken entries once they are most of the array: amortised O(1) per chunk.
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    if (length === 0) return;
    const chunks = batch.length;
    const offset = this.#pendingOffset;
    this.#pendingOffset += length;
    try {
      // After a failure, chunks still queued are dropped: writtenOffset can no longer grow.
      if (this.#failure !== undefined) return;
      let done = 0;
      let rest: Buffer[] = batch;
      while (done < length) {
        const bytesWritten = await this.#writev(rest, offset + done);
        if (bytesWritten <= 0) {
          throw new ResourceError('IO_ERROR', `writing partial upload at ${offset + done} made no progress`);
        }
        done += bytesWritten;
        if (done < length) rest = remainder(rest, bytesWritten);
      }
      this.#written = offset + length;
      this.#settleFlushWaiters();
    } catch (err) {
      this.#fail(toStxError(err, 'writing', 'partial upload'));
    } finally {
      this.#queued -= length;
      this.#queuedChunks -= chunks;
      this.#budget.give(length + chunks * CHUNK_OVERHEAD_BYTES, chunks);
      for (const cb of written) cb();
      this.#schedule();
      this.#maybeDrain();
    }
  }

  /**
   * One writev, which may write fewer bytes than given (the caller loops): the aligned buffers at
   * the front through the O_DIRECT handle, else everything through the page cache.
   */
  async #writev(buffers: Buffer[], position: number): Promise<number> {
    const direct = this.#direct;
    const aligned = direct === null ? 0 : alignedPrefix(buffers, position);
    if (direct !== null && aligned > 0) {
      try {
        return (await direct.writev(aligned === buffers.length ? buffers : buffers.slice(0, aligned), position)).bytesWritten;
      } catch (err) {
        if (errnoOf(err) !== 'EINVAL') throw err;
        this.#direct = null;
      }
    }
    return (await this.#fh.writev(buffers, position)).bytesWritten;
  }

  #fail(err: StxError): void {
    this.#failure ??= err;
    const waiters = this.#flushWaiters.splice(0);
    for (const waiter of waiters) waiter.reject(this.#failure);
    // Wake a paused caller so that its next enqueue sees the error.
    this.#maybeDrain();
  }

  #settleFlushWaiters(): void {
    const offset = this.#written;
    for (let i = this.#flushWaiters.length - 1; i >= 0; i--) {
      const waiter = this.#flushWaiters[i];
      if (waiter !== undefined && waiter.target <= offset) {
        this.#flushWaiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  #maybeDrain(): void {
    if (!this.#paused) return;
    if (this.#failure === undefined) {
      // Our own completions will call again.
      if (this.#queued > this.#lowWater || this.#queuedChunks > this.#maxChunks * LOW_WATER_FRACTION) return;
      if (!this.#budget.belowLowWater) {
        this.#budget.whenLow(this.#onBudgetLow);
        return;
      }
    }
    this.#paused = false;
    this.#budget.cancelWhenLow(this.#onBudgetLow);
    for (const listener of [...this.#drainListeners]) listener();
  }
}
