// Small filesystem helpers of the local-disk backend.

import { closeSync, constants, fsync, fsyncSync, openSync, unlinkSync } from 'node:fs';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { RESERVED_DIR_MODE } from './config.js';
import { errnoOf } from '../../transfer/io-error.js';

/**
 * Makes `dir` a directory of mode 0700 (creating it if missing) and refuses a link or a file
 * in its place with `notADirectory()`: the daemon's reserved state never follows a link.
 */
export async function ensurePrivateDir(dir: string, notADirectory: () => Error): Promise<void> {
  try {
    await mkdir(dir, { mode: RESERVED_DIR_MODE });
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  const st = await lstat(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) throw notADirectory();
  await chmod(dir, RESERVED_DIR_MODE);
}

/**
 * fsync a directory so that renames and unlinks in it survive a crash. The fsync, which waits for
 * the disk, goes to libuv's thread pool; the open and the close are made here (paths.ts says why).
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await new Promise<void>((resolve, reject) => fsync(fd, (err) => (err === null ? resolve() : reject(err))));
  } finally {
    closeSync(fd);
  }
}

/** fsyncDir with synchronous calls (for the publishing thread). */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** unlink that treats "already gone" as success; a .part can be large, so on the thread pool. */
export async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}

/** unlinkIfPresent with a synchronous call, for a small file (a record). */
export function unlinkIfPresentSync(file: string): void {
  try {
    unlinkSync(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
