// The order and walk of a listing (spec/PROTOCOL.md §9.10): the published regular files and
// directories under a stored prefix (a directory before what it holds), depth first, each directory's entries sorted, which is the order of the names'
// components compared one by one as UTF-8 bytes. Resuming after a name (`after`) skips whole
// directories that lie before it without reading them, so a listing of 100,000 files in slices of
// MAX_LIST_ENTRIES reads each directory about once per slice that passes through it, and holds
// one directory's entries per level of depth, never the whole tree.
import type { DirEntry } from '../storage/backend.js';

/** What the walk needs of the store. */
export interface Directories {
  readDirectory(dir: readonly string[]): Promise<DirEntry[] | null>;
}

/** A file or directory the walk found: its stored components and its entry. */
export interface Found {
  readonly path: readonly string[];
  readonly entry: DirEntry;
}

/** Listing order of two names given as components (§9.10): component by component, UTF-8 bytes; a prefix first. */
export function compareNames(a: readonly string[], b: readonly string[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = Buffer.compare(Buffer.from(a[i] ?? '', 'utf8'), Buffer.from(b[i] ?? '', 'utf8'));
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

function isPrefix(prefix: readonly string[], of: readonly string[]): boolean {
  return prefix.length <= of.length && prefix.every((c, i) => of[i] === c);
}

/**
 * The files and directories at or under stored `prefix` ([] for all; the top itself is not
 * listed, a directory `prefix` is) in listing order, only those after `after` when given. Stops
 * reading when `stopped()` turns true.
 */
export async function* walkFiles(store: Directories, prefix: readonly string[], after: readonly string[] | undefined, stopped: () => boolean): AsyncGenerator<Found> {
  if (prefix.length > 0) {
    // The prefix may name a file itself, or a directory to walk.
    const parent = prefix.slice(0, -1);
    const last = prefix[prefix.length - 1];
    const entry = (await store.readDirectory(parent))?.find((e) => e.name === last);
    if (entry === undefined) return;
    if (after === undefined || compareNames(prefix, after) > 0) yield { path: prefix, entry };
    if (entry.kind === 'file') return;
  }
  yield* walkDirectory(store, prefix, after, stopped);
}

async function* walkDirectory(store: Directories, dir: readonly string[], after: readonly string[] | undefined, stopped: () => boolean): AsyncGenerator<Found> {
  if (stopped()) return;
  const entries = await store.readDirectory(dir);
  if (entries === null) return;
  const sorted = entries
    .map((entry) => ({ entry, key: Buffer.from(entry.name, 'utf8') }))
    .sort((x, y) => Buffer.compare(x.key, y.key));
  for (const { entry } of sorted) {
    if (stopped()) return;
    const path = [...dir, entry.name];
    // Everything at or under a path before `after` (and not on the way to it) was listed already.
    if (after !== undefined && compareNames(path, after) <= 0 && !(entry.kind === 'directory' && isPrefix(path, after))) continue;
    if (after === undefined || compareNames(path, after) > 0) yield { path, entry };
    if (entry.kind === 'directory') yield* walkDirectory(store, path, after, stopped);
  }
}
