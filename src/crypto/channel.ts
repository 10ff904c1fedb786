// The byte stream of one connection as frames (spec/PROTOCOL.md §2, §8): plaintext frames until
// each direction switches to records, then one record per frame. No sockets: the caller pushes
// received bytes in and writes the returned buffers out.
import { decodeBody, decodeDataOffset, encodeBodyParts, encodeDataHead, encodeFrame } from '../proto/codec.js';
import { FRAME_TYPES } from '../proto/frames.js';
import type { Frame } from '../proto/frames.js';
import {
  DATA_HEADER_BYTES,
  LENGTH_PREFIX_BYTES,
  MAX_CONTROL_RECORD_LENGTH_BYTES,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MIN_RECORD_LENGTH_BYTES,
  TAG_BYTES,
} from '../proto/limits.js';
import { ProtocolError } from '../proto/errors.js';
import { StreamReader, type LengthBounds } from '../proto/reader.js';
import type { RecordOpener, RecordSealer, RecordStream } from './record.js';

const PLAINTEXT: LengthBounds = { min: 1, max: MAX_PLAINTEXT_FRAME_LENGTH_BYTES };
const RECORD: LengthBounds = { min: MIN_RECORD_LENGTH_BYTES, max: MAX_RECORD_LENGTH_BYTES };
/** Records where DATA is not allowed carry one control frame at most (§2, §8): nobody may make us hold a DATA-sized buffer. */
const CONTROL_RECORD: LengthBounds = { min: MIN_RECORD_LENGTH_BYTES, max: MAX_CONTROL_RECORD_LENGTH_BYTES };

export interface Received {
  readonly frame: Frame;
  /** The whole plaintext frame as it was on the wire (length ‖ body); for records, the record. */
  readonly raw: Buffer;
}

/**
 * A DATA frame (§2.2) whose record was opened piece by piece as it arrived, into a buffer the
 * caller provided (BodyBuffers): `data` lies inside `body`. Give `body` back to where it came
 * from once `data` is no longer needed.
 */
export interface ReceivedData {
  readonly offset: number;
  readonly data: Buffer;
  readonly body: Buffer;
}

/**
 * Where nextData() opens a long record: a buffer of at least `bodyBytes` bytes, or null when
 * there is no memory for it now (nextData() then returns null and takes nothing; the caller asks
 * again once it has). A buffer that never becomes ReceivedData (the record failed, or the
 * connection ended inside it) is given back by the channel; ReceivedData.body goes back through
 * whoever holds it.
 */
export interface BodyBuffers {
  take(bodyBytes: number): Buffer | null;
  give(buffer: Buffer): void;
}

/**
 * Records whose body is longer than this can only be DATA (every other frame is at most
 * 1 + MAX_CONTROL_PAYLOAD bytes, §2): nextData() opens those piece by piece.
 */
const MAX_WHOLE_RECORD_BODY_BYTES = MAX_PLAINTEXT_FRAME_LENGTH_BYTES;

export class FrameChannel {
  private readonly reader = new StreamReader();
  private opener: RecordOpener | null = null;
  private sealer: RecordSealer | null = null;
  /**
   * Whether a record may be DATA-sized (§2). A receiver turns this on only while DATA is allowed
   * (server state Receiving), so an idle or unauthenticated peer cannot make it buffer 1 MiB.
   */
  longRecords = true;
  /** The record being opened piece by piece by nextData(), if any. */
  private stream: RecordStream | null = null;

  /** A channel that accepts only control-sized records until told otherwise (a server's; a client's for good, §8). */
  static controlOnly(): FrameChannel {
    const c = new FrameChannel();
    c.longRecords = false;
    return c;
  }

  private recordBounds(): LengthBounds {
    return this.longRecords || this.stream !== null ? RECORD : CONTROL_RECORD;
  }

  /** Bytes received and not yet returned as frames. */
  get pending(): number {
    return this.reader.pending;
  }

  /** Whether a long record is being opened (nextData() holds its buffer). */
  get openingRecord(): boolean {
    return this.stream !== null;
  }

  /** Memory this channel holds for incomplete frames: bytes received, and the buffer of a record being opened. */
  get heldBytes(): number {
    return this.reader.pending + (this.stream?.buffer.length ?? 0);
  }

  /** Whether outgoing frames are sealed as records. */
  get sealing(): boolean {
    return this.sealer !== null;
  }

