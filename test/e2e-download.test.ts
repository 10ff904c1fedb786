// Downloads and listings with the real binaries (spec §9.9, §9.10; issue 13 item 3): a tree
// uploaded with stx-send comes back identical with stx-get; a download cut twice resumes and
// verifies; names that would land outside --to are refused; a daemon without --allow-download
// refuses; hostile LIST and GET frames get their codes (the conformance runner's §9.9/§9.10 cases).
import assert from 'node:assert/strict';
import { appendFile, chmod, lstat, mkdir, readdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LocalTree } from '../src/send/local-files.js';
import { downloadCases } from './conformance/download-cases.js';
import { runConformance } from './conformance/runner.js';
import { RawClient } from './hostile/raw-client.js';
import { startDownProxy } from './support/down-proxy.js';
import { makeFile, makeTree, readJsonLine, runGet, runSend, sha256File, startDaemon, tempDir, type Daemon } from './support/procs.js';

const MiB = 1024 * 1024;

/** Every regular file under `root`: relative path → size, mode, mtime (ms, rounded), sha256. */
async function describeTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const st = await lstat(p);
        out.set(path.relative(root, p), `${st.size} ${(st.mode & 0o777).toString(8)} ${Math.round(st.mtimeMs)} ${await sha256File(p)}`);
      }
    }
  };
  await walk(root);
  return out;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let daemon: Daemon;
/** A daemon started without --allow-download. */
let plain: Daemon;
let out: string;
let home: string;
const host = '127.0.0.1';

before(async () => {
  tmp = await tempDir('stx-download-');
  out = path.join(tmp.dir, 'out');
  home = path.join(tmp.dir, 'home');
  [daemon, plain] = await Promise.all([
    startDaemon(out, path.join(tmp.dir, 'srv', 'k.pem'), ['--allow-download']),
    startDaemon(path.join(tmp.dir, 'out-plain'), path.join(tmp.dir, 'srv-plain', 'k.pem')),
  ]);
});
after(async () => {
  assert.equal(await daemon.stop(), 0);
  assert.equal(await plain.stop(), 0);
  await tmp.cleanup();
});

