// Reusable buffers that long DATA records are opened into and written from (FrameChannel.nextData,
// WriteQueue): a transfer of any size cycles through a few of them instead of leaving one
// garbage buffer per MiB for V8 to find (see DESIGN.md, "Where the CPU goes per GiB").
import type { BodyBuffers } from '../crypto/channel.js';
import { MAX_FRAME_LENGTH_BYTES } from '../proto/limits.js';
import { MAX_FREE_BODY_BUFFERS } from './config.js';

export class BodyPool implements BodyBuffers {
  readonly #free: Buffer[] = [];
  readonly #bufferBytes: number;
  readonly #maxFree: number;

  constructor(bufferBytes = MAX_FRAME_LENGTH_BYTES, maxFree = MAX_FREE_BODY_BUFFERS) {
    this.#bufferBytes = bufferBytes;
    this.#maxFree = maxFree;
  }

  /** Buffers kept for reuse right now. */
  get freeBuffers(): number {
    return this.#free.length;
  }

  /**
   * A buffer for a body of `bodyBytes`: a pooled one when the body fills at least half of it, else
   * one of the exact size, so that memory held stays within twice the bytes queued (small records
   * cannot pin whole pooled buffers each).
   */
  take(bodyBytes: number): Buffer {
    if (bodyBytes > this.#bufferBytes) throw new RangeError(`body of ${bodyBytes} bytes over ${this.#bufferBytes}`);
    if (bodyBytes * 2 < this.#bufferBytes) return Buffer.allocUnsafeSlow(bodyBytes);
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.#bufferBytes);
  }

  /** Takes back a buffer from take() once nothing refers to it any more; others are left to GC. */
  give(buffer: Buffer): void {
    if (buffer.length === this.#bufferBytes && this.#free.length < this.#maxFree) this.#free.push(buffer);
  }
}
