// Directories and symbolic links under the output directory (spec/PROTOCOL.md §9.8), for MKDIR
// and SYMLINK. Names and link targets were checked by the policy (recv/names.ts, recv/link-target.ts);
// here no link is followed: parents are checked one component at a time (paths.ts), the final
// component with lstat, and a link replaces a file by rename, never by writing through it.
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, utimesSync, type Stats } from 'node:fs';
import { lstat, lutimes, readlink, rename, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { NAME_DIR_MODE } from './config.js';
import { fsyncDir, fsyncDirSync } from './fs-util.js';
import { parentsInside, parentsInsideSync } from './paths.js';

export interface DirectoryOptions {
  /** Permission bits to apply (umask already taken off). */
  readonly mode: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /** Append-only (§9.5): an existing directory is left as it is. */
  readonly keepExisting: boolean;
}

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

/**
 * MKDIR: creates `name` (and its parents), then sets its mode and mtime, with synchronous calls:
 * it runs on the publishing thread (put-pool.ts makeDirectory), in one message, where the same
 * steps on the main thread took 8 thread-pool trips each (~2.2 ms per MKDIR on a loaded 2-core
 * machine, 100 of them at the end of a tree of 10,000 files, each awaited by the client).
 */
export function makeDirectorySync(outDir: string, name: string, options: DirectoryOptions): void {
  const dir = parentsInsideSync(outDir, name.split('/'));
  let st = lstatOrNullSync(dir, name);
  if (st === null) {
    try {
      mkdirSync(dir, { mode: NAME_DIR_MODE });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', name);
    }
    st = lstatOrNullSync(dir, name);
  } else if (options.keepExisting && st.isDirectory()) {
    return;
  }
  if (st === null || !st.isDirectory()) throw new UploadError('EXISTS', `"${name}" exists and is not a directory`);
  try {
    // The path was just seen to be a directory, not a link; chmod and utimes follow nothing else.
    chmodSync(dir, options.mode);
    utimesSync(dir, new Date(), new Date(options.mtime));
    fsyncDirSync(path.dirname(dir));
  } catch (err) {
    throw toStxError(err, 'setting mode and mtime of', name);
  }
}

/** SYMLINK: creates the link `name` → `target`, replacing a file or link there atomically. */
export async function makeLink(outDir: string, name: string, target: string, options: LinkOptions): Promise<void> {
  const file = await parentsInside(outDir, name.split('/'));
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
