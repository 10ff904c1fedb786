// Names as paths under the output directory (§9.3): the local backend never follows a symbolic
// link below the output directory, checks a name without creating anything (OPEN), and creates
// its missing directories only when the file is published, removing again the ones it created
// if the publish fails. Names were validated by the policy (recv/names.ts: at most
// MAX_NAME_COMPONENTS components); this only turns them into paths, refusing what is in the way.
//
// Cost (§9.3, issue 14 item 5): the existing part of a name's parent is checked with one open()
// and one readlink() of /proc/self/fd (the kernel's own resolution of that directory; it names
// the directory the name would be created in only if no component was a link), so a check walks
// the name once, not once per component from the root. Where /proc is missing, or the parent does
// not exist yet, one lstat() per component (at most MAX_NAME_COMPONENTS).

import { closeSync, constants, lstatSync, mkdirSync, openSync, readlinkSync, rmdirSync } from 'node:fs';
import { lstat, realpath } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../../proto/errors.js';
import { NAME_DIR_MODE } from './config.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';

/** Linux PATH_MAX, counting the terminating NUL: a full path must be shorter. */
export const MAX_PATH_BYTES = 4096;

/** What path checks cost, for tests and logs: filesystem calls made, directories created and removed. */
export interface PathCounters {
  lookups: number;
  created: number;
  removed: number;
}

export function newPathCounters(): PathCounters {
  return { lookups: 0, created: 0, removed: 0 };
}

/** A name checked against the disk: its path, and what is published there now (null: nothing). */
export interface CheckedName {
  readonly finalPath: string;
  readonly existing: { readonly size: number; readonly mtimeMs: number } | null;
}

/** A name whose parents exist now; `created` lists those this call made, outermost first. */
export interface PreparedPath {
  readonly finalPath: string;
  readonly created: readonly string[];
}

function refuse(reason: string): never {
  throw new UploadError('BAD_NAME', reason);
}

/** The first `count` components, as shown in messages (built only when a message needs it). */
function shownPrefix(components: readonly string[], count: number): string {
  return components.slice(0, count).join('/');
}

/** The absolute final path, refused if the OS could not take it (PATH_MAX). */
function finalPathOf(outDir: string, components: readonly string[]): string {
  if (components.length === 0) refuse('empty name');
  const full = path.join(path.resolve(outDir), ...components);
  if (Buffer.byteLength(full, 'utf8') >= MAX_PATH_BYTES) {
    refuse(`name too long for this server: with its output directory the path would exceed ${MAX_PATH_BYTES - 1} bytes`);
  }
  return full;
}

// Each check is a system call on metadata (open, readlink, lstat, mkdir, rmdir), made
// synchronously by whichever thread asks: the event loop for an OPEN's publish and checks, the
// publishing thread (put-thread.ts) for PUTs. On a local disk such a call takes ~1 µs; sent to
// libuv's thread pool it cost ~20–30 µs of CPU (the wake-ups of the pool thread and of the event
// loop), more than the call itself (DESIGN.md "Many clients at once"). nginx makes its open() and
// stat() calls on its event loop for the same reason.

/**
 * The fast check of an existing parent directory: open it (O_DIRECTORY) and ask the kernel where
 * it resolved to. True: `dir` is a real directory reached through no link below `outDir`. False:
 * it does not exist (or /proc is unavailable), so walk component by component. BAD_NAME when a
 * link or a non-directory is in the way.
 */
function parentResolvesTo(realOutDir: string, dir: string, shown: string, counters: PathCounters): boolean {
  if (dir === realOutDir) return true;
  let fd: number;
  try {
    counters.lookups++;
    fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return false;
    if (errno === 'ENOTDIR' || errno === 'ELOOP') refuse(`a link or a non-directory is on the path of "${shown}"`);
    throw toStxError(err, 'checking', shown);
  }
  try {
    counters.lookups++;
    let resolved: string;
    try {
      resolved = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return false;
    }
    if (resolved !== dir) refuse(`a symbolic link is on the path of "${shown}"`);
    return true;
  } finally {
    try {
      closeSync(fd);
    } catch {
      // A directory opened only to look at it.
    }
  }
}

function directoryState(dir: string, components: readonly string[], count: number, counters: PathCounters): 'exists' | 'missing' {
  try {
    counters.lookups++;
    const st = lstatSync(dir);
    if (st.isSymbolicLink()) refuse(`"${shownPrefix(components, count)}" is a symbolic link`);
    if (!st.isDirectory()) refuse(`"${shownPrefix(components, count)}" exists and is not a directory`);
    return 'exists';
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'missing';
    throw toStxError(err, 'checking', shownPrefix(components, count));
  }
}

/**
 * Walks the parents of `components` one at a time, refusing a link or a non-directory, and with
 * `create` makes the missing ones (mode NAME_DIR_MODE). Returns the directories it created.
 * Without `create` it stops at the first missing one: nothing below it exists.
 */
