// Where stx-get puts what it downloads (spec/PROTOCOL.md §9.9): files under one local directory
// (--to), never outside it whatever names the server sends, each received into a partial file in
// LOCAL/.stx-partial/ and published under its final name only once its SHA-256 checked out (fsync,
// rename, directory fsync). A partial keeps a small record of the remote version it holds a
// prefix of, so that a later run resumes it (GET with that size and mtime) or starts over.
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants, readFileSync } from 'node:fs';
import { lstat, mkdir, open, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UploadError, errnoOf } from '../proto/errors.js';
import { hashPrefix, readAtFd } from '../transfer/file-hash.js';
import { toStxError } from '../transfer/io-error.js';

/** The directory under LOCAL that holds partial downloads; a name whose first component is this is refused. */
export const PARTIAL_DIR = '.stx-partial';

/** The remote version a partial holds a prefix of (GET's size and mtime, §9.9). */
export interface PartialVersion {
  readonly size: number;
  readonly mtime: number;
}

interface PartialRecord extends PartialVersion {
  readonly version: 1;
  /** The remote name, so that two names never share a partial. */
  readonly name: string;
}

/**
 * The process's umask, which a downloaded file's mode is given less of (as a server does, §4),
 * read from /proc: process.umask() without an argument sets it to read it. 0o022 without /proc.
 */
function readUmask(): number {
  try {
    const line = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (line?.[1] !== undefined) return parseInt(line[1], 8);
  } catch {
    // Not Linux, or no /proc: the usual default.
  }
  return 0o022;
}
const UMASK = readUmask();

// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;

function refuse(name: string, reason: string): never {
  throw new UploadError('BAD_NAME', `refusing the name "${name}" from the server: ${reason}`);
}

/**
 * The components of a relative local name, or BAD_NAME where it would land outside the local
 * directory (absolute, `..`, `.`, empty components, a backslash, NUL and other controls) or in
 * the partial directory. The server's own rules (§9.3) refuse all of these already; a client
 * does not rely on a server it only trusts for its key.
 */
export function localComponents(name: string): string[] {
  if (name === '') refuse(name, 'it is empty');
  if (name.startsWith('/')) refuse(name, 'it is absolute');
  if (name.includes('\\')) refuse(name, 'it contains a backslash');
  if (CONTROL.test(name)) refuse(name, 'it contains a control character');
  const components = name.split('/');
  for (const c of components) {
    if (c === '' || c === '.' || c === '..') refuse(name, `it has a "${c}" component`);
  }
  if (components[0]?.toLowerCase() === PARTIAL_DIR) refuse(name, `${PARTIAL_DIR} is where partial downloads live`);
  return components;
}

/** One download's local side: its partial file and record, and its final path. */
export interface LocalTarget {
  /** The name under the local directory, '/'-separated. */
  readonly name: string;
  readonly finalPath: string;
  readonly partPath: string;
  readonly recordPath: string;
}

