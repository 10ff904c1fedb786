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
  at = input.writeBigUInt64BE(BigInt(identity.size), at);
  at = input.writeBigInt64BE(BigInt(identity.mtime), at);
  stream.copy(input, at);
  return hash('sha256', input, 'hex');
}
