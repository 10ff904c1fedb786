// The byte stream of one connection as frames (spec/PROTOCOL.md §2, §8): plaintext frames until
// each direction switches to records, then one record per frame. No sockets: the caller pushes
// received bytes in and writes the returned buffers out.
import { decodeBody, encodeBody, encodeDataHead, encodeFrame } from '../proto/codec.js';
import type { Frame } from '../proto/frames.js';
import {
  LENGTH_PREFIX_BYTES,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MIN_RECORD_LENGTH_BYTES,
} from '../proto/limits.js';
import { StreamReader, type LengthBounds } from '../proto/reader.js';
import type { RecordOpener, RecordSealer } from './record.js';

const PLAINTEXT: LengthBounds = { min: 1, max: MAX_PLAINTEXT_FRAME_LENGTH_BYTES };
const RECORD: LengthBounds = { min: MIN_RECORD_LENGTH_BYTES, max: MAX_RECORD_LENGTH_BYTES };

export interface Received {
  readonly frame: Frame;
  /** The whole plaintext frame as it was on the wire (length ‖ body); for records, the record. */
  readonly raw: Buffer;
}

export class FrameChannel {
  private readonly reader = new StreamReader();
  private opener: RecordOpener | null = null;
  private sealer: RecordSealer | null = null;

  /** Bytes received and not yet returned as frames. */
  get pending(): number {
    return this.reader.pending;
  }

  /** Whether outgoing frames are sealed as records. */
  get sealing(): boolean {
    return this.sealer !== null;
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  readPreamble(): Buffer | null {
    return this.reader.readPreamble();
  }

  /** The next received frame, or null until one is complete; throws the typed error of §2/§8. */
  next(): Received | null {
    const opener = this.opener;
    const raw = this.reader.next(opener === null ? PLAINTEXT : RECORD);
    if (raw === null) return null;
    const body = opener === null ? raw.subarray(LENGTH_PREFIX_BYTES) : opener.open(raw);
    return { frame: decodeBody(body), raw };
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
    return this.sealer === null ? [encodeFrame(frame)] : this.sealer.seal(encodeBody(frame));
  }

  /** Wire bytes for a body that was encoded already (the handshake's FINISHED messages). */
  sealBody(body: Buffer): Buffer[] {
    if (this.sealer === null) throw new Error('sealBody before startSealing');
    return this.sealer.seal(body);
  }

  /** A DATA record without copying `data` into a frame first (§2.2, §8). */
  encodeData(offset: number, data: Buffer): Buffer[] {
    if (this.sealer === null) throw new Error('DATA before the record layer started');
    return this.sealer.seal([encodeDataHead(offset), data]);
  }

  /** True when the next record of `bodyLen` bytes would leave no room under the key limits (§8). */
  nearKeyLimit(bodyLen: number): boolean {
    return this.sealer?.nearLimit(bodyLen) ?? false;
  }

  /** Called at end of stream: TRUNCATED if a frame was cut off. */
  end(): void {
    this.reader.end();
  }
}
