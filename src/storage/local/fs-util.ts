// Small filesystem helpers of the local-disk backend.

import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { chmod, lstat, mkdir, open, unlink } from 'node:fs/promises';
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

/** fsync a directory so that renames and unlinks in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
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

/** unlink that treats "already gone" as success. */
export async function unlinkIfPresent(file: string): Promise<void> {
  try {
    await unlink(file);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
}
