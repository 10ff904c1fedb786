// Writes that bypass the page cache (O_DIRECT) for the chunks that allow it (DESIGN.md, "Where the
// CPU goes per GiB"): a buffered write copies every byte into the page cache, and that copy (and
// the write-back of dirty pages at the next fsync) was the largest single cost of receiving.
//
// O_DIRECT needs the memory address, the file offset and the length all aligned to the device's
// logical block size; DIRECT_IO_ALIGN_BYTES covers 512- and 4096-byte devices. Node has no aligned
// allocator; BodyPool carves buffers out of page-aligned memory (runtime/aligned-memory.ts).
// Anything not aligned (a file's last chunk, a client that sends odd chunk sizes) is written
// through the page cache as before; so is everything on a filesystem that refuses O_DIRECT.
import { constants, fstatSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { inAlignedMemory } from '../../runtime/aligned-memory.js';
import { DIRECT_IO_ALIGN_BYTES } from '../../transfer/config.js';

/** Whether `buf` starts and ends on an alignment boundary of memory from alignedMemory(). */
export function isAligned(buf: Buffer): boolean {
  return buf.byteOffset % DIRECT_IO_ALIGN_BYTES === 0 && buf.length % DIRECT_IO_ALIGN_BYTES === 0 && inAlignedMemory(buf);
}

/**
 * How many of `buffers`, from the first, can go out in one O_DIRECT write at `position`: 0 unless
 * the position is aligned; then up to the first buffer that is not aligned.
 */
export function alignedPrefix(buffers: readonly Buffer[], position: number): number {
  if (position % DIRECT_IO_ALIGN_BYTES !== 0) return 0;
  const n = buffers.findIndex((b) => !isAligned(b));
  return n < 0 ? buffers.length : n;
}

/** Which file a handle has open (from its fstat). */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

/**
 * A second, write-only O_DIRECT handle on the file `fh` has open at `path` (no symbolic link
 * followed), or null: no O_DIRECT on this platform or filesystem, or the path no longer names the
 * same file. `known` is fh's identity if the caller has just stat'ed it (one fstat fewer).
 */
export async function openDirect(path: string, fh: FileHandle, known?: FileIdentity): Promise<FileHandle | null> {
  // Not defined where the platform has no O_DIRECT (macOS), whatever Node's types say.
  const direct = (constants as Partial<typeof constants>).O_DIRECT;
  if (direct === undefined) return null;
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_NOFOLLOW | direct);
  } catch {
    return null;
  }
  let a: FileIdentity;
  let b: FileIdentity;
  try {
    // Two fast calls, made here rather than as trips to the thread pool (paths.ts says why).
    a = known ?? fstatSync(fh.fd);
    b = fstatSync(handle.fd);
  } catch {
    await handle.close().catch(() => undefined);
    return null;
  }
  if (a.dev !== b.dev || a.ino !== b.ino) {
    await handle.close().catch(() => undefined);
    return null;
  }
  return handle;
}
