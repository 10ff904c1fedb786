// One stx-recv per output directory: OUT/.stx/lock holds the PID of the daemon that serves it.
// Two daemons on one directory would each trust their own in-memory upload locks and resume
// state, and corrupt each other's partial files.
//
// Node.js has no flock(2), so this is a PID file: created atomically (written to a temporary
// file, then link(2)ed into place, which fails if the lock exists, so a reader never sees it
// half written; where the filesystem has no hard links, created with O_CREAT|O_EXCL instead); a
// lock whose PID is not alive (kill(pid, 0) says ESRCH) is stale and taken over.
// Residual races, accepted because the lock guards against an operator's mistake, not a hostile
// peer: (1) a stale lock whose PID has been reused looks held where /proc cannot tell whether
// that process is an stx-recv (the message names the PID and the file to remove); (2) two
// daemons started within the same few microseconds on a directory whose previous daemon died
// may both take the stale lock over: each moves "the" lock aside before creating its own, and
// the second can move the first's new lock, which it then notices (the PID it moved is alive),
// puts back and gives up; only a third interleaving within that window slips through.
import { randomBytes } from 'node:crypto';
import { readFileSync, unlinkSync } from 'node:fs';
import { link, open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { RESERVED_DIR_NAME } from './config.js';
import { ensurePrivateDir } from '../storage/local/fs-util.js';
import { errnoOf } from '../proto/errors.js';
import { StartupError } from './startup-error.js';

const LOCK_FILE_NAME = 'lock';

/** Attempts at creating the lock while stale locks are being cleared (each attempt is a few syscalls). */
const LOCK_ATTEMPTS = 4;

export interface InstanceLock {
  readonly file: string;
  /** Removes the lock if it is still ours. Synchronous, so it can run in an 'exit' handler. */
  release(): void;
}

/** Takes OUT/.stx/lock for this process or throws OUT_LOCKED naming the holder. */
export async function acquireInstanceLock(outDir: string): Promise<InstanceLock> {
  const dir = path.join(outDir, RESERVED_DIR_NAME);
  await ensureReservedDir(dir);
  const file = path.join(dir, LOCK_FILE_NAME);
  const mine = `${process.pid}\n`;
  const tmp = path.join(dir, `.${LOCK_FILE_NAME}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(mine, 'ascii');
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    for (let attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
      try {
        await createLock(tmp, file, mine);
        return {
          file,
          release() {
            try {
              if (readPidSync(file) === process.pid) unlinkSync(file);
            } catch {
              // Already gone, or .stx removed under us: nothing to release.
            }
          },
        };
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
      }
      const holder = await readPid(file);
      if (holder === undefined) continue; // removed meanwhile: try again
      if (isAlive(holder)) throw held(holder, file, outDir);
      await moveStaleAside(file, holder, outDir);
    }
    throw new StartupError('OUT_LOCKED', `${file}: could not take the lock after ${LOCK_ATTEMPTS} attempts (other daemons starting at the same time?); try again`);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** Puts the lock file in place with our PID; EEXIST if there is one. */
async function createLock(tmp: string, file: string, content: string): Promise<void> {
  try {
    await link(tmp, file);
  } catch (err) {
    const code = errnoOf(err);
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
    // No hard links here (FAT, some FUSE filesystems): exclusive create, then write.
    const fh = await open(file, 'wx', 0o644);
    try {
      await fh.writeFile(content, 'ascii');
    } finally {
      await fh.close();
    }
  }
}

function ensureReservedDir(dir: string): Promise<void> {
  return ensurePrivateDir(dir, () => new StartupError('OUT_UNUSABLE', `${dir} is not a directory (stx-recv keeps its state there and will not follow a link); move it away`));
}

/** Removes a lock whose holder is dead, unless someone else replaced it meanwhile. */
async function moveStaleAside(file: string, stalePid: number, outDir: string): Promise<void> {
  const aside = `${file}.stale.${process.pid}.${randomBytes(6).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return; // another starter moved it first
    throw err;
  }
  const moved = await readPid(aside);
  if (moved !== undefined && moved !== stalePid && isAlive(moved)) {
    // We moved a live daemon's fresh lock: put it back and give way.
    await link(aside, file).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
    throw held(moved, file, outDir);
  }
  await unlink(aside).catch(() => undefined);
}

function held(pid: number, file: string, outDir: string): StartupError {
  return new StartupError(
    'OUT_LOCKED',
    `another stx-recv (PID ${pid}) is already serving ${outDir} (lock ${file}); stop it first, or give this one another --out. If no such process is an stx-recv, remove ${file}`,
  );
}

function parsePid(text: string): number | undefined {
  const m = /^(\d{1,10})\n?$/.exec(text);
  const pid = Number(m?.[1]);
  return m === null || !Number.isSafeInteger(pid) || pid <= 0 ? undefined : pid;
}

/** The PID in a lock file; undefined if the file is gone. A file with no valid PID counts as stale (PID 0 is never alive). */
async function readPid(file: string): Promise<number | undefined> {
  try {
    return parsePid(await readFile(file, 'ascii')) ?? 0;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
}

function readPidSync(file: string): number | undefined {
  return parsePid(readFileSync(file, 'ascii'));
}

/**
 * Whether the lock's PID is a running stx-recv other than us. Our own PID in a lock we have not
 * taken is stale: a container restarts its daemon under the same small PID. Where /proc shows
 * the command line (Linux), a live process that is not stx-recv is a reused PID, so stale too.
 */
function isAlive(pid: number): boolean {
  if (pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (errnoOf(err) !== 'EPERM') return false; // ESRCH: no such process
  }
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return true; // no /proc here, or not ours to read: trust kill(pid, 0)
  }
  return /stx-recv|recv[/\\]cli\.js/.test(cmdline);
}
