// The age payload (c2sp.org/age "Payload"): a 16-byte nonce, then the plaintext in 64 KiB chunks,
// each sealed with ChaCha20-Poly1305 under HKDF(ikm = file key, salt = nonce, "payload") with the
// STREAM nonce 11-byte big-endian counter ‖ final flag. Every chunk is a function of its index
// and its plaintext alone, so any byte range of an age file can be produced from the plaintext
// chunks under it, in any order, and comes out the same each time: what a resumed upload needs.
import { createSecretKey, type KeyObject } from 'node:crypto';
import { AgeIntegrityError, AgeKeyError } from './age-errors.js';
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  AGE_FILE_KEY_BYTES,
  ageHkdf,
  chachaOpen,
  chachaSeal,
  chachaSealInto,
  headerMacMatches,
  parseHeader,
} from './age-format.js';

/** Plaintext bytes of every STREAM chunk but the last (which holds 1 to this many, or 0 for an empty file). */
export const AGE_CHUNK_BYTES = 64 * 1024;
/** Bytes of a sealed full chunk. */
export const AGE_SEALED_CHUNK_BYTES = AGE_CHUNK_BYTES + AEAD_TAG_BYTES;
/** Bytes of the payload nonce that follows the header. */
export const AGE_PAYLOAD_NONCE_BYTES = 16;
/** Offset of the counter's low 6 bytes in the 12-byte STREAM nonce (chunk indices stay below 2^48). */
const COUNTER_LOW_AT = 5;
const COUNTER_LOW_BYTES = 6;

/** STREAM chunks of a plaintext: an empty one still has one (empty, final) chunk. */
export function ageChunkCount(plaintextSize: number): number {
  return plaintextSize === 0 ? 1 : Math.ceil(plaintextSize / AGE_CHUNK_BYTES);
}

/** Bytes of the payload (nonce and sealed chunks) for a plaintext of `plaintextSize` bytes. */
export function agePayloadSize(plaintextSize: number): number {
  return AGE_PAYLOAD_NONCE_BYTES + plaintextSize + ageChunkCount(plaintextSize) * AEAD_TAG_BYTES;
}

/** HKDF(ikm = file key, salt = payload nonce, info = "payload"). */
function payloadKey(fileKey: Buffer, nonce: Buffer): KeyObject {
  const raw = ageHkdf(fileKey, nonce, 'payload');
  try {
    return createSecretKey(raw);
  } finally {
    raw.fill(0);
  }
}

function streamNonce(index: number, final: boolean): Buffer {
  const nonce = Buffer.alloc(AEAD_NONCE_BYTES);
  nonce.writeUIntBE(index, COUNTER_LOW_AT, COUNTER_LOW_BYTES);
  nonce[AEAD_NONCE_BYTES - 1] = final ? 1 : 0;
  return nonce;
}

/** A span of the plaintext: whole STREAM chunks `firstChunk` … `firstChunk + chunks - 1`. */
export interface PlaintextRange {
  readonly offset: number;
  readonly length: number;
  readonly firstChunk: number;
  readonly chunks: number;
}

/**
 * Produces the bytes of one age file at any offset. It holds the header (already made, with its
 * MAC, see sealHeader), the file key, the payload nonce and the plaintext size; all four are
 * what a client keeps to resume, and with them the same offset always yields the same bytes.
 *
 * Layout: header ‖ nonce ‖ chunk 0 ‖ chunk 1 ‖ …, chunk i being at payloadStart + i × 65552 and
 * holding plaintext [i × 65536, min(size, (i+1) × 65536)) plus a 16-byte tag.
 */
export class AgeSealer {
  /** Bytes of the whole age file. */
  readonly size: number;
  /** Where chunk 0 starts: header and nonce lengths. */
  readonly payloadStart: number;
  readonly chunkCount: number;
  readonly #prefix: Buffer;
  readonly #key: KeyObject;

  constructor(
    readonly header: Buffer,
    fileKey: Buffer,
    readonly nonce: Buffer,
    readonly plaintextSize: number,
  ) {
    if (fileKey.length !== AGE_FILE_KEY_BYTES) throw new RangeError(`an age file key is ${AGE_FILE_KEY_BYTES} bytes`);
    if (nonce.length !== AGE_PAYLOAD_NONCE_BYTES) throw new RangeError(`an age payload nonce is ${AGE_PAYLOAD_NONCE_BYTES} bytes`);
    if (!Number.isSafeInteger(plaintextSize) || plaintextSize < 0) throw new RangeError('plaintext size must be a safe integer ≥ 0');
    // Kept state that does not belong together would seal a file nobody can open: refuse it here.
    const parsed = parseHeader(header);
    if (parsed.length !== header.length || !headerMacMatches(fileKey, parsed)) {
      throw new AgeKeyError('key', 'the age header does not belong to this file key');
    }
    this.#prefix = Buffer.concat([header, nonce]);
    this.#key = payloadKey(fileKey, nonce);
    this.payloadStart = this.#prefix.length;
    this.chunkCount = ageChunkCount(plaintextSize);
    this.size = header.length + agePayloadSize(plaintextSize);
  }

