// The handshake transcript (spec/PROTOCOL.md §6.1): a running SHA-256 over the exact wire bytes,
// from which H_sh and H_ke are read off without buffering the messages.
import { createHash, type Hash } from 'node:crypto';
import { LENGTH_PREFIX_BYTES } from '../proto/limits.js';
import { FRAME_TYPES, type FrameName } from '../proto/frames.js';

export class Transcript {
  private readonly hash: Hash = createHash('sha256');

  add(...messages: readonly Buffer[]): void {
    for (const m of messages) this.hash.update(m);
  }

  /** H(everything added so far); more may be added afterwards. */
  current(): Buffer {
    return this.hash.copy().digest();
  }
}

/**
 * Checks that `bytes` is one whole plaintext frame (length ‖ type ‖ payload) of type `name`, as the
 * transcript needs the frame exactly as on the wire. A mismatch is a caller bug, not peer input:
 * the stream reader and the codec have already checked what the peer sent.
 */
export function checkFrameBytes(bytes: Buffer, name: FrameName): void {
  if (
    bytes.length <= LENGTH_PREFIX_BYTES ||
    bytes.readUInt32BE(0) !== bytes.length - LENGTH_PREFIX_BYTES ||
    bytes[LENGTH_PREFIX_BYTES] !== FRAME_TYPES[name]
  ) {
    throw new TypeError(`expected the whole ${name} frame as received (length ‖ type ‖ payload)`);
  }
}
