// Page-aligned memory for the data path. Node has no aligned allocator, and its large buffers come
// from malloc's mmap chunks, whose data starts 16 bytes into a page. O_DIRECT needs aligned
// memory, and the receiver's pool is shared memory its hashing thread reads in place; both come
// from a WebAssembly.Memory, which is page-aligned. The sender's read buffers too: copies into
// malloc'd buffers from page-aligned memory (file pages) ran 4–5× slower on CPUs whose `rep movsb`
// stalls when the destination is a few bytes past the source modulo 4 KiB (DESIGN.md, "Where the
// CPU goes per GiB"); CPUs with FSRM do not (bench/micro/aligned-memory.ts measures both).

import { tuned } from './tuning.js';
import { exposedGc } from './young-gc.js';

/** A WebAssembly page: the unit a WebAssembly.Memory is sized in. */
const WASM_PAGE_BYTES = 64 * 1024;

/** A memory page on every platform we run on; the alignment alignedMemory() guarantees. */
export const PAGE_BYTES = 4096;

/** Memories from alignedMemory(): their first byte is page-aligned. */
const aligned = new WeakSet<ArrayBufferLike>();

/**
 * At least `bytes` of zeroed, page-aligned memory that never moves or shrinks (its WebAssembly
 * memory is never grown), or null where WebAssembly cannot provide it. Shared memory (a
 * SharedArrayBuffer) can be read by worker threads in place. Null too with STX_TUNING off.
 */
export function alignedMemory(bytes: number, shared = false): ArrayBufferLike | null {
  if (!tuned('aligned-memory')) return null;
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  try {
    const { buffer } = new WebAssembly.Memory({ initial: pages, maximum: pages, shared });
    aligned.add(buffer);
    return buffer;
  } catch {
    return null;
  }
}

/** Whether `buf` lies in memory from alignedMemory() (its byteOffset is then its page offset). */
export function inAlignedMemory(buf: Buffer): boolean {
  return aligned.has(buf.buffer);
}

/** Bytes of dropped aligned memory worth a full collection... */
const RELEASE_AFTER_BYTES = 4 * 1024 * 1024;
/** ...run this long after the first drop, so that one collection serves a burst of them. */
const RELEASE_DELAY_MS = 250;

let dropped = 0;
let releasing: NodeJS.Timeout | null = null;

/**
 * The caller dropped its last reference to `bytes` of memory from alignedMemory(). A
 * WebAssembly memory is unmapped only when a full collection finds it dead, and an idle daemon
 * runs none: memory that a burst of connections took would stay resident for good (issue 14).
 * Once RELEASE_AFTER_BYTES were dropped, one full collection runs RELEASE_DELAY_MS later.
 */
export function releaseAlignedMemory(bytes: number): void {
  dropped += bytes;
  if (dropped < RELEASE_AFTER_BYTES || releasing !== null) return;
  releasing = setTimeout(() => {
    releasing = null;
    dropped = 0;
    // gc() itself: gc({type: 'major'}) left dropped WebAssembly memories mapped (Node 20).
    exposedGc()?.();
  }, RELEASE_DELAY_MS);
  releasing.unref();
}