  /** The plaintext span of chunk `index`. */
  chunkPlaintext(index: number): { readonly offset: number; readonly length: number } {
    this.#checkIndex(index);
    const offset = index * AGE_CHUNK_BYTES;
    return { offset, length: Math.min(AGE_CHUNK_BYTES, this.plaintextSize - offset) };
  }

  /** Chunk `index` sealed; `plaintext` must be exactly its span (chunkPlaintext). */
  seal(index: number, plaintext: Buffer): Buffer {
    const span = this.chunkPlaintext(index);
    if (plaintext.length !== span.length) {
      throw new RangeError(`chunk ${index} holds ${span.length} plaintext bytes, got ${plaintext.length}`);
    }
    return chachaSeal(this.#key, streamNonce(index, index === this.chunkCount - 1), plaintext);
  }

  /** The whole chunks of plaintext whose sealed form covers age-file bytes [offset, offset + length). */
  plaintextRangeFor(offset: number, length: number): PlaintextRange {
    this.#checkRange(offset, length);
    const end = offset + length;
    if (length === 0 || end <= this.payloadStart) return { offset: 0, length: 0, firstChunk: 0, chunks: 0 };
    const firstChunk = Math.floor(Math.max(0, offset - this.payloadStart) / AGE_SEALED_CHUNK_BYTES);
    const lastChunk = Math.floor((end - 1 - this.payloadStart) / AGE_SEALED_CHUNK_BYTES);
    const start = firstChunk * AGE_CHUNK_BYTES;
    const stop = Math.min(this.plaintextSize, (lastChunk + 1) * AGE_CHUNK_BYTES);
    return { offset: start, length: stop - start, firstChunk, chunks: lastChunk - firstChunk + 1 };
  }

  /**
   * Age-file bytes [offset, offset + length), given the plaintext at plaintextRangeFor(offset,
   * length) (exactly those bytes). Sealed into `into` when it is large enough (the result is then
   * a view of it), else into a new buffer.
   */
  bytesAt(offset: number, length: number, plaintext: Buffer, into?: Buffer): Buffer {
    const range = this.plaintextRangeFor(offset, length);
    if (plaintext.length !== range.length) {
      throw new RangeError(`expected ${range.length} plaintext bytes at ${range.offset}, got ${plaintext.length}`);
    }
    // What is produced starts at `from` (offset, or the start of the chunk offset falls in).
    const from = offset < this.payloadStart ? offset : this.payloadStart + range.firstChunk * AGE_SEALED_CHUNK_BYTES;
    const prefix = offset < this.payloadStart ? this.#prefix.subarray(offset) : this.#prefix.subarray(0, 0);
    const needed = prefix.length + range.length + range.chunks * AEAD_TAG_BYTES;
    const out = into !== undefined && into.length >= needed ? into : Buffer.allocUnsafe(needed);
    let at = prefix.copy(out, 0);
    for (let i = 0; i < range.chunks; i++) {
      const index = range.firstChunk + i;
      const start = index * AGE_CHUNK_BYTES - range.offset;
      const chunk = plaintext.subarray(start, start + this.chunkPlaintext(index).length);
      at += chachaSealInto(this.#key, streamNonce(index, index === this.chunkCount - 1), chunk, out, at);
    }
    return out.subarray(offset - from, offset - from + length);
  }

  /** The most bytes bytesAt writes into `into` for a range of `length` bytes: the range, and the rest of the chunks at either end. */
  static intoBytesFor(length: number): number {
    return length + 2 * AGE_SEALED_CHUNK_BYTES;
  }

  /** bytesAt, reading the plaintext it needs through `read(offset, length)`. */
  async read(offset: number, length: number, read: (offset: number, length: number) => Promise<Buffer>): Promise<Buffer> {
    const range = this.plaintextRangeFor(offset, length);
    const plaintext = range.length === 0 ? Buffer.alloc(0) : await read(range.offset, range.length);
    return this.bytesAt(offset, length, plaintext);
  }

  #checkIndex(index: number): void {
    if (!Number.isSafeInteger(index) || index < 0 || index >= this.chunkCount) {
      throw new RangeError(`chunk ${index} is outside 0…${this.chunkCount - 1}`);
    }
  }

  #checkRange(offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > this.size) {
      throw new RangeError(`range ${offset}+${length} is outside the ${this.size}-byte age file`);
    }
  }
}

