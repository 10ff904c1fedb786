// stx-send's reading of small files (src/send/put-pipeline.ts SmallFiles): files read one after
// another lie side by side in one slab, so that a pack's bytes go as one piece (adjacentRuns); a
// slab is used again only once every file read into it is released (answered); what is not a
// regular file, or changed since the walk, is refused; a file above MAX_PUT_BYTES is not read.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { MAX_PUT_BYTES } from '../src/proto/limits.js';
import { adjacentRuns, SLAB_BYTES, SmallFiles, Unreadable, type Slab } from '../src/send/put-pipeline.js';
import { LocalFileError } from '../src/transfer/source.js';

let root = '';
const FILES = 300;
const SIZE = 4096;

before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'stx-small-'));
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(root, `f${i}`), Buffer.alloc(SIZE, i & 0xff));
  writeFileSync(path.join(root, 'big'), Buffer.alloc(MAX_PUT_BYTES + 1));
  writeFileSync(path.join(root, 'empty'), '');
  mkdirSync(path.join(root, 'dir'));
  symlinkSync('f0', path.join(root, 'link'));
});

after(() => rmSync(root, { recursive: true, force: true }));

type Read = { data: Buffer; slab: Slab; mtime: number; mode: number };

function readAll(files: SmallFiles, n: number): Read[] {
  const out: Read[] = [];
  for (let i = 0; i < n; i++) {
    const r = files.read(path.join(root, `f${i % FILES}`), SIZE);
    assert.ok(!('large' in r));
    out.push(r);
  }
  return out;
}

it('files read one after another lie side by side: a slab holds SLAB_BYTES of them, and their bytes are one piece per slab', () => {
  const files = new SmallFiles();
  const read = readAll(files, FILES);
  read.forEach((r, i) => {
    assert.equal(r.data.length, SIZE);
    assert.ok(r.data.every((b) => b === (i & 0xff)), `f${i}`);
    assert.equal(r.mode, statSync(path.join(root, `f${i}`)).mode & 0o7777);
  });
  const perSlab = SLAB_BYTES / SIZE;
  assert.equal(new Set(read.map((r) => r.slab)).size, Math.ceil(FILES / perSlab));
  const runs = adjacentRuns(read);
  assert.deepEqual(
    runs.map((b) => b.length),
    [perSlab * SIZE, (FILES - perSlab) * SIZE],
  );
  assert.ok(Buffer.concat(runs).equals(Buffer.concat(read.map((r) => r.data))));
  // Not adjacent (every other file): one piece each, in order.
  const gaps = read.slice(0, 10).filter((_, i) => i % 2 === 0);
  assert.deepEqual(adjacentRuns(gaps).map((b) => b[0]), [0, 2, 4, 6, 8]);
});

it('a slab is used again only once all its files are released, never while one is unanswered', () => {
  const files = new SmallFiles();
  const perSlab = SLAB_BYTES / SIZE;
  const first = readAll(files, perSlab + 1);
  const slab = first[0]?.slab;
  assert.ok(slab !== undefined && first[perSlab]?.slab !== slab);
  // All but one released: the slab is not reused, its last file's bytes stay as they were.
  for (const r of first.slice(1, perSlab)) r.slab.release();
  const kept = first[0]?.data;
  const more = readAll(files, 2 * perSlab);
  assert.ok(more.every((r) => r.slab !== slab));
  assert.ok(kept?.every((b) => b === 0));
  // The last one released: the next slab needed is that one.
  first[0]?.slab.release();
  const again = readAll(files, 2 * perSlab);
  assert.ok(again.some((r) => r.slab === slab));
});

it('a link, a directory, a missing file are Unreadable; a changed size is LOCAL_FILE; above MAX_PUT_BYTES only the stat is taken', () => {
  const files = new SmallFiles();
  for (const name of ['link', 'dir', 'missing']) assert.throws(() => files.read(path.join(root, name), null), Unreadable, name);
  assert.throws(() => files.read(path.join(root, 'f1'), SIZE + 1), LocalFileError);
  const big = files.read(path.join(root, 'big'), null);
  assert.ok('large' in big);
  assert.equal(big.large.size, MAX_PUT_BYTES + 1);
  assert.throws(() => files.read(path.join(root, 'big'), MAX_PUT_BYTES + 1), LocalFileError);
  const empty = files.read(path.join(root, 'empty'), null);
  assert.ok(!('large' in empty) && empty.data.length === 0);
  // Nothing refused took room: the next file starts where the last one read ended.
  const [a, b] = [files.read(path.join(root, 'f2'), SIZE), files.read(path.join(root, 'f3'), SIZE)];
  assert.ok(!('large' in a) && !('large' in b));
  assert.equal(adjacentRuns([a, b]).length, 1);
});
