// The tree walk of stx-send (src/send/walk.ts): walkBatches hands over walk()'s entries in the
// same order, never more than a batch at once, and a walk stopped early closes its directories.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { walk, walkBatches, type Entry } from '../src/send/walk.js';

let root = '';

before(() => {
  root = mkdtempSync(path.join(tmpdir(), 'stx-walk-'));
  const top = path.join(root, 'top');
  for (let d = 0; d < 3; d++) {
    mkdirSync(path.join(top, `d${d}`, 'inner'), { recursive: true });
    for (let f = 0; f < 5; f++) writeFileSync(path.join(top, `d${d}`, `f${f} é`), `${d}/${f}`);
    writeFileSync(path.join(top, `d${d}`, 'inner', 'deep'), 'x');
  }
  mkdirSync(path.join(top, 'empty'));
  symlinkSync('d0/f0 é', path.join(top, 'link'));
  symlinkSync('../../outside', path.join(top, 'd1', 'out'));
});

after(() => rmSync(root, { recursive: true, force: true }));

const line = (e: Entry): string => `${e.kind} ${e.remote}${e.kind === 'skip' ? ` (${e.reason})` : ''}`;

async function flat(batch: number, links: boolean): Promise<{ entries: string[]; sizes: number[] }> {
  const entries: string[] = [];
  const sizes: number[] = [];
  for await (const b of walkBatches([path.join(root, 'top'), path.join(root, 'missing')], { links, to: 'to' }, batch)) {
    sizes.push(b.length);
    entries.push(...b.map(line));
  }
  return { entries, sizes };
}

it('walkBatches gives walk()’s entries in order, at most a batch at a time, directories after their contents', async () => {
  for (const links of [false, true]) {
    const one: string[] = [];
    for await (const e of walk([path.join(root, 'top'), path.join(root, 'missing')], { links, to: 'to' })) one.push(line(e));
    // 3 x (5 files, a file in inner, inner, the directory) + empty + link + out + top + missing.
    assert.equal(one.length, 3 * 8 + 1 + 1 + 1 + 1 + 1);
    for (const batch of [1, 3, 7, 64]) {
      const { entries, sizes } = await flat(batch, links);
      assert.deepEqual(entries, one, `batch ${batch}`);
      assert.ok(sizes.every((n) => n >= 1 && n <= batch), `batch ${batch}: sizes ${sizes.join(',')}`);
    }
    const at = (name: string): number => one.indexOf(`dir to/top${name}`);
    const deep = one.indexOf('file to/top/d0/inner/deep');
    assert.ok(deep >= 0 && deep < at('/d0/inner') && at('/d0/inner') < at('/d0'), one.join('\n'));
    assert.equal(one[one.length - 2], 'dir to/top');
    assert.match(one[one.length - 1] ?? '', /^skip to\/missing \(cannot read: ENOENT\)$/);
    assert.ok(one.includes(links ? 'link to/top/link' : 'skip to/top/link (symbolic link (send links with --links))'));
    assert.ok(one.includes(links ? 'skip to/top/d1/out (symbolic link pointing out of the tree)' : 'skip to/top/d1/out (symbolic link (send links with --links))'));
  }
});

it('a walk stopped early closes the directories it holds open', async () => {
  // Only descriptors on the tree count: the test runner's own may close meanwhile (seen in CI: 20 after, 21 before).
  const open = (): number =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(path.join('/proc/self/fd', fd)).startsWith(root);
      } catch {
        return false;
      }
    }).length;
  const before = open();
  for (let i = 0; i < 20; i++) {
    for await (const b of walkBatches([path.join(root, 'top')], { links: false }, 2)) {
      assert.ok(b.length > 0);
      assert.ok(open() > before, 'the walk holds a directory open');
      break;
    }
  }
  assert.equal(open(), before);
});

it('with statFiles false, regular files inside a tree come unstat’ed (regular), in the same order, and nothing else changes', async () => {
  const paths = [path.join(root, 'top'), path.join(root, 'top', 'd0', 'f1 é')];
  for (const links of [false, true]) {
    const stat: string[] = [];
    for await (const e of walk(paths, { links })) stat.push(line(e));
    const lazy: Entry[] = [];
    for await (const e of walk(paths, { links, statFiles: false })) lazy.push(e);
    // The same entries, files inside the tree as `regular` (a command-line file is stat'ed as before).
    assert.deepEqual(
      lazy.map((e) => line(e).replace(/^regular /, 'file ')),
      stat,
    );
    assert.equal(lazy.filter((e) => e.kind === 'regular').length, 3 * 6);
    assert.equal(lazy[lazy.length - 1]?.kind, 'file');
    assert.ok(lazy.some((e) => e.kind === (links ? 'link' : 'skip') && e.remote === 'top/link'));
  }
});

it('local paths are path.join(PATH, relative) and remote names NFC, however PATH is written (names in NFD, spaces, a trailing slash, dots)', async () => {
  const top = path.join(root, 'forms');
  const nfd = 'cafe\u0301';
  mkdirSync(path.join(top, nfd, 'sub dir'), { recursive: true });
  writeFileSync(path.join(top, nfd, 'sub dir', `${nfd}.txt`), 'x');
  writeFileSync(path.join(top, 'plain'), 'y');
  const cwd = process.cwd();
  process.chdir(root);
  try {
    for (const given of [top, `${top}/`, `${top}//`, './forms', 'forms/', `../${path.basename(root)}/forms`, `${root}/./forms/../forms`]) {
      for (const to of [undefined, 'to']) {
        const contents = given.endsWith('/');
        for (const statFiles of [true, false]) {
          const seen = new Set<string>();
          for await (const e of walk([given], { links: false, to, statFiles })) {
            if (e.kind === 'skip') assert.fail(`${e.local}: ${e.reason}`);
            const rel = path.relative(path.resolve(given), path.resolve(e.local));
            // What path.join and the remote join (parts, then NFC) give, computed apart from walk.ts.
            if (rel !== '') assert.equal(e.local, path.join(given, rel), given);
            const parts = [to ?? '', contents ? '' : 'forms', rel].filter((p) => p !== '');
            assert.equal(e.remote, parts.join('/').normalize('NFC'), `${given} ${e.local}`);
            seen.add(e.remote);
          }
          const base = [to, contents ? undefined : 'forms'].filter((p) => p !== undefined).join('/');
          const under = (r: string): string => (base === '' ? r : `${base}/${r}`);
          assert.ok(seen.has(under(`café/sub dir/café.txt`)), [...seen].join(', '));
          assert.ok(seen.has(under('plain')), [...seen].join(', '));
        }
      }
    }
  } finally {
    process.chdir(cwd);
  }
});