/**
 * Opens a payload's chunks as its bytes arrive, in any pieces, the way the reference reader
 * does (the age test kit checks what is released before a failure): each whole 65552-byte chunk
 * is opened as a non-final chunk, else as the final one; a shorter rest at the end must be the
 * final chunk. A final chunk followed by more bytes, a stream without a final chunk, and a bad
 * tag are AgeIntegrityError('payload'), thrown after the chunks before them were taken. Holds
 * the pieces of at most one sealed chunk plus one piece.
 */
export class AgePayloadOpener {
  readonly #key: KeyObject;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #index = 0;
  #final = false;

  constructor(fileKey: Buffer, nonce: Buffer) {
    this.#key = payloadKey(fileKey, nonce);
  }

  push(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
  }

  /** The next chunk's plaintext, or null until a whole sealed chunk is buffered. */
  take(): Buffer | null {
    if (this.#final) {
      if (this.#pendingBytes > 0) throw new AgeIntegrityError('payload', 'bytes after the final chunk');
      return null;
    }
    if (this.#pendingBytes < AGE_SEALED_CHUNK_BYTES) return null;
    const all = this.#pending.length === 1 && this.#pending[0] !== undefined ? this.#pending[0] : Buffer.concat(this.#pending);
    this.#pending = [all.subarray(AGE_SEALED_CHUNK_BYTES)];
    this.#pendingBytes = all.length - AGE_SEALED_CHUNK_BYTES;
    const sealed = all.subarray(0, AGE_SEALED_CHUNK_BYTES);
    // A full chunk may be the final one (a plaintext that is a multiple of 64 KiB).
    return this.#open(sealed, false) ?? this.#openFinal(sealed);
  }

  /** Once the input has ended (and take() returned null): the final chunk's plaintext, if not taken yet. */
  end(): Buffer | null {
    if (this.#final) {
      if (this.#pendingBytes > 0) throw new AgeIntegrityError('payload', 'bytes after the final chunk');
      return null;
    }
    const rest = Buffer.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (rest.length === 0) throw new AgeIntegrityError('payload', 'the payload ends without a final chunk');
    if (rest.length === AEAD_TAG_BYTES && this.#index > 0) {
      throw new AgeIntegrityError('payload', 'the final chunk is empty, but the payload is not');
    }
    return this.#openFinal(rest);
  }

  #openFinal(sealed: Buffer): Buffer {
    const plain = this.#open(sealed, true);
    if (plain === null) throw new AgeIntegrityError('payload', `chunk ${this.#index} does not open`);
    this.#final = true;
    return plain;
  }

  #open(sealed: Buffer, final: boolean): Buffer | null {
    const plain = chachaOpen(this.#key, streamNonce(this.#index, final), sealed);
    if (plain !== null) this.#index++;
    return plain;
  }
}

/**
 * Seals a payload of unknown length as it arrives (stdin): whole 64 KiB chunks as soon as more
 * bytes follow them, the final chunk (which may be full, or empty for an empty stream) at end().
 * Holds at most one chunk plus one piece. Each chunk is the same function of its index and
 * plaintext as AgeSealer's, so the result is an ordinary age file.
 */
export class AgeStreamSealer {
  readonly #key: KeyObject;
  #held: Buffer[] = [];
  #heldBytes = 0;
  #index = 0;
  #ended = false;

  constructor(fileKey: Buffer, nonce: Buffer) {
    if (fileKey.length !== AGE_FILE_KEY_BYTES) throw new RangeError(`an age file key is ${AGE_FILE_KEY_BYTES} bytes`);
    if (nonce.length !== AGE_PAYLOAD_NONCE_BYTES) throw new RangeError(`an age payload nonce is ${AGE_PAYLOAD_NONCE_BYTES} bytes`);
    this.#key = payloadKey(fileKey, nonce);
  }

  /** Takes plaintext; returns the chunks now known not to be the last one, sealed. */
  push(bytes: Buffer): Buffer[] {
    if (this.#ended) throw new RangeError('the age stream has ended');
    if (bytes.length === 0) return [];
    this.#held.push(bytes);
    this.#heldBytes += bytes.length;
    const out: Buffer[] = [];
    // Strictly more than a chunk: the chunk taken is then followed by at least one byte.
    while (this.#heldBytes > AGE_CHUNK_BYTES) {
      const all = this.#held.length === 1 && this.#held[0] !== undefined ? this.#held[0] : Buffer.concat(this.#held);
      out.push(chachaSeal(this.#key, streamNonce(this.#index++, false), all.subarray(0, AGE_CHUNK_BYTES)));
      const rest = all.subarray(AGE_CHUNK_BYTES);
      this.#held = [rest];
      this.#heldBytes = rest.length;
    }
    return out;
  }

  /** The final chunk, sealed; the stream takes nothing after it. */
  end(): Buffer {
    if (this.#ended) throw new RangeError('the age stream has ended');
    this.#ended = true;
    const last = Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    return chachaSeal(this.#key, streamNonce(this.#index++, true), last);
  }
}