describe('stx-get', () => {
  it('a tree uploaded with stx-send comes back identical: path, size, mode, mtime, sha256', async () => {
    const src = path.join(tmp.dir, 'src', 'tree');
    const files: [string, number, number, number][] = [
      ['a.bin', 300_000, 0o644, 1_600_000_000_250],
      ['empty', 0, 0o600, 1_500_000_000_000],
      ['deep/er/still/x.txt', 5, 0o640, 1_700_000_000_750],
      ['with space/ünïcødé файл.bin', 70_000, 0o755, 1_650_000_000_500],
    ];
    await makeTree(src, files);
    const sent = await Promise.all(files.map(([name]) => runSend([host, String(daemon.port), path.join(src, name), '--as', `tree/${name}`, '--quiet'], { STX_HOME: home })));
    for (const r of sent) assert.equal(r.code, 0, r.stderr);
    const to = path.join(tmp.dir, 'got');
    const r = await runGet([host, String(daemon.port), 'tree', '--to', to, '--json', '--quiet'], home);
    assert.equal(r.code, 0, r.stderr);
    const result = readJsonLine(r.stdout);
    assert.equal(result.ok, true);
    assert.equal((result.files as unknown[]).length, files.length);
    assert.deepEqual(await describeTree(path.join(to, 'tree')), await describeTree(src));
    // Nothing but the tree and the (empty) partial directory under --to.
    assert.deepEqual((await readdir(to)).sort(), ['.stx-partial', 'tree']);
    assert.deepEqual(await readdir(path.join(to, '.stx-partial')), []);
  });

  it('--list prints name, size, mtime and sha256 (recorded at upload); --json one object per file and directory', async () => {
    const r = await runGet(['--list', host, String(daemon.port), 'tree', '--json'], home);
    assert.equal(r.code, 0, r.stderr);
    const all = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { name: string; kind: string; size: number; mtime: number; mode: number; sha256: string | null });
    assert.deepEqual(
      all.map((e) => `${e.name}${e.kind === 'directory' ? '/' : ''}`),
      ['tree/', 'tree/a.bin', 'tree/deep/', 'tree/deep/er/', 'tree/deep/er/still/', 'tree/deep/er/still/x.txt', 'tree/empty', 'tree/with space/', 'tree/with space/ünïcødé файл.bin'],
      'listing order: component by component, a directory before its contents',
    );
    const entries = all.filter((e) => e.kind === 'file');
    const a = entries[0];
    assert.ok(a !== undefined);
    assert.equal(a.size, 300_000);
    assert.equal(a.mtime, 1_600_000_000_250);
    assert.equal(a.mode, 0o644);
    // Recorded when the upload was verified: known without reading the file.
    assert.equal(a.sha256, await sha256File(path.join(tmp.dir, 'src', 'tree', 'a.bin')));
    const plain = await runGet(['--list', host, String(daemon.port)], home);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^300000 {2}2020-09-13T12:26:40\.250Z {2}[0-9a-f]{64} {2}tree\/a\.bin$/m);
  });

  it('a 32 MiB download cut twice resumes from the local partial and verifies', async (t) => {
    const size = 32 * MiB;
    await mkdir(path.join(out, 'big'), { recursive: true });
    // Published as the daemon would have: a file in its output directory.
    const sha = await makeFile(path.join(out, 'big', 'f.bin'), size, 32);
    const proxy = await startDownProxy(daemon.port, { cutAt: [10 * MiB, 20 * MiB] });
    try {
      const to = path.join(tmp.dir, 'got-big');
      const r = await runGet([host, String(proxy.port), 'big/f.bin', '--to', to, '--json', '--quiet', '--backoff', '20'], home);
      assert.equal(r.code, 0, r.stderr);
      const result = readJsonLine(r.stdout);
      const [file] = result.files as { sha256: string; resumed_from: number; bytes: number }[];
      assert.ok(file !== undefined);
      assert.equal(proxy.cuts, 2);
      assert.equal(result.reconnects, 2);
      assert.equal(file.sha256, sha);
      assert.equal(await sha256File(path.join(to, 'f.bin')), sha);
      assert.ok(file.resumed_from > 10 * MiB, `the last attempt resumed from ${file.resumed_from}`);
      // Resumed, not restarted: what crossed is the file plus what was in flight at each cut.
      t.diagnostic(`bytes down through the proxy: ${proxy.bytesDown} for a ${size}-byte file`);
      assert.ok(proxy.bytesDown < size + 12 * MiB, `${proxy.bytesDown} bytes crossed for ${size}`);
    } finally {
      await proxy.close();
    }
  });

  it('a file changed on the server while it is sent is IO_ERROR, and nothing is published', async () => {
    const name = path.join(out, 'changing.bin');
    // Larger than what the daemon's queue, both sockets' buffers and the proxy can hold while held.
    await makeFile(name, 32 * MiB, 64);
    const proxy = await startDownProxy(daemon.port, { holdAt: MiB });
    try {
      const to = path.join(tmp.dir, 'got-changing');
      const running = runGet([host, String(proxy.port), 'changing.bin', '--to', to, '--json', '--quiet', '--retries', '0'], home);
      await proxy.reached(MiB);
      await appendFile(name, 'more');
      proxy.release();
      const r = await running;
      assert.equal(r.code, 6, r.stderr);
      assert.equal(readJsonLine(r.stdout).code, 'IO_ERROR');
      await assert.rejects(lstat(path.join(to, 'changing.bin')), { code: 'ENOENT' });
    } finally {
      await proxy.close();
    }
  });

  it('NOT_FOUND for an absent name: exit 6', async () => {
    const r = await runGet([host, String(daemon.port), 'no/such/file', '--to', path.join(tmp.dir, 'nf'), '--json'], home);
    assert.equal(r.code, 6, r.stderr);
    assert.equal(readJsonLine(r.stdout).code, 'NOT_FOUND');
  });

  it('refuses names that would land outside --to: a symbolic link on the way, "..", absolute', async () => {
    const to = path.join(tmp.dir, 'linked');
    const elsewhere = path.join(tmp.dir, 'elsewhere');
    await mkdir(to, { recursive: true });
    await mkdir(elsewhere, { recursive: true });
    await symlink(elsewhere, path.join(to, 'tree'));
    const r = await runGet([host, String(daemon.port), 'tree', '--to', to, '--json'], home);
    assert.equal(r.code, 6, r.stderr);
    assert.equal(readJsonLine(r.stdout).code, 'BAD_NAME');
    assert.deepEqual(await readdir(elsewhere), [], 'nothing written through the link');
    const tree = new LocalTree(to);
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', 'a//b', '.stx-partial/x', 'a\\b', 'a\u001b[2Jb']) {
      await assert.rejects(tree.target(bad), { code: 'BAD_NAME' }, bad);
    }
  });

  it('hostile LIST and GET frames: bad names, .stx/partials, offsets beyond the size, absent files (§9.9, §9.10)', async () => {
    const cases = downloadCases();
    const results = await runConformance(cases, { host, port: daemon.port, fingerprint: daemon.fingerprint, waitMs: 5000, timerWaitMs: 5000 });
    for (const r of results) assert.ok(r.pass, `${r.section} ${r.name}: expected ${r.expect.join(' | ')}, got ${r.got}`);
    assert.equal(results.length, cases.length);
  });
});