function walkParents(outDir: string, components: readonly string[], create: boolean, counters: PathCounters): { created: string[]; missing: boolean } {
  const created: string[] = [];
  let current = path.resolve(outDir);
  let missing = false;
  for (let i = 0; i < components.length - 1; i++) {
    current = path.join(current, components[i] ?? refuse('empty name'));
    if (!missing) {
      if (directoryState(current, components, i + 1, counters) === 'exists') continue;
      missing = true;
    }
    if (!create) break;
    try {
      counters.lookups++;
      mkdirSync(current, { mode: NAME_DIR_MODE });
      counters.created++;
      created.push(current);
    } catch (err) {
      // Lost a race with another creator: look at what is there now.
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', shownPrefix(components, i + 1));
      if (directoryState(current, components, i + 1, counters) !== 'exists') {
        refuse(`"${shownPrefix(components, i + 1)}" keeps changing while being created`);
      }
    }
  }
  return { created, missing };
}

/** The final component: absent, or a regular file (BAD_NAME for a link, a directory, anything else). */
function finalState(finalPath: string, shown: string, counters: PathCounters): CheckedName['existing'] {
  try {
    counters.lookups++;
    const st = lstatSync(finalPath);
    if (st.isSymbolicLink()) refuse(`"${shown}" is a symbolic link`);
    if (!st.isFile()) refuse(`"${shown}" exists and is not a regular file`);
    return { size: st.size, mtimeMs: st.mtimeMs };
  } catch (err) {
    const errno = errnoOf(err);
    if (errno === 'ENOENT') return null;
    if (errno === 'ENOTDIR' || errno === 'ELOOP') refuse(`a link or a non-directory is on the path of "${shown}"`);
    throw toStxError(err, 'checking', shown);
  }
}

/**
 * Checks `components` under `outDir` (whose real path is `realOutDir`) without creating anything:
 * BAD_NAME if a link or a non-directory is on the path or the name is a link or not a regular file.
 */
export function checkName(outDir: string, realOutDir: string, components: readonly string[], counters = newPathCounters()): CheckedName {
  const finalPath = finalPathOf(outDir, components);
  const shown = components.join('/');
  const parent = path.join(realOutDir, ...components.slice(0, -1));
  // A missing parent: nothing is published under it.
  if (!parentResolvesTo(realOutDir, parent, shown, counters) && walkParents(outDir, components, false, counters).missing) {
    return { finalPath, existing: null };
  }
  return { finalPath, existing: finalState(finalPath, shown, counters) };
}

/**
 * Creates the missing parent directories of `components` under `outDir`, refusing (BAD_NAME) a
 * link or a non-directory on the path, and a link, directory or special file at the name.
 * Returns the final path and the directories created (for removeCreated).
 *
 * `checked`: parent directories found real (no link) by an earlier call of the same batch, which
 * are not checked again (the batch's files are published within moments, one after another, by
 * one thread; a check is a look, not a lock, for a single file too). `absent`: the caller knows
 * the name is absent (a listing of its directory just now, put-thread.ts), so the final component
 * is not looked at.
 */
export function prepareParents(
  outDir: string,
  realOutDir: string,
  components: readonly string[],
  counters = newPathCounters(),
  checked = new Set<string>(),
  absent = false,
): PreparedPath {
  const finalPath = finalPathOf(outDir, components);
  const shown = components.join('/');
  const parent = path.join(realOutDir, ...components.slice(0, -1));
  const created = checked.has(parent) || parentResolvesTo(realOutDir, parent, shown, counters) ? [] : walkParents(outDir, components, true, counters).created;
  checked.add(parent);
  if (absent) return { finalPath, created };
  try {
    finalState(finalPath, shown, counters);
  } catch (err) {
    removeCreated(created, counters);
    throw err;
  }
  return { finalPath, created };
}

/** Removes directories a failed publish created, innermost first, as long as they are empty. */
export function removeCreated(created: readonly string[], counters = newPathCounters()): void {
  for (let i = created.length - 1; i >= 0; i--) {
    const dir = created[i];
    if (dir === undefined) continue;
    try {
      counters.lookups++;
      rmdirSync(dir);
      counters.removed++;
    } catch {
      return; // not empty (another upload went in meanwhile) or gone: leave it and its parents
    }
  }
}

/**
 * prepareParents for an output directory given as is (tests): the directories are created, and
 * the final path returned.
 */
export async function resolveInside(outDir: string, components: readonly string[]): Promise<string> {
  const real = await realpath(outDir);
  return prepareParents(real, real, components).finalPath;
}

/**
 * Like resolveInside, for a directory or a link at `components` (MKDIR, SYMLINK, §9.8): creates
 * the missing parents (refusing links on the way) and returns the final path, whatever is there.
 */
export function parentsInside(outDir: string, components: readonly string[], counters = newPathCounters()): string {
  const finalPath = finalPathOf(outDir, components);
  // MKDIR and SYMLINK ask for their parents (§9.8): made here, at most MAX_NAME_COMPONENTS of them.
  walkParents(outDir, components, true, counters);
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

/** The size in bytes a stampOf() names; NaN for what is no stamp. */
export function sizeOfStamp(stamp: string): number {
  const size = stamp.split(':')[2];
  return size === undefined || !/^[0-9]+$/.test(size) ? NaN : Number(size);
}

/**
 * Nanoseconds to the nearest millisecond: utimes() takes seconds as a double, so a published
 * mtime of …123 ms reads back as …122.9999 ms; rounding gives back what was set.
 */
export function msOf(ns: bigint): number {
  return Number((ns + 500_000n) / 1_000_000n);
}
