// The resume step both hashing paths share (hasher.ts, hash-worker.ts): the SHA-256 state of a
// partial upload's durable prefix, read back once per resume with one bounded buffer (§9.2).
import type { Hash } from 'node:crypto';
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { HASH_READ_BUFFER_BYTES } from '../config.js';

const readAt = promisify(read);

/** Feeds bytes [0, length) of the open file `fd` to `hash`; fails if the file is shorter. */
export async function hashPrefix(fd: number, length: number, hash: Hash): Promise<void> {
  if (length === 0) return;
  const buffer = Buffer.allocUnsafe(Math.min(HASH_READ_BUFFER_BYTES, length));
  for (let position = 0; position < length; ) {
    const want = Math.min(buffer.length, length - position);
    const { bytesRead } = await readAt(fd, buffer, 0, want, position);
    if (bytesRead <= 0) throw new Error(`the file ends at ${position} bytes, before the ${length} its record says`);
    hash.update(buffer.subarray(0, bytesRead));
    position += bytesRead;
  }
}