/** Every directory under `root` (the partial directory aside): relative path → mode and mtime (ms). */
async function describeDirs(root: string): Promise<Map<string, string>> {
  const outDirs = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || e.name === '.stx-partial') continue;
      await walk(path.join(dir, e.name));
      const st = await lstat(path.join(dir, e.name));
      outDirs.set(path.relative(root, path.join(dir, e.name)), `${(st.mode & 0o777).toString(8)} ${Math.round(st.mtimeMs)}`);
    }
  };
  await walk(root);
  return outDirs;
}

describe('hashes recorded at upload, empty directories, skipping identical files (issue 13 items 1 and 3)', () => {
  it('a listing after a restart has every SHA-256; stx-get makes empty directories and skips identical files; stx-send --checksum sends nothing the second time', async () => {
    const base = path.join(tmp.dir, 'gaps');
    const src = path.join(base, 'src', 'set');
    const files: [string, number][] = [
      ['a.bin', 200_000],
      ['sub/b.txt', 10],
      ['sub/zero', 0],
    ];
    for (const [name, size] of files) {
      await mkdir(path.dirname(path.join(src, name)), { recursive: true });
      await makeFile(path.join(src, name), size, size + 3);
      await utimes(path.join(src, name), 1_600_000_000, 1_600_000_000.5);
    }
    await mkdir(path.join(src, 'hollow', 'inner'), { recursive: true });
    await chmod(path.join(src, 'hollow', 'inner'), 0o750);
    for (const d of ['hollow/inner', 'hollow', 'sub', '']) await utimes(path.join(src, d), 1_500_000_000, 1_500_000_000.25);
    const gout = path.join(base, 'out');
    const key = path.join(base, 'srv', 'k.pem');
    const ghome = path.join(base, 'home');
    let d = await startDaemon(gout, key, ['--allow-download']);
    try {
      const send = async (args: string[]): Promise<Record<string, unknown>> => {
        const r = await runSend([host, String(d.port), ...args, '--json', '--quiet'], { STX_HOME: ghome });
        assert.equal(r.code, 0, r.stderr);
        return readJsonLine(r.stdout);
      };
      const first = await send([src, '--to', 'g']);
      assert.deepEqual([first.files, first.skipped_count], [3, 0]);
      // The hashes outlive the daemon: recorded beside the files, not remembered in memory.
      assert.equal(await d.stop(), 0);
      d = await startDaemon(gout, key, ['--allow-download']);
      // Changed in place by other means: its hash at upload must not be shown any more.
      await appendFile(path.join(gout, 'g', 'set', 'sub', 'b.txt'), 'changed');
      // Listed over a raw connection (the CLI's --list has its own test above): LIST_DIR and LIST_ENTRY frames.
      const byName = new Map<string, { kind: string; sha256: string | null; mode: number }>();
      const c = await RawClient.connect(d.port);
      try {
        await c.handshake();
        await c.send({ type: 'LIST', prefix: 'g' });
        for (let i = 0; i < 20; i++) {
          const got = await c.next();
          if (got.kind !== 'frame') assert.fail(`${got.kind} in a listing`);
          if (got.frame.type === 'LIST_END') break;
          const f = got.frame;
          if (f.type === 'LIST_DIR') byName.set(f.name, { kind: 'directory', sha256: null, mode: f.mode });
          else if (f.type === 'LIST_ENTRY') byName.set(f.name, { kind: 'file', sha256: f.sha256?.toString('hex') ?? null, mode: f.mode });
          else assert.fail(`${f.type} in a listing`);
        }
      } finally {
        c.destroy();
      }
      assert.deepEqual([...byName.keys()], ['g', 'g/set', 'g/set/a.bin', 'g/set/hollow', 'g/set/hollow/inner', 'g/set/sub', 'g/set/sub/b.txt', 'g/set/sub/zero']);
      assert.equal(byName.get('g/set/a.bin')?.sha256, await sha256File(path.join(src, 'a.bin')));
      assert.equal(byName.get('g/set/sub/zero')?.sha256, await sha256File(path.join(src, 'sub/zero')));
      // A small file's hash is computed from its bytes when asked (storage/local/sums.ts): the new ones'.
      const changed = await sha256File(path.join(gout, 'g', 'set', 'sub', 'b.txt'));
      assert.notEqual(changed, await sha256File(path.join(src, 'sub/b.txt')));
      assert.equal(byName.get('g/set/sub/b.txt')?.sha256, changed, 'no stale hash for a file changed in place');
      assert.deepEqual([byName.get('g/set/hollow/inner')?.kind, byName.get('g/set/hollow/inner')?.mode], ['directory', 0o750]);

      // Download: the tree with its empty directories, modes and mtimes; then again: nothing fetched.
      const to = path.join(base, 'got');
      const get = async (): Promise<Record<string, unknown>> => {
        const r = await runGet([host, String(d.port), 'g/set', '--to', to, '--json', '--quiet'], ghome);
        assert.equal(r.code, 0, r.stderr);
        return readJsonLine(r.stdout);
      };
      const fetched = await get();
      assert.deepEqual([(fetched.files as unknown[]).length, fetched.directories, fetched.skipped_count], [3, 4, 0]);
      const served = path.join(gout, 'g', 'set');
      assert.deepEqual(await describeTree(path.join(to, 'set')), await describeTree(served));
      assert.deepEqual(await describeDirs(path.join(to, 'set')), await describeDirs(served));
      assert.equal((await describeDirs(path.join(to, 'set'))).get('hollow/inner'), '750 1500000000250', 'an empty directory arrives with its mode and mtime');
      // Same size and mtime, other bytes: no proof of anything, fetched again.
      const local = path.join(to, 'set', 'a.bin');
      await writeFile(local, Buffer.alloc(200_000, 1));
      await utimes(local, 1_600_000_000, 1_600_000_000.5);
      const again = await get();
      // Every local file has the listed size and SHA-256 (b.txt's the daemon learnt by serving it whole).
      assert.deepEqual(
        [(again.files as unknown[]).length, again.skipped_count, (again.skipped as { path: string; reason: string }[]).map((x) => `${x.path} ${x.reason}`)],
        [1, 2, ['set/sub/b.txt identical', 'set/sub/zero identical']],
      );

      // --checksum: the server answers DONE at OPEN for what it holds identical; the changed file is sent.
      const checked = await send([src, '--to', 'g', '--checksum']);
      assert.deepEqual([checked.files, checked.bytes_sent, checked.skipped_count], [1, 10, 2]);
      assert.deepEqual((checked.skipped as { path: string; reason: string }[]).map((x) => x.reason), ['identical', 'identical']);
      const twice = await send([src, '--to', 'g', '--checksum']);
      assert.deepEqual([twice.files, twice.bytes_sent, twice.skipped_count], [0, 0, 3], 'the second time nothing is sent');
      const one = await send([path.join(src, 'a.bin'), '--as', 'g/set/a.bin', '--checksum']);
      assert.equal(one.skipped, 'identical');
    } finally {
      assert.equal(await d.stop(), 0);
    }
  });
});

describe('stx-recv without --allow-download', () => {
  it('refuses GET and LIST with NOT_ALLOWED (stx-get exits 6)', async () => {
    {
      await writeFile(path.join(tmp.dir, 'out-plain', 'f.txt'), 'secret');
      const r = await runGet([host, String(plain.port), 'f.txt', '--to', path.join(tmp.dir, 'na'), '--json'], home);
      assert.equal(r.code, 6, r.stderr);
      assert.equal(readJsonLine(r.stdout).code, 'NOT_ALLOWED');
      await assert.rejects(lstat(path.join(tmp.dir, 'na', 'f.txt')), { code: 'ENOENT' });
      for (const frame of [{ type: 'GET', name: 'f.txt', offset: 0 } as const, { type: 'LIST', prefix: '' } as const]) {
        const c = await RawClient.connect(plain.port);
        try {
          await c.handshake();
          await c.send(frame);
          assert.equal((await c.outcome()).code, 'NOT_ALLOWED');
        } finally {
          c.destroy();
        }
      }
      assert.equal(await readFile(path.join(tmp.dir, 'out-plain', 'f.txt'), 'utf8'), 'secret');
    }
  });
});
