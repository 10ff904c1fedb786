// The upload identity (§9.2): who uploads which version of which file. Its id names the partial
// in the storage backend, so that a resume of the same identity finds it and no other does.

import { hash } from 'node:crypto';

/** What identifies an upload (§9.2). */
export interface UploadIdentity {
  /** "anonymous" or the client's key fingerprint. */
  readonly principal: string;
  readonly name: string;
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /** OPEN's `stream` id, for a stream of unknown length (§9.8). */
  readonly stream?: Buffer | undefined;
}

const ID_LABEL = Buffer.from('stx/1 upload id\0', 'latin1');
const TWO_32 = 2 ** 32;

/** writeBigUInt64BE(BigInt(v)) without the BigInt (one per PUT) for a safe integer; the same bytes. */
function writeU64(buffer: Buffer, v: number, at: number): number {
  if (!Number.isSafeInteger(v) || v < 0) return buffer.writeBigUInt64BE(BigInt(v), at);
  buffer.writeUInt32BE(Math.floor(v / TWO_32), at);
  return buffer.writeUInt32BE(v % TWO_32, at + 4);
}

/** writeBigInt64BE(BigInt(v)) likewise: two's complement, high word signed. */
function writeI64(buffer: Buffer, v: number, at: number): number {
  if (!Number.isSafeInteger(v)) return buffer.writeBigInt64BE(BigInt(v), at);
  const high = Math.floor(v / TWO_32);
  buffer.writeInt32BE(high, at);
  return buffer.writeUInt32BE(v - high * TWO_32, at + 4);
}
const EMPTY = Buffer.alloc(0);

/**
 * Hex SHA-256 of label ‖ u32 len ‖ principal ‖ u32 len ‖ name ‖ u64 size ‖ i64 mtime [‖ stream]:
 * lengths make the encoding unambiguous (a stream id is all that may follow mtime), so different
 * identities never share a record.
 */
export function uploadId(identity: UploadIdentity): string {
  // The whole input in one buffer and one hash call: a PUT of a small file asks for one each.
  const principal = Buffer.byteLength(identity.principal, 'utf8');
  const name = Buffer.byteLength(identity.name, 'utf8');
  const stream = identity.stream ?? EMPTY;
  const input = Buffer.allocUnsafe(ID_LABEL.length + 4 + principal + 4 + name + 16 + stream.length);
  let at = ID_LABEL.copy(input, 0);
  at = input.writeUInt32BE(principal, at);
  at += input.write(identity.principal, at, principal, 'utf8');
  at = input.writeUInt32BE(name, at);
  at += input.write(identity.name, at, name, 'utf8');
  at = writeU64(input, identity.size, at);
  at = writeI64(input, identity.mtime, at);
  stream.copy(input, at);
  return hash('sha256', input, 'hex');
}
