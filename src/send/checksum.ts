// stx-send --checksum (spec/PROTOCOL.md §9.1 "Identical files", rsync -c): each file is hashed
// before it is offered, and its OPEN carries the SHA-256, so that a server holding those very
// bytes (with the same mtime and mode) under that name answers DONE at once and no data moves.
// Without the flag nothing is hashed ahead: a file the server holds already is only found out by
// its partial (resume) or an append-only server's read-back (§9.5).
import { createHash } from 'node:crypto';
import { LocalFileError, type DataSource } from '../transfer/source.js';
import type { Outgoing } from './commands/upload.js';

/** The SHA-256 of all of `source`, read chunk by chunk; LOCAL_FILE if it changed meanwhile. */
export async function sourceDigest(source: DataSource): Promise<Buffer> {
  const hash = createHash('sha256');
  const size = source.identity.size;
  let at = 0;
  // Each read gives at least one byte below `size`, or the file became shorter.
  for (let reads = 0; at < size && reads <= size; reads++) {
    const chunk = await source.read(at);
    if (chunk.length === 0) break;
    hash.update(chunk);
    at += chunk.length;
  }
  if (at !== size) throw new LocalFileError(`${source.label} became shorter while it was being hashed`);
  await source.checkUnchanged();
  return hash.digest();
}

/** `body` with its OPEN carrying the file's SHA-256 (hashed now, once for all attempts). */
export async function offeringDigest(body: Outgoing, source: DataSource): Promise<Outgoing> {
  const sha256 = await sourceDigest(source);
  return { ...body, open: { ...body.open, sha256 } };
}
