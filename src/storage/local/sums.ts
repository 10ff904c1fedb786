// The SHA-256 of each published file, as the policy verified it at publish (spec/PROTOCOL.md
// §9.10), kept beside the file so that a listing, a GET_OK and an identical re-send (§9.1) know it
// after a restart without reading the file.
//
// Where: one small record per published name in the reserved directory,
// `.stx/sums/<h[0..2]>/<h>` with h = SHA-256 of the name, holding the name, the file's version
// stamp (paths.ts stampOf: device, inode, size, mtime and ctime in ns) and its SHA-256. Why not an
// extended attribute on the file: Node has no xattr API (it would take a native addon), not every
// filesystem has user xattrs, and a copy of the tree (cp, tar, rsync without -X) would carry a
// hash along to a file it no longer proves anything about. Why keyed by name: publishing a name
// again overwrites its record, so there is at most one record per published name (bounded on disk,
// nothing held in memory), and a replaced file's record is replaced with it.
//
// Never stale: a record is used only while the file's stamp equals the one recorded, taken from
// the published inode itself after its rename (a rename changes the ctime). A file changed in
// place by other means has another mtime or ctime, a replaced one another inode: its record is
// then ignored. Records are written without fsync: after a power cut one may be missing or torn,
// which only makes the hash unknown (a torn record does not parse, and a whole old one names an
// old stamp).
//
// Small files have none: a file of at most SMALL_SUM_MAX_BYTES (64 KiB) is read whole and hashed
// when a reader asks (sha256OfSmall), which costs about what opening and reading its record would
// (a 4 KiB file: ~5 µs of SHA-256 beside the same few system calls), where writing a record cost
// its publish a create, a write and a close, the largest part of a small file's CPU. The hash is
// then always that of the bytes there now: checked against the file's stamp before and after the
// read, so nothing written meanwhile by other means is vouched for. write() records nothing for a
// stamp that small and read() never looks for one; a record an earlier, larger version left
// names another stamp and stays unused until the name is published large again or removed (at
// most one per name, as before).
import { createHash } from 'node:crypto';
import { close, closeSync, constants, fstat, mkdirSync, open, openSync, read, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { errnoOf } from '../../transfer/io-error.js';
import { SMALL_SUM_MAX_BYTES } from './config.js';
import { sizeOfStamp, stampOf } from './paths.js';

// The callback API, one thread-pool trip per call: node:fs/promises' readFile and writeFile take
// two to three times the CPU for a file this small (an fstat, chunked reads, extra awaits).
const openFd = promisify(open);
const readFd = promisify(read);
const closeFd = promisify(close);
const fstatFd = (fd: number): Promise<string> =>
  new Promise((resolve, reject) => fstat(fd, { bigint: true }, (err, st) => (err === null ? resolve(stampOf(st)) : reject(err))));

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A record is a few hundred bytes (the name at most 4096); anything larger is not one. */
const MAX_RECORD_BYTES = 8192;

/** The first MAX_RECORD_BYTES + 1 bytes of `file`, never through a link. */
async function readSmall(file: string): Promise<Buffer> {
  const fd = await openFd(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const buffer = Buffer.allocUnsafe(MAX_RECORD_BYTES + 1);
    const { bytesRead } = await readFd(fd, buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await closeFd(fd);
  }
}

/** Whether a file of version `stamp` is small: its hash is computed when asked, never recorded. */
export function isSmallStamp(stamp: string): boolean {
  return sizeOfStamp(stamp) <= SMALL_SUM_MAX_BYTES;
}

/**
 * The SHA-256 of the bytes of the file open as `fd`, if it is version `stamp` (paths.ts stampOf)
 * of a small file before and after they are read, else undefined. Reads at most
 * SMALL_SUM_MAX_BYTES + 1 bytes. `stampedHere`: the caller took `stamp` from this fd already.
 */
async function hashOpen(fd: number, stamp: string, stampedHere: boolean): Promise<Buffer | undefined> {
  const size = sizeOfStamp(stamp);
  if (!(size <= SMALL_SUM_MAX_BYTES)) return undefined;
  // Compared before reading, so that nothing but that regular file is read (a FIFO or device put
  // under the name meanwhile is another inode).
  if (!stampedHere && (await fstatFd(fd)) !== stamp) return undefined;
  const buffer = Buffer.allocUnsafe(size + 1);
  // Every turn reads at least one byte or ends: at most size + 1 turns.
  for (let got = 0; ; ) {
    const { bytesRead } = await readFd(fd, buffer, got, buffer.length - got, got);
    got += bytesRead;
    if (bytesRead === 0 || got === buffer.length) {
      if (got !== size) return undefined;
      break;
    }
  }
  // Written meanwhile (its mtime or ctime moved): the bytes read may be of neither version.
  if ((await fstatFd(fd)) !== stamp) return undefined;
  return createHash('sha256').update(buffer.subarray(0, size)).digest();
}

/**
 * The SHA-256 of small published file `file` at version `stamp`; undefined if it is not that
 * version of a small regular file, or cannot be read. `file` is the fd whose fstat gave `stamp`,
 * or a path (opened here without following a link and without blocking, then checked).
 */
export async function sha256OfSmall(file: number | string, stamp: string): Promise<Buffer | undefined> {
  if (!isSmallStamp(stamp)) return undefined;
  try {
    if (typeof file === 'number') return await hashOpen(file, stamp, true);
    const fd = await openFd(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      return await hashOpen(fd, stamp, false);
    } finally {
      await closeFd(fd);
    }
  } catch {
    return undefined; // gone, or unreadable: unknown
  }
}

export class SumRecords {
  readonly #dir: string;

  /** `dir` is `.stx/sums` under the output directory (created by init, mode 0700). */
  constructor(dir: string) {
    this.#dir = dir;
  }

  /** The directory of the records (for a thread that keeps its own SumRecords of it). */
  get dir(): string {
    return this.#dir;
  }

  #pathOf(name: string): { shard: string; file: string } {
    const h = createHash('sha256').update(name, 'utf8').digest('hex');
    const shard = path.join(this.#dir, h.slice(0, 2));
    return { shard, file: path.join(shard, h) };
  }

  /**
   * Records `sha256` for the version `stamp` of published `name`; nothing for a small file (its
   * hash is computed when asked). Best effort: a failure leaves the hash unknown. Synchronous
   * calls (a small file's open, write and close), from the event loop or the publishing thread.
   */
  writeSync(name: string, stamp: string, sha256: Buffer): void {
    if (isSmallStamp(stamp)) return;
    const { shard, file } = this.#pathOf(name);
    const bytes = Buffer.from(JSON.stringify({ v: 1, name, stamp, sha256: sha256.toString('hex') }), 'utf8');
    const once = (): void => {
      const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
      try {
        if (writeSync(fd, bytes, 0, bytes.length, 0) !== bytes.length) throw new Error(`short write of ${file}`);
      } finally {
        closeSync(fd);
      }
    };
    try {
      once();
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      try {
        mkdirSync(shard, { mode: 0o700 });
      } catch (e) {
        if (errnoOf(e) !== 'EEXIST') throw e;
      }
      once();
    }
  }

  /** Forgets `name`'s record (published again without a hash, or replaced by a link). */
  removeSync(name: string): void {
    try {
      unlinkSync(this.#pathOf(name).file);
    } catch {
      // None: nothing to forget.
    }
  }

  /**
   * The SHA-256 of version `stamp` of published `name`, else undefined (unknown): a small file's
   * computed from `file` (the fd whose fstat gave `stamp`, or its path: sha256OfSmall), a larger
   * one's as recorded for this very stamp.
   */
  async read(name: string, stamp: string, file: number | string): Promise<Buffer | undefined> {
    if (stamp === '') return undefined;
    if (isSmallStamp(stamp)) return sha256OfSmall(file, stamp);
    let text: string;
    try {
      const bytes = await readSmall(this.#pathOf(name).file);
      if (bytes.length > MAX_RECORD_BYTES) return undefined;
      text = bytes.toString('utf8');
    } catch {
      return undefined; // none (or unreadable): unknown
    }
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== 'object' || v === null) return undefined;
      const r = v as Record<string, unknown>;
      if (r.v !== 1 || r.name !== name || r.stamp !== stamp || typeof r.sha256 !== 'string' || !SHA256_HEX.test(r.sha256)) return undefined;
      return Buffer.from(r.sha256, 'hex');
    } catch {
      return undefined; // torn by a crash
    }
  }

}
