// The resume step both hashing paths share (hasher.ts, hash-worker.ts): the SHA-256 state of a
// partial upload's durable prefix, either kept from the connection that wrote it (ParkedHashes)
// or read back with one bounded buffer (§9.2, §9.7).
import { createHash, type Hash } from 'node:crypto';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { HASH_READ_BUFFER_BYTES, MAX_PARKED_HASHES, REHASH_PROGRESS_BYTES } from './config.js';

const readFd = promisify(read);

/** Reads into `buffer` from `position` of some stored bytes; resolves to the bytes read (0 at the end). */
export type ReadAt = (buffer: Buffer, position: number) => Promise<number>;

/** Positional reads of the open file `fd`. */
export function readAtFd(fd: number): ReadAt {
  return async (buffer, position) => (await readFd(fd, buffer, 0, buffer.length, position)).bytesRead;
}

/** A SHA-256 state and how many leading bytes of its upload it covers. */
export interface PrefixHash {
  readonly hash: Hash;
  readonly length: number;
}

/** Thrown by hashPrefix when `cancelled()` turns true; the bytes hashed so far are in `partial`. */
export class RehashCancelled extends Error {
  constructor(readonly partial: PrefixHash) {
    super('re-hash cancelled');
  }
}

export interface RehashOptions {
  /** Called with the bytes hashed so far, every REHASH_PROGRESS_BYTES and at the end. */
  readonly onProgress?: ((done: number) => void) | undefined;
  /** Checked between reads; true stops with RehashCancelled. */
  readonly cancelled?: (() => boolean) | undefined;
}

/**
 * Extends `from` (bytes [0, from.length) of what `readAt` reads, already hashed) to bytes
 * [0, length); fails if there are fewer.
 */
export async function hashPrefix(readAt: ReadAt, from: PrefixHash, length: number, opts: RehashOptions = {}): Promise<Hash> {
  const { hash } = from;
  let position = from.length;
  if (position >= length) return hash;
  const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BUFFER_BYTES, length - position));
  let reported = position;
  while (position < length) {
    if (opts.cancelled?.() === true) throw new RehashCancelled({ hash, length: position });
    const want = Math.min(buffer.length, length - position);
    const bytesRead = await readAt(buffer.subarray(0, want), position);
    if (bytesRead <= 0) throw new Error(`the file ends at ${position} bytes, before the ${length} its record says`);
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
    if (position - reported >= REHASH_PROGRESS_BYTES || position === length) {
      reported = position;
      opts.onProgress?.(position);
    }
  }
  return hash;
}

/**
 * Running hashes of interrupted uploads, by upload id, so that a client reconnecting while the
 * daemon kept running resumes without reading the partial back (§9.7). At most
 * MAX_PARKED_HASHES (a SHA-256 state is a few hundred bytes); the least recently parked goes
 * first, and its upload is re-read on resume like after a restart.
 */
export class ParkedHashes {
  readonly #byId = new Map<string, PrefixHash>();

  constructor(private readonly max = MAX_PARKED_HASHES) {}

  get size(): number {
    return this.#byId.size;
  }

  /** Parks `entry` under `id`; a null id (a one-off read, e.g. of a published file) parks nothing. */
  park(id: string | null, entry: PrefixHash): void {
    if (id === null) return;
    this.#byId.delete(id);
    this.#byId.set(id, entry);
    for (const oldest of this.#byId.keys()) {
      if (this.#byId.size <= this.max) break;
      this.#byId.delete(oldest);
    }
  }

  /**
   * The parked hash of `id` if it covers at most `length` bytes (the durable prefix it will be
   * extended to), else a fresh one; either way `id` is no longer parked.
   */
  take(id: string | null, length: number): PrefixHash {
    const parked = id === null ? undefined : this.#byId.get(id);
    if (id !== null) this.#byId.delete(id);
    return parked !== undefined && parked.length <= length ? parked : { hash: createHash('sha256'), length: 0 };
  }

  drop(id: string): void {
    this.#byId.delete(id);
  }

  /** Bytes the hash parked under `id` covers (0 if none): what a resume need not read back. */
  lengthOf(id: string): number {
    return this.#byId.get(id)?.length ?? 0;
  }
}

/**
 * What the hashing thread has parked, as the main thread last told it (ParkedHashes' order and
 * bound), so that the store knows before an OPEN whether it will read back (§9.7) and can charge
 * it to the client. A hint: a re-read it did not foresee is still charged, after the fact.
 */
export class ParkedLengths {
  readonly #byId = new Map<string, number>();

  constructor(private readonly max = MAX_PARKED_HASHES) {}

  park(id: string, length: number): void {
    this.#byId.delete(id);
    this.#byId.set(id, length);
    for (const oldest of this.#byId.keys()) {
      if (this.#byId.size <= this.max) break;
      this.#byId.delete(oldest);
    }
  }

  forget(id: string): void {
    this.#byId.delete(id);
  }

  lengthOf(id: string): number {
    return this.#byId.get(id) ?? 0;
  }
}
