// The local side of a tree upload (spec/PROTOCOL.md §9.8): the paths on the command line, walked
// depth-first as a stream of entries, one directory handle per level (memory bounded by the depth,
// never by the number of files). Nothing is followed but the command-line paths themselves: links
// inside a tree are entries (sent as links with --links, else skipped), and a link is only sent
// when its target stays inside the tree by the rule the server applies (recv/link-target.ts).
//
// Names: a PATH `a/b/dir` is sent as `dir/…` (as `scp -r` and rsync without a trailing slash);
// `a/b/dir/` (trailing slash) sends the contents of dir without `dir/`; a file is sent under its
// own name; all of it under `--to DIR` when given. A directory's entry comes after its contents,
// so that its mode and mtime are set last.
import { lstatSync, opendirSync, readlinkSync, type Dir, type Dirent, type Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** Deeper than this a tree is not followed (one open directory handle per level). */
export const MAX_DEPTH = 256;
/** Entries handed over at once by walkBatches: the most the walk gets ahead of its consumer. */
export const WALK_BATCH = 64;

interface Base {
  /** The local path. */
  readonly local: string;
  /** The remote name, '/'-separated, NFC (§9.3); '' for the contents of a trailing-slash PATH without --to. */
  readonly remote: string;
}

export type Entry =
  | (Base & { readonly kind: 'file'; readonly size: number; readonly mtime: number; readonly mode: number })
  /**
   * A regular file by its directory entry alone, not yet stat'ed (only with `statFiles: false`):
   * whoever reads it takes its size, mode and mtime from the open file, and checks again that it
   * is a regular file.
   */
  | (Base & { readonly kind: 'regular' })
  | (Base & { readonly kind: 'dir'; readonly mtime: number; readonly mode: number })
  | (Base & { readonly kind: 'link'; readonly target: string; readonly mtime: number })
  | (Base & { readonly kind: 'skip'; readonly reason: string });

export interface WalkOptions {
  /** Remote directory to put everything under (--to). */
  readonly to?: string | undefined;
  /** Send symbolic links as links (--links); otherwise they are skipped. */
  readonly links: boolean;
  /**
   * false: a regular file inside a tree (by its directory entry's type) is handed over as
   * `regular`, without an lstat: the caller opens it anyway and takes its stat then (one system
   * call and one Stats object per file fewer). Default true: every file is lstat'ed (`file`).
   */
  readonly statFiles?: boolean | undefined;
}

/** Joins remote name parts, dropping empty ones, in NFC. */
function join(...parts: string[]): string {
  return parts
    .filter((p) => p !== '')
    .join('/')
    .normalize('NFC');
}

/** Printable ASCII: a name that is NFC already (normalize() costs an ICU call per file). */
const PLAIN_ASCII = /^[\x20-\x7e]*$/;

/**
 * A directory entry's name in NFC. Appended after "/" to a remote name in NFC, it gives what
 * join() would: "/" composes with nothing, so NFC(a + "/" + b) is NFC(a) + "/" + NFC(b).
 */
function nfcName(name: string): string {
  return PLAIN_ASCII.test(name) ? name : name.normalize('NFC');
}

function messageOf(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
  return code !== '' ? code : err instanceof Error ? err.message : String(err);
}

/** Why a file of this type is not sent, or null for the types that are (files, directories, links). */
function unsendable(st: Stats): string | null {
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isBlockDevice()) return 'block device';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isFile() || st.isDirectory() || st.isSymbolicLink()) return null;
  return 'unknown file type';
}

/**
 * Whether a link in a tree may be sent: its target relative, `..` only at its start and no more of
 * them than the link is deep inside the tree (`depth`: directories between the tree's top and the
 * link), as the server demands (§9.8); null if so, else why not.
 */
export function linkOutOfTree(target: string, depth: number): string | null {
  if (target.startsWith('/')) return 'symbolic link to an absolute path';
  let up = 0;
  let descended = false;
  for (const part of target.split('/')) {
    if (part === '') return 'symbolic link target with an empty component';
    if (part === '.') continue;
    if (part === '..') {
      if (descended) return 'symbolic link target with ".." after a name';
      up++;
    } else {
      descended = true;
    }
  }
  return up > depth ? 'symbolic link pointing out of the tree' : null;
}

