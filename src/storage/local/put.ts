// A whole small file published at once (PUT, spec/PROTOCOL.md §9.11): written into the reserved
// directory, given its mode and mtime, fsync'd, renamed (or linked, no-clobber) to its final name,
// and its directory fsync'd, before the caller answers. Nothing is recorded for a resume: a PUT
// cut short is sent again whole. Many of these run at once, so their fsyncs overlap in the
// filesystem's journal and their directory fsyncs are shared (dir-sync.ts).
import { close, constants, fchmod, fstat, fsync, futimes, open, writev, type BigIntStats } from 'node:fs';
import { link, rename } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import type { PublishOptions } from '../backend.js';
import { PARTIAL_FILE_MODE } from './config.js';
import type { DirSyncer } from './dir-sync.js';
import { unlinkIfPresent } from './fs-util.js';
import { prepareParents, removeCreated, stampOf, type PathCounters } from './paths.js';
import type { SumRecords } from './sums.js';

export interface PutPaths {
  readonly outDir: string;
  readonly realOutDir: string;
  readonly counters: PathCounters;
  /** The file written before it is published: `.stx/partials/<id>.put`. */
  readonly tempFile: string;
  readonly shownTemp: string;
  /** Where a published file's SHA-256 is recorded (sums.ts). */
  readonly sums: SumRecords;
}

// Plain descriptors, not FileHandles: on this path the handle objects cost more main-thread time
// than the system calls (a profile of 10,000 PUTs: ~95 µs per open of a FileHandle).
const openFd = promisify(open);
const writevFd = promisify(writev);
const fchmodFd = promisify(fchmod);
const futimesFd = promisify(futimes);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);
const fstatFd = (fd: number): Promise<BigIntStats> =>
  new Promise((resolve, reject) => fstat(fd, { bigint: true }, (err, st) => (err === null ? resolve(st) : reject(err))));

async function step<T>(what: string, where: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toStxError(err, what, where);
  }
}

/** Writes `chunks` as the file `name` and publishes it durably (see above). */
export async function putFile(paths: PutPaths, name: string, chunks: readonly Buffer[], options: PublishOptions, dirs: DirSyncer): Promise<void> {
  const { tempFile, shownTemp } = paths;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
  const fd = await step('creating', shownTemp, () => openFd(tempFile, flags, PARTIAL_FILE_MODE));
  let published = false;
  try {
    await step('writing', shownTemp, async () => {
      let pending = chunks.filter((c) => c.length > 0);
      while (pending.length > 0) {
        let { bytesWritten } = await writevFd(fd, pending);
        // A short write goes on where it stopped.
        const rest: Buffer[] = [];
        for (const c of pending) {
          if (bytesWritten >= c.length) bytesWritten -= c.length;
          else {
            rest.push(c.subarray(bytesWritten));
            bytesWritten = 0;
          }
        }
        pending = rest;
      }
      await fchmodFd(fd, options.mode & 0o777);
      await futimesFd(fd, new Date(), options.mtime / 1000);
      // The bytes before the name: a crash never leaves a torn file under its final name.
      await fsyncFd(fd);
    });
    const { finalPath, created } = await prepareParents(paths.outDir, paths.realOutDir, name.split('/'), paths.counters);
    try {
      if (options.how === 'no-clobber') {
        try {
          await link(tempFile, finalPath);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'publishing', name);
          throw new UploadError('EXISTS', `"${name}" already exists`);
        }
      } else {
        await step('publishing', name, () => rename(tempFile, finalPath));
      }
      published = true;
    } catch (err) {
      await removeCreated(created, paths.counters);
      throw err;
    }
    // New directories' entries and the file's own, durably; shared with the files published alongside.
    const parent = path.dirname(finalPath);
    await step('syncing directory of', name, () => Promise.all([dirs.made(created), dirs.sync(parent), dirs.ancestorsDurable(parent, paths.outDir)]));
    await recordSum(paths.sums, name, fd, options.sha256);
  } finally {
    await closeFd(fd).catch(() => undefined);
    // After a link (no-clobber) or a failure the temporary file is only garbage.
    if (!published || options.how === 'no-clobber') await unlinkIfPresent(tempFile).catch(() => undefined);
  }
}

/**
 * The published file's SHA-256 for its version now, stamped from the published inode itself
 * (still open: the rename changed its ctime), as partial.ts does; or the name's old record
 * removed. Best effort: the file is published whatever happens here, its hash then unknown.
 */
async function recordSum(sums: SumRecords, name: string, fd: number, sha256: Buffer | undefined): Promise<void> {
  try {
    if (sha256 === undefined) await sums.remove(name);
    else await sums.write(name, stampOf(await fstatFd(fd)), sha256);
  } catch {
    await sums.remove(name).catch(() => undefined);
  }
}
