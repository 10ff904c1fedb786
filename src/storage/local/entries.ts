// Directories and symbolic links under the output directory (spec/PROTOCOL.md §9.8), for MKDIR
// and SYMLINK. Names and link targets were checked by the policy (recv/names.ts, recv/link-target.ts);
// here no link is followed: parents are checked one component at a time (paths.ts), the final
// component with lstat, and a link replaces a file by rename, never by writing through it.
import { randomBytes } from 'node:crypto';
import { chmod, lstat, lutimes, mkdir, readlink, rename, symlink, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { NAME_DIR_MODE } from './config.js';
import { fsyncDir } from './fs-util.js';
import { parentsInside } from './paths.js';

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

async function lstatOrNull(file: string, shown: string): Promise<import('node:fs').Stats | null> {
  try {
    return await lstat(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw toStxError(err, 'checking', shown);
  }
}

/** MKDIR: creates `name` (and its parents), then sets its mode and mtime. */
export async function makeDirectory(outDir: string, name: string, options: DirectoryOptions): Promise<void> {
  const dir = await parentsInside(outDir, name.split('/'));
  let st = await lstatOrNull(dir, name);
  if (st === null) {
    try {
      await mkdir(dir, { mode: NAME_DIR_MODE });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', name);
    }
    st = await lstatOrNull(dir, name);
  } else if (options.keepExisting && st.isDirectory()) {
    return;
  }
  if (st === null || !st.isDirectory()) throw new UploadError('EXISTS', `"${name}" exists and is not a directory`);
  try {
    // The path was just seen to be a directory, not a link; chmod and utimes follow nothing else.
    await chmod(dir, options.mode);
    await utimes(dir, new Date(), new Date(options.mtime));
    await fsyncDir(path.dirname(dir));
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