  /** Whether incoming frames are records (the peer holds the session keys, §6). */
  get opening(): boolean {
    return this.opener !== null;
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  /** Copies the received bytes not yet returned as frames that lie in `memory` (StreamReader.copyOutOf). */
  copyOutOf(memory: ArrayBufferLike): void {
    this.reader.copyOutOf(memory);
  }

  readPreamble(): Buffer | null {
    return this.reader.readPreamble();
  }

  /** The next received frame, or null until one is complete; throws the typed error of §2/§8. */
  next(): Received | null {
    const opener = this.opener;
    const raw = this.reader.next(opener === null ? PLAINTEXT : this.recordBounds());
    if (raw === null) return null;
    const body = opener === null ? raw.subarray(LENGTH_PREFIX_BYTES) : opener.open(raw);
    return { frame: decodeBody(body), raw };
  }

  /**
   * Like next(), for a receiver of DATA: a record too long to be anything but DATA is opened
   * piece by piece as its bytes arrive (no whole-record buffer, no copy) and returned as
   * ReceivedData once its tag checked out. Everything else comes back as next() returns it.
   * Errors are next()'s, in the same order (length, key limit, authentication, then frame rules).
   */
  nextData(buffers: BodyBuffers): Received | ReceivedData | null {
    const opener = this.opener;
    if (opener === null) return this.next();
    if (this.stream === null) {
      const length = this.reader.peekLength(this.recordBounds());
      if (length === null || length - TAG_BYTES <= MAX_WHOLE_RECORD_BODY_BYTES) return this.next();
      const body = buffers.take(length - TAG_BYTES);
      if (body === null) return null;
      const header = this.reader.takeBytes(LENGTH_PREFIX_BYTES);
      try {
        this.stream = opener.begin(header, body);
      } catch (err) {
        buffers.give(body); // refused (key limit, or the opener failed before): no record will fill it
        throw err;
      }
    }
    const stream = this.stream;
    for (let piece = this.reader.takePiece(stream.remaining); piece !== null; piece = this.reader.takePiece(stream.remaining)) {
      stream.push(piece);
    }
    if (stream.remaining > 0) return null;
    this.stream = null;
    try {
      return dataFrame(stream.finish(), stream.buffer);
    } catch (err) {
      buffers.give(stream.buffer);
      throw err;
    }
  }

  /** Gives back the buffer of a record left half-opened (the connection is closing). */
  abandon(buffers: BodyBuffers): void {
    if (this.stream === null) return;
    buffers.give(this.stream.buffer);
    this.stream = null;
  }

  /** From the next frame on, received frames are records opened by `opener` (§6). */
  startOpening(opener: RecordOpener): void {
    this.opener = opener;
  }

  /** From now on, sent frames are records sealed by `sealer` (§6). */
  startSealing(sealer: RecordSealer): void {
    this.sealer = sealer;
  }

  /** Wire bytes for one frame: the plaintext frame, or the sealed record's pieces. */
  encode(frame: Frame): Buffer[] {
    return this.sealer === null ? [encodeFrame(frame)] : this.sealer.seal(encodeBodyParts(frame));
  }

  /** Wire bytes for a body that was encoded already (the handshake's FINISHED messages). */
  sealBody(body: Buffer): Buffer[] {
    if (this.sealer === null) throw new Error('sealBody before startSealing');
    return this.sealer.seal(body);
  }

  /** A DATA record without copying `data` (one piece, or pieces in order) into a frame first (§2.2, §8). */
  encodeData(offset: number, data: Buffer | readonly Buffer[]): Buffer[] {
    if (this.sealer === null) throw new Error('DATA before the record layer started');
    return this.sealer.seal(Buffer.isBuffer(data) ? [encodeDataHead(offset), data] : [encodeDataHead(offset), ...data]);
  }

  /** True when the next record of `bodyLen` bytes would leave no room under the key limits (§8). */
  nearKeyLimit(bodyLen: number): boolean {
    return this.sealer?.nearLimit(bodyLen) ?? false;
  }

  /** Called at end of stream: TRUNCATED if a frame was cut off. */
  end(): void {
    if (this.stream !== null) {
      throw new ProtocolError('TRUNCATED', `connection closed with ${this.stream.remaining} bytes of a record missing`);
    }
    this.reader.end();
  }
}

/**
 * The DATA frame in a long record's body (opened into `buffer`, as taken from BodyBuffers);
 * anything else fails as decodeBody says (§2).
 */
function dataFrame(body: Buffer, buffer: Buffer): ReceivedData {
  // A body this long is DATA or an error; decodeBody names the error exactly as for next().
  if (body[0] !== FRAME_TYPES.DATA) {
    decodeBody(body);
    throw new ProtocolError('MALFORMED_FRAME', 'a long record that is not DATA');
  }
  const offset = decodeDataOffset(body.subarray(1, 1 + DATA_HEADER_BYTES));
  return { offset, data: body.subarray(1 + DATA_HEADER_BYTES), body: buffer };
}
