// The record layer (spec/PROTOCOL.md §8): one AES-256-GCM record per frame body after the
// handshake switch, nonce = iv XOR (0^4 ‖ seq:u64), the 4-byte length header as AAD, and the
// per-key limits MAX_RECORDS_PER_KEY / MAX_BYTES_PER_KEY in each direction.
import { createSecretKey, type KeyObject } from 'node:crypto';
import { CryptoError, ProtocolError, type ErrorCode } from '../proto/errors.js';
import {
  LENGTH_PREFIX_BYTES,
  MAX_BYTES_PER_KEY,
  MAX_CONTROL_PAYLOAD_BYTES,
  MAX_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MAX_RECORDS_PER_KEY,
  MIN_RECORD_LENGTH_BYTES,
  TAG_BYTES,
} from '../proto/limits.js';
import { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, GCM_UPDATE_BYTES, GcmOpenStream, gcmOpen, gcmSeal } from './aead.js';

/** Body bytes kept in reserve by nearLimit() so one last control record (GOAWAY, ERROR) still fits. */
export const RESERVED_CONTROL_BODY_BYTES = 1 + MAX_CONTROL_PAYLOAD_BYTES;

/** nonce = iv XOR (0x00000000 ‖ seq:u64) (§8). */
export function recordNonce(iv: Buffer, seq: number): Buffer {
  if (iv.length !== AEAD_NONCE_BYTES) throw new RangeError(`record iv must be ${AEAD_NONCE_BYTES} bytes`);
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`record seq ${seq} is not a u64 in range`);
  const nonce = Buffer.from(iv);
  const hi = Math.floor(seq / 2 ** 32);
  const lo = seq % 2 ** 32;
  nonce.writeUInt32BE((nonce.readUInt32BE(4) ^ hi) >>> 0, 4);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ lo) >>> 0, 8);
  return nonce;
}

/**
 * Where a direction's counters start. The protocol always starts at 0 (§8); other values exist
 * so that vectors can seal at a given seq and tests can reach the key limits.
 */
export interface RecordCounters {
  readonly seq?: number;
  readonly bytes?: number;
}

/** Key, iv and counters of one direction; shared by sealer and opener. */
class Direction {
  readonly key: KeyObject;
  readonly iv: Buffer;
  seq: number;
  bytes: number;

  constructor(key: Buffer | KeyObject, iv: Buffer, start: RecordCounters) {
    this.key = Buffer.isBuffer(key) ? createSecretKey(key) : key;
    if (this.key.symmetricKeySize !== AEAD_KEY_BYTES) throw new RangeError(`record key must be ${AEAD_KEY_BYTES} bytes`);
    if (iv.length !== AEAD_NONCE_BYTES) throw new RangeError(`record iv must be ${AEAD_NONCE_BYTES} bytes`);
    this.iv = Buffer.from(iv);
    this.seq = start.seq ?? 0;
    this.bytes = start.bytes ?? 0;
    if (!Number.isSafeInteger(this.seq) || this.seq < 0 || !Number.isSafeInteger(this.bytes) || this.bytes < 0) {
      throw new RangeError('record counters must be non-negative integers');
    }
  }

  /** Whether `records` more records of `bodyBytes` body bytes in all stay within both limits. */
  fits(records: number, bodyBytes: number): boolean {
    return this.seq + records <= MAX_RECORDS_PER_KEY && this.bytes + bodyBytes <= MAX_BYTES_PER_KEY;
  }

  nearLimit(nextBodyLen: number): boolean {
    return !this.fits(2, nextBodyLen + RESERVED_CONTROL_BODY_BYTES);
  }

  limitMessage(bodyLen: number): string {
    return `key limit: record ${this.seq} with ${bodyLen} bytes after ${this.bytes} bytes exceeds ` +
      `${MAX_RECORDS_PER_KEY} records or ${MAX_BYTES_PER_KEY} bytes per key`;
  }

  advance(bodyLen: number): void {
    this.seq += 1;
    this.bytes += bodyLen;
  }
}

