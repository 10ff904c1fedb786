// The receiving half of the data path (§9.1 step 3): DATA in stream order into a sink (where the
// bytes rest: a storage partial on the daemon, a local file for a download) and a running SHA-256,
// each holding the chunk's buffer until it is done with it. The policy around it (what to
// publish, when to checkpoint) is the caller's.
import { UploadError } from '../proto/errors.js';
import { LOW_WATER_FRACTION, MAX_HASH_BACKLOG_CHUNKS } from './config.js';
import type { RunningHash } from './hasher.js';

/** Where received bytes go, in order; `onWritten` runs once `data` is not needed any more. */
export interface DataSink {
  write(offset: number, data: Buffer, onWritten?: () => void): boolean;
  /** True while the sink wants no more bytes (its queue is full). */
  readonly paused: boolean;
  /** Resolves once it takes bytes again (at once if not paused). */
  drained(): Promise<void>;
}

/**
 * A chunk's buffer, held by whoever still needs it (BodyLease from body-pool.ts): one hold comes
 * with the chunk, and each consumer past the first takes one more.
 */
export interface Held {
  retain(): unknown;
  release(): void;
}

export class Receiver {
  readonly #sink: DataSink;
  readonly #hash: RunningHash;
  readonly #size: number;
  #received: number;
  /** Chunks the hash has not answered for yet: each costs a message and a callback, whatever its size. */
  #hashChunks = 0;
  #hashWaiters: (() => void)[] = [];

  /** Bytes [0, `start`) are already in the sink and the hash; `size` is the whole stream's. */
  constructor(sink: DataSink, hash: RunningHash, start: number, size: number) {
    this.#sink = sink;
    this.#hash = hash;
    this.#received = start;
    this.#size = size;
  }

  /** The next offset a chunk must carry. */
  get received(): number {
    return this.#received;
  }
  /** True while the caller should not read more: the sink is full or hashing lags. */
  get paused(): boolean {
    return this.#sink.paused || this.#hash.backlogged || this.#hashChunks >= MAX_HASH_BACKLOG_CHUNKS;
  }

  /**
   * Takes the next chunk and returns whether the caller should pause reading: BAD_OFFSET unless
   * it starts at `received` and ends within the size. `held`'s one hold passes to the sink, and
   * the hash takes one more; when this throws, nothing took `data` and the hold is the caller's.
   */
  accept(offset: number, data: Buffer, held?: Held): boolean {
    if (offset !== this.#received) {
      throw new UploadError('BAD_OFFSET', `DATA at offset ${offset}, expected ${this.#received}`);
    }
    if (offset + data.length > this.#size) {
      throw new UploadError('BAD_OFFSET', `DATA ends at ${offset + data.length}, beyond the size ${this.#size}`);
    }
    // One release callback serves both consumers: each calls it once when it is done with `data`
    // (the hash through #hashed, which counts its backlog in chunks).
    let release: (() => void) | undefined;
    if (held !== undefined) {
      held.retain();
      release = () => held.release();
    }
    const pause = this.#sink.write(offset, data, release);
    this.#hashChunks++;
    this.#hash.update(data, () => this.#hashed(release));
    this.#received += data.length;
    return pause || this.paused;
  }

  /** Resolves once both the sink and the hash take bytes (and chunks) again. */
  async drained(): Promise<void> {
    await Promise.all([this.#sink.drained(), this.#hash.drained(), this.#hashChunksDrained()]);
  }

  #hashed(release: (() => void) | undefined): void {
    this.#hashChunks--;
    release?.();
    if (this.#hashWaiters.length > 0 && this.#hashChunks <= MAX_HASH_BACKLOG_CHUNKS * LOW_WATER_FRACTION) {
      for (const wake of this.#hashWaiters.splice(0)) wake();
    }
  }

  #hashChunksDrained(): Promise<void> {
    if (this.#hashChunks < MAX_HASH_BACKLOG_CHUNKS) return Promise.resolve();
    return new Promise((resolve) => this.#hashWaiters.push(resolve));
  }
}
