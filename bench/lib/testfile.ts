// The file every contender sends: random bytes, quick to make, and no two 4 KiB pages alike.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';

import { writeFully } from './fileio.js';

const BLOCK_BYTES = 1024 * 1024;
/** Each page of each block is stamped with (block, page) so no page repeats anywhere. */
const PAGE_BYTES = 4096;
const HASH_READ_BYTES = 1024 * 1024;

export interface TestFile {
  readonly path: string;
  readonly size: number;
  /** Lowercase hex. */
  readonly sha256: string;
}

/** Write `size` bytes to `path`: one random 1 MiB block, stamped per page with a counter. */
export async function makeTestFile(path: string, size: number): Promise<TestFile> {
  const base = randomBytes(BLOCK_BYTES);
  const block = Buffer.allocUnsafe(BLOCK_BYTES);
  const hash = createHash('sha256');
  const fh = await open(path, 'w');
  try {
    for (let offset = 0, index = 0; offset < size; offset += BLOCK_BYTES, index++) {
      base.copy(block);
      for (let page = 0; page < BLOCK_BYTES / PAGE_BYTES; page++) {
        block.writeUInt32LE(index, page * PAGE_BYTES);
        block.writeUInt32LE(page, page * PAGE_BYTES + 4);
      }
      const length = Math.min(BLOCK_BYTES, size - offset);
      await writeFully(fh, block.subarray(0, length), offset);
      hash.update(block.subarray(0, length));
    }
  } finally {
    await fh.close();
  }
  return { path, size, sha256: hash.digest('hex') };
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: HASH_READ_BYTES })) {
    if (!Buffer.isBuffer(chunk)) throw new Error('unexpected non-buffer chunk');
    hash.update(chunk);
  }
  return hash.digest('hex');
}
