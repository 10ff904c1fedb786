// The connection preamble (spec/PROTOCOL.md §3).
import { ProtocolError } from './errors.js';
import { PREAMBLE_BYTES, PREAMBLE_MAGIC, PROTOCOL_VERSION } from './limits.js';

export function encodePreamble(version: number = PROTOCOL_VERSION): Buffer {
  const out = Buffer.alloc(PREAMBLE_BYTES);
  PREAMBLE_MAGIC.copy(out, 0);
  out.writeUInt16BE(version, 4);
  return out;
}

/** The version a peer's preamble states; BAD_PREAMBLE for a wrong magic or reserved bits. */
export function parsePreamble(buf: Buffer): number {
  if (buf.length !== PREAMBLE_BYTES || !buf.subarray(0, 4).equals(PREAMBLE_MAGIC) || buf.readUInt16BE(6) !== 0) {
    throw new ProtocolError('BAD_PREAMBLE', 'the peer does not speak stx (bad preamble)');
  }
  return buf.readUInt16BE(4);
}

/** Server side of §3: the version to answer with, or VERSION_UNSUPPORTED. */
export function selectVersion(clientVersion: number): number {
  if (clientVersion < 1) {
    throw new ProtocolError('VERSION_UNSUPPORTED', `client offers version ${clientVersion}; this server speaks ${PROTOCOL_VERSION}`);
  }
  return Math.min(clientVersion, PROTOCOL_VERSION);
}
