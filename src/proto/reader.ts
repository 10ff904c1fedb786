// Incremental reader of the byte stream (spec/PROTOCOL.md §2, §3, §8): takes chunks at any
// boundaries and yields the preamble, then whole length-prefixed frames or records. A length is
// checked against the caller's limit as soon as its 4 bytes are in, before anything is buffered
// for the body, so the reader never holds more than one maximal frame plus one chunk.
import { ProtocolError } from './errors.js';
import { LENGTH_PREFIX_BYTES, PREAMBLE_BYTES } from './limits.js';

export interface LengthBounds {
  readonly min: number;
  readonly max: number;
}

/**
 * Pieces a reader holds at most. How many pieces a frame arrives in is the peer's choice (one byte
 * per TCP segment), and each costs far more than its byte (a Buffer object, ~100 bytes of heap):
 * past this they are joined into one buffer. Each join copies what is pending, at most one frame
 * and a read, and comes once per this many pieces.
 */
export const MAX_HELD_PIECES = 64;

export class StreamReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  /** Bytes received and not yet returned. */
  get pending(): number {
    return this.buffered;
  }

  /** Buffers those bytes are held in (at most MAX_HELD_PIECES). */
  get pieces(): number {
    return this.chunks.length;
  }

  /**
   * Copies the bytes still buffered of the last chunk pushed if they lie in `memory` (a read
   * buffer the caller is about to reuse for the next read), so that they outlive it. Called after
   * every push of such a read, so every earlier chunk is a copy already: the last one alone is
   * looked at, whatever the number of pieces a frame came in (the peer's choice).
   */
  copyOutOf(memory: ArrayBufferLike): void {
    const last = this.chunks.length - 1;
    const c = this.chunks[last];
    if (c !== undefined && c.buffer === memory) this.chunks[last] = Buffer.from(c);
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.chunks.length >= MAX_HELD_PIECES) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The 8-byte preamble (§3), or null until it has arrived. */
  readPreamble(): Buffer | null {
    return this.buffered < PREAMBLE_BYTES ? null : this.take(PREAMBLE_BYTES);
  }

  /**
   * The next whole frame or record, length prefix included, or null until it has arrived.
   * Throws FRAME_TOO_LARGE / MALFORMED_FRAME when the announced length breaks `bounds`.
   */
  next(bounds: LengthBounds): Buffer | null {
    const length = this.peekLength(bounds);
    if (length === null) return null;
    const total = LENGTH_PREFIX_BYTES + length;
    return this.buffered < total ? null : this.take(total);
  }

  /**
   * The announced length of the next frame or record (without its 4-byte prefix), or null until
   * the prefix has arrived; checked against `bounds` exactly as next() checks it. Nothing is
   * removed: a caller that opens records piece by piece takes the prefix with takeBytes().
   */
  peekLength(bounds: LengthBounds): number | null {
    if (this.buffered < LENGTH_PREFIX_BYTES) return null;
    const length = this.readLength();
    if (length > bounds.max) {
      throw new ProtocolError('FRAME_TOO_LARGE', `length ${length} exceeds ${bounds.max}`);
    }
    if (length < bounds.min) {
      throw new ProtocolError('MALFORMED_FRAME', `length ${length} is below ${bounds.min}`);
    }
    return length;
  }

  /** Removes and returns the first `n` bytes (n ≤ pending); a copy only when they straddle chunks. */
  takeBytes(n: number): Buffer {
    if (n > this.buffered) throw new RangeError(`takeBytes(${n}) with ${this.buffered} bytes buffered`);
    return this.take(n);
  }

  /**
   * Removes and returns up to `max` bytes as they were received, never copying: at most the
   * rest of the first buffered chunk. Null when nothing is buffered (or `max` is 0).
   */
  takePiece(max: number): Buffer | null {
    const first = this.chunks[0];
    if (first === undefined || max <= 0) return null;
    return this.take(Math.min(max, first.length));
  }

  /** Throws TRUNCATED if the stream ended inside a preamble, frame or record. */
  end(): void {
    if (this.buffered > 0) {
      throw new ProtocolError('TRUNCATED', `connection closed with ${this.buffered} bytes of an incomplete frame`);
    }
  }

  private readLength(): number {
    const first = this.chunks[0];
    if (first !== undefined && first.length >= LENGTH_PREFIX_BYTES) return first.readUInt32BE(0);
    const head = Buffer.alloc(LENGTH_PREFIX_BYTES);
    let filled = 0;
    for (const c of this.chunks) {
      filled += c.copy(head, filled, 0, Math.min(c.length, LENGTH_PREFIX_BYTES - filled));
      if (filled === LENGTH_PREFIX_BYTES) break;
    }
    return head.readUInt32BE(0);
  }

  /** Removes and returns the first n buffered bytes (n ≤ buffered); no copy when one chunk holds them. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first === undefined) throw new RangeError('take from an empty reader');
    this.buffered -= n;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      if (c === undefined) throw new RangeError('reader underflow');
      const want = n - filled;
      if (c.length <= want) {
        c.copy(out, filled);
        filled += c.length;
        this.chunks.shift();
      } else {
        c.copy(out, filled, 0, want);
        this.chunks[0] = c.subarray(want);
        filled += want;
      }
    }
    return out;
  }
}