function fileEntry(local: string, remote: string, st: Stats): Entry {
  return { kind: 'file', local, remote, size: st.size, mtime: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
}

/**
 * One entry found inside a tree (lstat'ed, never followed). `depth`: directories between the
 * tree's top and it. Synchronous: an lstat (or readlink) of an entry of a directory just read is
 * a few µs; an asynchronous one cost the main thread 50–100 µs (a profile of 10,000 small files).
 */
function inside(local: string, remote: string, depth: number, options: WalkOptions): Entry | { dir: Stats } {
  let st: Stats;
  try {
    st = lstatSync(local);
  } catch (err) {
    return { kind: 'skip', local, remote, reason: `cannot read: ${messageOf(err)}` };
  }
  const why = unsendable(st);
  if (why !== null) return { kind: 'skip', local, remote, reason: why };
  if (st.isDirectory()) return { dir: st };
  if (st.isFile()) return fileEntry(local, remote, st);
  if (!options.links) return { kind: 'skip', local, remote, reason: 'symbolic link (send links with --links)' };
  let target: string;
  try {
    target = readlinkSync(local);
  } catch (err) {
    return { kind: 'skip', local, remote, reason: `cannot read link: ${messageOf(err)}` };
  }
  const out = linkOutOfTree(target, depth);
  if (out !== null) return { kind: 'skip', local, remote, reason: out };
  return { kind: 'link', local, remote, target: target.normalize('NFC'), mtime: Math.round(st.mtimeMs) };
}

interface Level {
  readonly dir: Dir;
  readonly local: string;
  readonly remote: string;
  /**
   * What an entry's name is appended to for its local path and its remote name: path.join(local,
   * name) and join(remote, name) without normalizing the whole path again for every entry (a
   * directory entry's name is one component, never "." or "..").
   */
  readonly localPrefix: string;
  readonly remotePrefix: string;
  readonly stats: Stats;
  /** Directories between the tree's top and this one's entries. */
  readonly depth: number;
  /** Whether this level's own MKDIR is sent (not for a trailing-slash PATH without --to). */
  readonly named: boolean;
}

/**
 * Synchronous, as the directory's reads are: an asynchronous opendir cost ~0.3 ms of CPU per
 * directory here, three times the synchronous one (100 directories of a 10,000-file tree).
 */
function openLevel(local: string, remote: string, stats: Stats, depth: number, named: boolean): Level | Entry {
  try {
    const dir = opendirSync(local, { bufferSize: 64 });
    // path.join(local, name) for any one-component name: the normalized local path, then name.
    const localPrefix = path.join(local, '_').slice(0, -1);
    return { dir, local, remote, localPrefix, remotePrefix: remote === '' ? '' : `${remote}/`, stats, depth, named };
  } catch (err) {
    return { kind: 'skip', local, remote, reason: `cannot read directory: ${messageOf(err)}` };
  }
}

/** Every entry of the trees under `paths`, as the module comment says; directories after their contents. */
export async function* walk(paths: readonly string[], options: WalkOptions): AsyncGenerator<Entry> {
  for await (const batch of walkBatches(paths, options)) yield* batch;
}

/**
 * walk()'s entries, in the same order, up to `batch` at a time: a tree of many small files costs
 * one turn of the generator per batch, not per entry.
 */
export async function* walkBatches(paths: readonly string[], options: WalkOptions, batch = WALK_BATCH): AsyncGenerator<Entry[]> {
  const to = options.to ?? '';
  const acc: Batch = { out: [], size: batch };
  for (const given of paths) {
    if (acc.out.length >= batch) {
      yield acc.out;
      acc.out = [];
    }
    let st: Stats;
    try {
      // The command-line path itself is followed (as scp and rsync do); nothing below it is.
      st = await stat(given);
    } catch (err) {
      acc.out.push({ kind: 'skip', local: given, remote: join(to, path.basename(given)), reason: `cannot read: ${messageOf(err)}` });
      continue;
    }
    const base = path.basename(path.resolve(given));
    if (!st.isDirectory()) {
      const why = unsendable(st);
      acc.out.push(why === null ? fileEntry(given, join(to, base), st) : { kind: 'skip', local: given, remote: join(to, base), reason: why });
      continue;
    }
    const contents = given.endsWith('/') || given.endsWith(path.sep);
    const top = openLevel(given, contents ? join(to) : join(to, base), st, 0, !contents || to !== '');
    if ('kind' in top) {
      acc.out.push(top);
      continue;
    }
    yield* walkTree(top, options, acc);
  }
  if (acc.out.length > 0) yield acc.out;
}

/** The entries found and not yet handed over, and how many go at once. */
interface Batch {
  out: Entry[];
  readonly size: number;
}

/**
 * The entries under `top`, added to `acc.out`, which is handed over (and started anew) whenever
 * it holds `acc.size` entries. What is left at the end stays in `acc.out`.
 */
function* walkTree(top: Level, options: WalkOptions, acc: Batch): Generator<Entry[]> {
  const stack: Level[] = [top];
  try {
    while (stack.length > 0) {
      if (acc.out.length >= acc.size) {
        yield acc.out;
        acc.out = [];
      }
      const level = stack[stack.length - 1];
      if (level === undefined) break;
      let next: Dirent | null;
      try {
        // Synchronous: the handle reads the directory's entries 64 at a time (openLevel's bufferSize).
        next = level.dir.readSync();
      } catch (err) {
        acc.out.push({ kind: 'skip', local: level.local, remote: level.remote, reason: `cannot read directory: ${messageOf(err)}` });
        next = null;
      }
      if (next === null) {
        stack.pop();
        closeLevel(level);
        if (level.named) acc.out.push({ kind: 'dir', local: level.local, remote: level.remote, mtime: Math.round(level.stats.mtimeMs), mode: level.stats.mode & 0o7777 });
        continue;
      }
      const name = next.name;
      const local = level.localPrefix + name;
      const remote = level.remotePrefix + nfcName(name);
      if (options.statFiles === false && next.isFile()) {
        acc.out.push({ kind: 'regular', local, remote });
        continue;
      }
      const found = inside(local, remote, level.depth, options);
      if (!('dir' in found)) {
        acc.out.push(found);
        continue;
      }
      if (stack.length >= MAX_DEPTH) {
        acc.out.push({ kind: 'skip', local, remote, reason: `deeper than ${MAX_DEPTH} levels` });
        continue;
      }
      const child = openLevel(local, remote, found.dir, level.depth + 1, true);
      if ('kind' in child) acc.out.push(child);
      else stack.push(child);
    }
  } finally {
    // A walk stopped early (a fatal error) closes what it still holds.
    for (const level of stack) closeLevel(level);
  }
}

function closeLevel(level: Level): void {
  try {
    level.dir.closeSync();
  } catch {
    // Closed already, or a failed read left nothing to close.
  }
}