/** Seals this side's outgoing frame bodies (§8). */
export class RecordSealer {
  private readonly dir: Direction;

  constructor(key: Buffer | KeyObject, iv: Buffer, start: RecordCounters = {}) {
    this.dir = new Direction(key, iv, start);
  }

  /** Records sealed so far with this key (= the seq of the next one). */
  get seq(): number {
    return this.dir.seq;
  }

  /** Body bytes sealed so far with this key. */
  get bytes(): number {
    return this.dir.bytes;
  }

  /**
   * True when, after a record of `nextBodyLen` body bytes, there would be no room left for one
   * more control record. A sender that sees true MUST NOT send that record: the server seals
   * GOAWAY KEY_LIMIT (which still fits) and closes; the client closes and reconnects (§8).
   */
  nearLimit(nextBodyLen: number): boolean {
    return this.dir.nearLimit(nextBodyLen);
  }

  /**
   * Seals one frame body (type ‖ payload), given whole or in parts, e.g. [DATA head, chunk].
   * Returns the wire pieces [length header, ciphertext…, tag] to write in order; the parts are
   * encrypted one by one and never concatenated. Throws CryptoError KEY_LIMIT rather than exceed
   * a limit (§8); a body outside 1..MAX_FRAME_LENGTH is a caller bug (RangeError).
   */
  seal(body: Buffer | readonly Buffer[]): Buffer[] {
    const parts: readonly Buffer[] = Buffer.isBuffer(body) ? [body] : body;
    let bodyLen = 0;
    for (const part of parts) bodyLen += part.length;
    if (bodyLen < 1 || bodyLen > MAX_FRAME_LENGTH_BYTES) {
      throw new RangeError(`record body of ${bodyLen} bytes is outside 1..${MAX_FRAME_LENGTH_BYTES}`);
    }
    if (!this.dir.fits(1, bodyLen)) throw new CryptoError('KEY_LIMIT', this.dir.limitMessage(bodyLen));
    const header = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
    header.writeUInt32BE(bodyLen + TAG_BYTES, 0);
    const sealed = gcmSeal(this.dir.key, recordNonce(this.dir.iv, this.dir.seq), header, parts);
    this.dir.advance(bodyLen);
    return [header, ...sealed.ciphertext, sealed.tag];
  }
}

interface RecordOpenerOptions {
  readonly start?: RecordCounters;
  /**
   * Error for a failure to open the first record. The handshake sets HANDSHAKE_FAILED: the peer's
   * first record is its FINISHED, and it fails to open exactly when the two sides derived
   * different keys (§6.1, §8). Later records fail with DECRYPT_FAILED.
   */
  readonly firstRecordError?: { readonly code: ErrorCode; readonly message: string };
}

/** Opens the peer's records in order (§8). After any failure it refuses everything. */
export class RecordOpener {
  private readonly dir: Direction;
  private readonly firstRecordError: RecordOpenerOptions['firstRecordError'];
  private opened = 0;
  private failed = false;
  /** A RecordStream is open: whole-record open() and another begin() must wait for it. */
  private streaming = false;

  constructor(key: Buffer | KeyObject, iv: Buffer, options: RecordOpenerOptions = {}) {
    this.dir = new Direction(key, iv, options.start ?? {});
    this.firstRecordError = options.firstRecordError;
  }

  /** Records opened so far with this key (= the seq expected next). */
  get seq(): number {
    return this.dir.seq;
  }

  /** Body bytes opened so far with this key. */
  get bytes(): number {
    return this.dir.bytes;
  }

  /** Like RecordSealer.nearLimit, for a server that wants to GOAWAY before its peer must stop. */
  nearLimit(nextBodyLen: number): boolean {
    return this.dir.nearLimit(nextBodyLen);
  }

