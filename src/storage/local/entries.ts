// Directories and symbolic links under the output directory (spec/PROTOCOL.md §9.8), for MKDIR
// and SYMLINK. Names and link targets were checked by the policy (recv/names.ts, recv/link-target.ts);
// here no link is followed: parents are checked one component at a time (paths.ts), the final
// component with lstat, and a link replaces a file by rename, never by writing through it.
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, utimesSync, type Stats } from 'node:fs';
import { lstat, lutimes, readlink, rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import type { DirectoryOptions, DirectoryRequest } from '../backend.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { NAME_DIR_MODE } from './config.js';
import { fsyncDir, fsyncDirSync } from './fs-util.js';
import { parentsInside } from './paths.js';

export interface LinkOptions {
  readonly mtime: number;
  /** Append-only: an existing name is EXISTS unless it is already this link. */
  readonly noClobber: boolean;
}

async function lstatOrNull(file: string, shown: string): Promise<Stats | null> {
  try {
    return await lstat(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw toStxError(err, 'checking', shown);
  }
}

function lstatOrNullSync(file: string, shown: string): Stats | null {
  try {
    return lstatSync(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw toStxError(err, 'checking', shown);
  }
}

/** How a run of MKDIRs went: the first `made` are done and durable; `failure` is the next one's error, if any. */
export interface DirectoriesOutcome {
  readonly made: number;
  readonly failure: unknown;
}

/**
 * MKDIRs, a run of them at once (§9.8 "Pipelined", revision 1.14): each is created (with its
 * parents) and takes its mode and mtime in order, up to the first refused; then every parent
 * of those done is synced once, not once per MKDIR (100 directories of a tree share one parent:
 * one fsync instead of 100). Synchronous calls: it runs on the publishing thread
 * (put-pool.ts makeDirectories), in one message, where the same steps on the main thread took 8
 * thread-pool trips each. A parent whose sync fails leaves the MKDIRs below it, and all after
 * the first of them, not made.
 */
export function makeDirectoriesSync(outDir: string, entries: readonly DirectoryRequest[]): DirectoriesOutcome {
  // Each one's parent to sync, or null (nothing changed).
  const parents: (string | null)[] = [];
  let failure: unknown = null;
  for (const entry of entries) {
    try {
      const parent = makeDirectoryUnsynced(outDir, entry.name, entry.options);
      parents.push(parent);
    } catch (err) {
      failure = err;
      break;
    }
  }
  const synced = new Set<string>();
  for (let i = 0; i < parents.length; i++) {
    const parent = parents[i];
    if (parent === undefined || parent === null || synced.has(parent)) continue;
    try {
      fsyncDirSync(parent);
      synced.add(parent);
    } catch (err) {
      return { made: i, failure: toStxError(err, 'syncing the directory of', entries[i]?.name ?? parent) };
    }
  }
  return { made: parents.length, failure };
}

/**
 * One MKDIR without its sync: creates `name` (and its parents), then sets its mode and mtime;
 * returns the parent directory to sync, or null when nothing changed (append-only, existing).
 */
function makeDirectoryUnsynced(outDir: string, name: string, options: DirectoryOptions): string | null {
  const dir = parentsInside(outDir, name.split('/'));
  let st = lstatOrNullSync(dir, name);
  if (st === null) {
    try {
      mkdirSync(dir, { mode: NAME_DIR_MODE });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', name);
    }
    st = lstatOrNullSync(dir, name);
  } else if (options.keepExisting && st.isDirectory()) {
    return null;
  }
  if (st === null || !st.isDirectory()) throw new UploadError('EXISTS', `"${name}" exists and is not a directory`);
  try {
    // The path was just seen to be a directory, not a link; chmod and utimes follow nothing else.
    chmodSync(dir, options.mode);
    utimesSync(dir, new Date(), new Date(options.mtime));
  } catch (err) {
    throw toStxError(err, 'setting mode and mtime of', name);
  }
  return path.dirname(dir);
}

/** SYMLINK: creates the link `name` → `target`, replacing a file or link there atomically. */
export async function makeLink(outDir: string, name: string, target: string, options: LinkOptions): Promise<void> {
  const file = parentsInside(outDir, name.split('/'));
  const st = await lstatOrNull(file, name);
  if (st !== null) {
    if (st.isDirectory()) throw new UploadError('EXISTS', `"${name}" exists and is a directory`);
    if (options.noClobber) {
      const same = st.isSymbolicLink() && (await readlink(file).catch(() => null)) === target;
      if (same) return;
      throw new UploadError('EXISTS', `"${name}" already exists`);
    }
  }
  const temporary = path.join(path.dirname(file), `.stx-link-${randomBytes(8).toString('hex')}`);
  try {
    await symlink(target, temporary);
    await lutimes(temporary, new Date(), new Date(options.mtime)).catch(() => undefined);
    if (options.noClobber && (await lstatOrNull(file, name)) !== null) throw new UploadError('EXISTS', `"${name}" appeared meanwhile`);
    await rename(temporary, file);
    await fsyncDir(path.dirname(file));
  } catch (err) {
    await unlink(temporary).catch(() => undefined);
    if (err instanceof UploadError) throw err;
    if (errnoOf(err) === 'EISDIR' || errnoOf(err) === 'ENOTDIR') throw new UploadError('EXISTS', `"${name}" exists and is a directory`);
    throw toStxError(err, 'creating link', name);
  }
}