export class LocalTree {
  readonly root: string;
  readonly #partials: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.#partials = path.join(this.root, PARTIAL_DIR);
  }

  /**
   * Checks `name` and creates its missing parent directories one at a time, refusing (BAD_NAME)
   * a symbolic link or a non-directory on the way, or anything but a regular file at the name.
   */
  async target(name: string): Promise<LocalTarget> {
    const components = localComponents(name);
    await mkdir(this.root, { recursive: true }).catch((err: unknown) => {
      throw toStxError(err, 'creating', this.root);
    });
    let dir = this.root;
    for (const c of components.slice(0, -1)) {
      dir = path.join(dir, c);
      await ensureDirectory(dir, name);
    }
    const finalPath = path.join(dir, components[components.length - 1] ?? '');
    const st = await lstat(finalPath).catch((err: unknown) => {
      if (errnoOf(err) === 'ENOENT') return null;
      throw toStxError(err, 'checking', finalPath);
    });
    if (st !== null && !st.isFile()) refuse(name, `${finalPath} exists and is not a regular file (a link or a directory is never written through)`);
    await ensureDirectory(this.#partials, PARTIAL_DIR, 0o700);
    const id = createHash('sha256').update(name).digest('hex');
    return { name, finalPath, partPath: path.join(this.#partials, `${id}.part`), recordPath: path.join(this.#partials, `${id}.json`) };
  }

  /** The version a partial of `target` holds a prefix of, and how many bytes; null if there is none to resume. */
  async resumable(target: LocalTarget, remoteName: string): Promise<{ readonly version: PartialVersion; readonly bytes: number } | null> {
    const record = await readFile(target.recordPath, 'utf8').then(
      (text) => parseRecord(text),
      () => null,
    );
    if (record?.name !== remoteName) return null;
    const st = await lstat(target.partPath).catch(() => null);
    if (st === null || !st.isFile() || st.size > record.size) return null;
    return { version: { size: record.size, mtime: record.mtime }, bytes: st.size };
  }

  /**
   * Opens the partial for `version`, cut to `keep` bytes (0: a new one), with its record written
   * first (temporary file, rename), so a later run knows what it holds.
   */
  async openPartial(target: LocalTarget, remoteName: string, version: PartialVersion, keep: number): Promise<FileHandle> {
    const record: PartialRecord = { version: 1, name: remoteName, size: version.size, mtime: version.mtime };
    const tmp = `${target.recordPath}.tmp`;
    await writeFile(tmp, JSON.stringify(record), { mode: 0o600 });
    await rename(tmp, target.recordPath);
    const fh = await open(target.partPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    try {
      await fh.truncate(keep);
    } catch (err) {
      await fh.close();
      throw err;
    }
    return fh;
  }

  /**
   * Publishes a verified partial (§9.9): data synced, mode (less the umask) and mtime set, renamed
   * over the final name, the directory synced, the record removed.
   */
  async publish(target: LocalTarget, fh: FileHandle, mode: number, mtime: number): Promise<void> {
    await fh.datasync();
    await fh.chmod(mode & 0o777 & ~UMASK);
    await fh.utimes(new Date(), mtime / 1000);
    await fh.sync();
    await fh.close();
    // Checked again: a link put there meanwhile is replaced, never written through (rename replaces the entry).
    const st = await lstat(target.finalPath).catch(() => null);
    if (st !== null && st.isDirectory()) refuse(target.name, `${target.finalPath} became a directory`);
    await rename(target.partPath, target.finalPath);
    await syncDir(path.dirname(target.finalPath));
    await unlink(target.recordPath).catch(() => undefined);
  }

  /**
   * Whether the file at `target` already holds the remote one, byte for byte: a regular file (not
   * through a link) of `size` bytes whose SHA-256 is `sha256` — the size alone, or an mtime, is no
   * proof. If so it is given `mode` (less the umask) and `mtime`, as a download would have, and
   * nothing needs to be fetched (rsync's quick check, made with the hash).
   */
  async holdsIdentical(target: LocalTarget, size: number, sha256: Buffer, mode: number, mtime: number): Promise<boolean> {
    let fh: FileHandle;
    try {
      fh = await open(target.finalPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch {
      return false; // absent (or a link): fetch it
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size !== size) return false;
      const digest = (await hashPrefix(readAtFd(fh.fd), { hash: createHash('sha256'), length: 0 }, size)).digest();
      if (digest.length !== sha256.length || !timingSafeEqual(digest, sha256)) return false;
      const wanted = mode & 0o777 & ~UMASK;
      if ((st.mode & 0o7777) !== wanted) await fh.chmod(wanted);
      if (Math.round(st.mtimeMs) !== mtime) await fh.utimes(st.atime, mtime / 1000);
      return true;
    } catch (err) {
      throw toStxError(err, 'checking', target.finalPath);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * Creates directory `name` and its missing parents under the local directory, refusing
   * (BAD_NAME) a symbolic link or a non-directory on the way or at the name; returns its path.
   */
  async directory(name: string): Promise<string> {
    const components = localComponents(name);
    await mkdir(this.root, { recursive: true }).catch((err: unknown) => {
      throw toStxError(err, 'creating', this.root);
    });
    let dir = this.root;
    for (const c of components) {
      dir = path.join(dir, c);
      await ensureDirectory(dir, name);
    }
    return dir;
  }

  /**
   * Gives directory `dir` (from directory()) its mode (less the umask) and mtime, through a
   * descriptor opened without following a link. Called after its contents arrived: writing into a
   * directory changes its mtime, and a read-only one could not take them.
   */
  async setDirectory(dir: string, name: string, mode: number, mtime: number): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    } catch (err) {
      if (errnoOf(err) === 'ELOOP' || errnoOf(err) === 'ENOTDIR') refuse(name, `${dir} is no longer a directory`);
      throw toStxError(err, 'opening', dir);
    }
    try {
      await fh.chmod(mode & 0o777 & ~UMASK);
      await fh.utimes(new Date(), mtime / 1000);
    } catch (err) {
      throw toStxError(err, 'setting mode and mtime of', dir);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** Removes a partial that can never be published (its bytes did not verify). */
  async discard(target: LocalTarget): Promise<void> {
    await unlink(target.partPath).catch(() => undefined);
    await unlink(target.recordPath).catch(() => undefined);
  }
}

function parseRecord(text: string): PartialRecord | null {
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null) return null;
    const r = v as Record<string, unknown>;
    const { name, size, mtime } = r;
    if (r.version !== 1 || typeof name !== 'string' || !Number.isSafeInteger(size) || !Number.isSafeInteger(mtime)) return null;
    return { version: 1, name, size: Number(size), mtime: Number(mtime) };
  } catch {
    return null;
  }
}

async function ensureDirectory(dir: string, name: string, mode = 0o755): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const st = await lstat(dir).catch((err: unknown) => {
      if (errnoOf(err) === 'ENOENT') return null;
      throw toStxError(err, 'checking', dir);
    });
    if (st !== null) {
      if (st.isSymbolicLink()) refuse(name, `${dir} is a symbolic link, which could lead outside the local directory`);
      if (!st.isDirectory()) refuse(name, `${dir} exists and is not a directory`);
      return;
    }
    try {
      await mkdir(dir, { mode });
      return;
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating', dir);
    }
  }
  refuse(name, `${dir} keeps changing while being created`);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
