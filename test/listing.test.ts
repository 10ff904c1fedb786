// The listing walk (spec §9.10, src/recv/listing.ts) over the local backend: files and directories
// (empty ones too, a directory before its contents) in listing order (component by component,
// UTF-8 bytes), a file or a directory as the prefix, and slices resumed after any name giving
// exactly the rest while skipping, unread, the directories before it.
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { compareNames, walkFiles } from '../src/recv/listing.js';
import { LocalBackend } from '../src/storage/local/backend.js';
import { tempDir } from './support/procs.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let backend: LocalBackend;
/** Every file and directory written, as stored components. */
const names: string[][] = [];
/** Directories read, by the walks since the last reset. */
let reads = 0;
const counted = {
  readDirectory: (dir: readonly string[]) => {
    reads++;
    return backend.readDirectory(dir);
  },
};

async function all(prefix: string[], afterName?: string[]): Promise<string[]> {
  const out: string[] = [];
  for await (const f of walkFiles(counted, prefix, afterName, () => false)) out.push(f.path.join('/'));
  return out;
}

before(async () => {
  tmp = await tempDir('stx-listing-');
  backend = new LocalBackend(path.join(tmp.dir, 'out'));
  await backend.init();
  // 12 directories of 25 files, with names whose order differs between plain strings and components.
  for (let d = 0; d < 12; d++) {
    for (let f = 0; f < 25; f++) {
      const dir = d % 3 === 0 ? [`d${d}`, 'sub'] : [`d${d}`];
      const name = [...dir, f % 5 === 0 ? `f${f}-x` : f % 5 === 1 ? `f${f}.x` : `f${f}`];
      if (f === 0) for (let i = 1; i <= dir.length; i++) names.push(dir.slice(0, i));
      await mkdir(path.join(backend.outDir, ...dir), { recursive: true });
      await writeFile(path.join(backend.outDir, ...name), String(f));
      names.push(name);
    }
  }
  await writeFile(path.join(backend.outDir, 'd1-'), 'a file beside d1');
  names.push(['d1-']);
  await mkdir(path.join(backend.outDir, 'empty', 'deeper'), { recursive: true });
  names.push(['empty'], ['empty', 'deeper']);
  // Not published files: a link and the reserved directory's partials.
  await symlink('/etc', path.join(backend.outDir, 'link'));
  await writeFile(path.join(backend.outDir, '.stx', 'partials', `${'0'.repeat(64)}.part`), 'partial');
});
after(async () => {
  await tmp.cleanup();
});

it('lists every published file and directory once, in listing order, and nothing else', async () => {
  const expected = [...names].sort(compareNames).map((n) => n.join('/'));
  reads = 0;
  assert.deepEqual(await all([]), expected);
  assert.equal(expected.indexOf('d1/f9') < expected.indexOf('d1-'), true, 'd1/… before d1- (component order)');
  assert.equal(expected.indexOf('d3') + 1, expected.indexOf('d3/sub'), 'a directory comes right before its contents');
  assert.ok(expected.includes('empty/deeper'), 'empty directories are listed');
  assert.equal(reads, 1 + 12 + 4 + 2, 'each directory read once');
});

it('a prefix names a directory (its files) or a file (itself), and nothing for an absent one', async () => {
  assert.equal((await all(['d3'])).length, 1 + 1 + 25, 'the directory itself, d3/sub and its files');
  assert.deepEqual(await all(['empty']), ['empty', 'empty/deeper']);
  assert.deepEqual(await all([], ['empty']), ['empty/deeper'], 'after a directory: what it holds, not itself');
  assert.deepEqual(await all(['d1', 'f2']), ['d1/f2']);
  assert.deepEqual(await all(['nope']), []);
  assert.deepEqual(await all(['link']), []);
});

it('resumes after any name with exactly the rest, skipping the directories before it unread', async () => {
  const expected = [...names].sort(compareNames).map((n) => n.join('/'));
  for (let i = 0; i < expected.length; i += 37) {
    const cursor = expected[i]?.split('/') ?? [];
    reads = 0;
    assert.deepEqual(await all([], cursor), expected.slice(i + 1), `after ${cursor.join('/')}`);
    // The top, the directories on the way to the cursor, and those after it: never those before.
    const dirsAfter = new Set(expected.slice(i + 1).map((n) => n.split('/').slice(0, -1).join('/')).filter((d) => d !== '')).size;
    const upper = 1 + cursor.length + dirsAfter + 4;
    assert.ok(reads <= upper, `${reads} directories read after ${cursor.join('/')}, at most ${upper}`);
  }
});
