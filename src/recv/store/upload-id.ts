// The upload identity (§9.2): who uploads which version of which file. Its id names the partial
// in the storage backend, so that a resume of the same identity finds it and no other does.

import { createHash } from 'node:crypto';

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

function lengthPrefixed(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/**
 * Hex SHA-256 of label ‖ u32 len ‖ principal ‖ u32 len ‖ name ‖ u64 size ‖ i64 mtime [‖ stream]:
 * lengths make the encoding unambiguous (a stream id is all that may follow mtime), so different
 * identities never share a record.
 */
export function uploadId(identity: UploadIdentity): string {
  const numbers = Buffer.alloc(16);
  numbers.writeBigUInt64BE(BigInt(identity.size), 0);
  numbers.writeBigInt64BE(BigInt(identity.mtime), 8);
  return createHash('sha256')
    .update(ID_LABEL)
    .update(lengthPrefixed(identity.principal))
    .update(lengthPrefixed(identity.name))
    .update(numbers)
    .update(identity.stream ?? Buffer.alloc(0))
    .digest('hex');
}