  /**
   * Opens one whole record: its 4-byte length header followed by exactly `length` bytes of
   * ciphertext ‖ tag, as StreamReader.next() returns it. Returns the frame body.
   * Throws ProtocolError FRAME_TOO_LARGE / MALFORMED_FRAME for a length outside the record bounds
   * (the reader normally catches those first), CryptoError KEY_LIMIT if the peer went past a key
   * limit, and CryptoError DECRYPT_FAILED for everything else (altered, replayed, reordered or
   * dropped records, a header that disagrees with the record's size).
   */
  open(record: Buffer): Buffer {
    this.assertUsable();
    try {
      return this.openChecked(record);
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  /**
   * Starts opening the record whose 4-byte length header is `header` into `body` (at least the
   * body's length), for a caller that feeds the ciphertext ‖ tag in pieces as they arrive
   * (RecordStream) instead of buffering the whole record first, and that picks the buffer the
   * body lands in. Same checks and errors as open(); the record counts once finish() succeeds.
   * No other record may be opened until this one is finished.
   */
  begin(header: Buffer, body: Buffer): RecordStream {
    this.assertUsable();
    try {
      if (header.length !== LENGTH_PREFIX_BYTES) throw new RangeError(`record header of ${header.length} bytes`);
      const length = header.readUInt32BE(0);
      const bodyLen = this.checkLength(length);
      this.checkKeyLimit(bodyLen);
      if (body.length < bodyLen) throw new RangeError(`a ${body.length}-byte buffer for a ${bodyLen}-byte body`);
      this.streaming = true;
      const gcm = new GcmOpenStream(this.dir.key, recordNonce(this.dir.iv, this.dir.seq), header);
      return new RecordStream(gcm, body, bodyLen, (verified, err) => this.streamEnded(bodyLen, verified, err));
    } catch (err) {
      this.failed = true;
      throw err;
    }
  }

  private assertUsable(): void {
    if (this.failed) throw new CryptoError('DECRYPT_FAILED', 'record layer closed after an earlier failure');
    if (this.streaming) throw new RangeError('a record is still being opened piece by piece');
  }

  /** The length checks of §8; returns the body length. */
  private checkLength(length: number): number {
    if (length > MAX_RECORD_LENGTH_BYTES) {
      throw new ProtocolError('FRAME_TOO_LARGE', `record length ${length} exceeds ${MAX_RECORD_LENGTH_BYTES}`);
    }
    if (length < MIN_RECORD_LENGTH_BYTES) {
      throw new ProtocolError('MALFORMED_FRAME', `record length ${length} is below ${MIN_RECORD_LENGTH_BYTES}`);
    }
    return length - TAG_BYTES;
  }

  private checkKeyLimit(bodyLen: number): void {
    if (!this.dir.fits(1, bodyLen)) throw new CryptoError('KEY_LIMIT', `peer exceeded the ${this.dir.limitMessage(bodyLen)}`);
  }

  /** A RecordStream is done: count the record, or turn the failure into this layer's error. */
  private streamEnded(bodyLen: number, verified: boolean, err: unknown): CryptoError | undefined {
    this.streaming = false;
    if (verified) {
      this.dir.advance(bodyLen);
      this.opened += 1;
      return undefined;
    }
    this.failed = true;
    return this.openFailure(err);
  }

  private openFailure(err: unknown): CryptoError {
    const first = this.opened === 0 ? this.firstRecordError : undefined;
    if (first !== undefined) return new CryptoError(first.code, first.message, { cause: err });
    return new CryptoError('DECRYPT_FAILED', `record ${this.dir.seq} failed to open`, { cause: err });
  }

  private openChecked(record: Buffer): Buffer {
    if (record.length < LENGTH_PREFIX_BYTES) {
      throw new CryptoError('DECRYPT_FAILED', `record of ${record.length} bytes has no length header`);
    }
    const length = record.readUInt32BE(0);
    const bodyLen = this.checkLength(length);
    if (record.length !== LENGTH_PREFIX_BYTES + length) {
      throw new CryptoError('DECRYPT_FAILED', `record header says ${length} bytes, ${record.length - LENGTH_PREFIX_BYTES} follow`);
    }
    this.checkKeyLimit(bodyLen);
    const header = record.subarray(0, LENGTH_PREFIX_BYTES);
    const ciphertext = record.subarray(LENGTH_PREFIX_BYTES, LENGTH_PREFIX_BYTES + bodyLen);
    const tag = record.subarray(LENGTH_PREFIX_BYTES + bodyLen);
    let body: Buffer;
    try {
      body = gcmOpen(this.dir.key, recordNonce(this.dir.iv, this.dir.seq), header, ciphertext, tag);
    } catch (err) {
      throw this.openFailure(err);
    }
    this.dir.advance(bodyLen);
    this.opened += 1;
    return body;
  }
}

/**
 * One record opened piece by piece (RecordOpener.begin): push() the ciphertext ‖ tag bytes as
 * they arrive, in any pieces, then finish(). The plaintext goes straight into the body buffer the
 * caller gave begin(), which finish() hands back only once the tag has been checked; on a failure
 * it is zeroed.
 */
export class RecordStream {
  readonly #gcm: GcmOpenStream;
  /** The buffer given to begin(), whole; the body is its first bodyLen bytes. */
  readonly buffer: Buffer;
  readonly #body: Buffer;
  readonly #tag = Buffer.alloc(TAG_BYTES);
  readonly #onEnd: (verified: boolean, err: unknown) => CryptoError | undefined;
  /** Plaintext bytes in #body so far (= ciphertext bytes pushed), then tag bytes. */
  #filled = 0;
  #tagFilled = 0;
  #ended = false;

  constructor(gcm: GcmOpenStream, buffer: Buffer, bodyLen: number, onEnd: (verified: boolean, err: unknown) => CryptoError | undefined) {
    this.#gcm = gcm;
    this.buffer = buffer;
    this.#body = buffer.subarray(0, bodyLen);
    this.#onEnd = onEnd;
  }

  /** Bytes of this record (ciphertext and tag) not pushed yet. */
  get remaining(): number {
    return this.#body.length - this.#filled + TAG_BYTES - this.#tagFilled;
  }

  /** Takes the next `piece` of ciphertext ‖ tag; at most `remaining` bytes. */
  push(piece: Buffer): void {
    if (this.#ended) throw new RangeError('push after the record ended');
    if (piece.length > this.remaining) throw new RangeError(`piece of ${piece.length} bytes, ${this.remaining} expected`);
    const cipherPart = Math.min(piece.length, this.#body.length - this.#filled);
    // node:crypto returns a new buffer per update (no output argument): copy it into the caller's
    // buffer. fill() with a buffer as long as the range is one memcpy in Node's C++, at any
    // alignment. set() (and copy(), which calls it) is V8's copy, which into shared memory goes
    // byte by byte unless source and destination are both 8-byte aligned (7–9× slower:
    // bench/micro/aligned-memory.ts); cutting each piece to keep that alignment cost one more
    // short update per socket piece (~16,000 of the ~49,000 updates of a 1 GiB upload).
    for (let at = 0; at < cipherPart; ) {
      const len = Math.min(cipherPart - at, GCM_UPDATE_BYTES);
      const plain = this.#gcm.update(piece.subarray(at, at + len));
      this.#body.fill(plain, this.#filled, this.#filled + plain.length);
      this.#filled += plain.length;
      at += len;
    }
    if (cipherPart < piece.length) this.#tagFilled += piece.copy(this.#tag, this.#tagFilled, cipherPart);
  }

  /**
   * Checks the tag once every byte was pushed and returns the body (the plaintext frame body).
   * Throws the record layer's error (DECRYPT_FAILED, or the first record's error) otherwise.
   */
  finish(): Buffer {
    if (this.#ended) throw new RangeError('finish after the record ended');
    if (this.remaining !== 0) throw new RangeError(`finish with ${this.remaining} bytes of the record missing`);
    this.#ended = true;
    try {
      this.#gcm.final(this.#tag);
    } catch (err) {
      this.#body.fill(0);
      throw this.#onEnd(false, err) ?? err;
    }
    this.#onEnd(true, undefined);
    return this.#body;
  }
}
