// Names as paths under the output directory (§9.3): the local backend creates a name's
// directories one component at a time and never follows a symbolic link. Names were validated by
// the policy (recv/names.ts); this only turns them into paths, refusing what is in the way.

import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { NAME_DIR_MODE } from './config.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';

/** Linux PATH_MAX, counting the terminating NUL: a full path must be shorter. */
const MAX_PATH_BYTES = 4096;

function refuse(reason: string): never {
  throw new UploadError('BAD_NAME', reason);
}

/** Ensures `dir` is a real directory (not a symlink), creating it if missing. */
async function ensureDirectory(dir: string, shown: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const st = await lstat(dir);
      if (st.isSymbolicLink()) refuse(`"${shown}" is a symbolic link`);
      if (!st.isDirectory()) refuse(`"${shown}" exists and is not a directory`);
      return;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw toStxError(err, 'checking', shown);
    }
    try {
      await mkdir(dir, { mode: NAME_DIR_MODE });
      return;
    } catch (err) {
      // Lost a race with another creator: look again at what is there now.
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', shown);
    }
  }
  refuse(`"${shown}" keeps changing while being created`);
}

/**
 * Creates the missing parent directories of `components` under `outDir`, one component at a
 * time, refusing (BAD_NAME) any component that is a symbolic link or not a directory, and
 * returns the absolute final path. The final path itself may be absent or a regular file; a
 * symlink, directory or special file there is BAD_NAME. `components` must come from
 * a validated name (recv/names.ts). `outDir` itself is trusted configuration and may be reached through links.
 */
export async function resolveInside(outDir: string, components: readonly string[]): Promise<string> {
  const last = components.length - 1;
  if (last < 0) refuse('empty name');
  // The OS refuses paths of PATH_MAX bytes or more: say so as a name problem, before creating anything.
  const full = path.join(path.resolve(outDir), ...components);
  if (Buffer.byteLength(full, 'utf8') >= MAX_PATH_BYTES) {
    refuse(`name too long for this server: with its output directory the path would exceed ${MAX_PATH_BYTES - 1} bytes`);
  }
  let current = path.resolve(outDir);
  for (let i = 0; i < last; i++) {
    const component = components[i];
    if (component === undefined) refuse('empty name');
    current = path.join(current, component);
    await ensureDirectory(current, components.slice(0, i + 1).join('/'));
  }
  const finalComponent = components[last];
  if (finalComponent === undefined) refuse('empty name');
  const finalPath = path.join(current, finalComponent);
  const shown = components.join('/');
  try {
    const st = await lstat(finalPath);
    if (st.isSymbolicLink()) refuse(`"${shown}" is a symbolic link`);
    if (!st.isFile()) refuse(`"${shown}" exists and is not a regular file`);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw toStxError(err, 'checking', shown);
  }
  return finalPath;
}

/**
 * The absolute path of `components` under `outDir` if every parent on the way is a real
 * directory (no symbolic link), else null; creates nothing. For reads (downloads, listings):
 * what lies on a path through a link is not a published file.
 */
export async function resolveExisting(outDir: string, components: readonly string[]): Promise<string | null> {
  let current = path.resolve(outDir);
  for (let i = 0; i < components.length - 1; i++) {
    const component = components[i];
    if (component === undefined) return null;
    current = path.join(current, component);
    try {
      const st = await lstat(current);
      if (!st.isDirectory()) return null;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return null;
      throw toStxError(err, 'checking', components.slice(0, i + 1).join('/'));
    }
  }
  const last = components[components.length - 1];
  return last === undefined ? current : path.join(current, last);
}

/** A file's version for DirEntry.stamp: device, inode, size, mtime and ctime (ns). */
export function stampOf(st: { dev: bigint; ino: bigint; size: bigint; mtimeNs: bigint; ctimeNs: bigint }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * Nanoseconds to the nearest millisecond: utimes() takes seconds as a double, so a published
 * mtime of …123 ms reads back as …122.9999 ms; rounding gives back what was set.
 */
export function msOf(ns: bigint): number {
  return Number((ns + 500_000n) / 1_000_000n);
}
