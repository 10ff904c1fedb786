// A whole small file published at once (PUT, spec/PROTOCOL.md §9.11): written into the reserved
// directory, given its mode and mtime, fsync'd, renamed (or linked, no-clobber) to its final name,
// and its directory fsync'd, before the caller answers. Nothing is recorded for a resume: a PUT
// cut short is sent again whole. Many of these run at once, so their fsyncs overlap in the
// filesystem's journal and their directory fsyncs are shared (dir-sync.ts).
import { close, constants, fchmod, fsync, futimes, open, writev } from 'node:fs';
import { link, rename } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import type { PublishOptions } from '../backend.js';
import { PARTIAL_FILE_MODE } from './config.js';
import type { DirSyncer } from './dir-sync.js';
import { unlinkIfPresent } from './fs-util.js';
import { prepareParents, removeCreated, type PathCounters } from './paths.js';

export interface PutPaths {
  readonly outDir: string;
  readonly realOutDir: string;
  readonly counters: PathCounters;
  /** The file written before it is published: `.stx/partials/<id>.put`. */
  readonly tempFile: string;
  readonly shownTemp: string;
}

// Plain descriptors, not FileHandles: on this path the handle objects cost more main-thread time
// than the system calls (a profile of 10,000 PUTs: ~95 µs per open of a FileHandle).
const openFd = promisify(open);
const writevFd = promisify(writev);
const fchmodFd = promisify(fchmod);
const futimesFd = promisify(futimes);
const fsyncFd = promisify(fsync);
const closeFd = promisify(close);

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
    } finally {
      await closeFd(fd).catch(() => undefined);
    }
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
  } finally {
    // After a link (no-clobber) or a failure the temporary file is only garbage.
    if (!published || options.how === 'no-clobber') await unlinkIfPresent(tempFile).catch(() => undefined);
  }
}
