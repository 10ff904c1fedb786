// Trees, several paths and stdin on one connection (issue 13, items 1 and 2; spec §9.8), against
// the real binaries: a tree arrives identical (path, type, size, mode, mtime, SHA-256, link
// targets), a cut mid-tree resumes without sending a finished file again, links are skipped or
// sent and never lead out, a FIFO is skipped and listed, a refused file sets the exit code, and
// a stream from stdin arrives whole, also across a cut.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { logEvents } from './support/partials.js';
import { makeFile, readJsonLine, runSend, SEND_CLI, startDaemon, tempDir, type Daemon } from './support/procs.js';
import { prng } from './support/prng.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

/**
 * One line per entry under `root`: path, type, size, mode, mtime (ms), SHA-256 or link target.
 * An mtime set from whole milliseconds reads back a hair below them (a Date becomes float
 * seconds), so it is rounded, as stx-send does.
 */
const ms = (mtimeMs: number): number => Math.round(mtimeMs);
async function listing(root: string): Promise<string[]> {
  const lines: string[] = [];
  const visit = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      if (rel === '' && name === '.stx') continue;
      const full = path.join(dir, name);
      const relName = rel === '' ? name : `${rel}/${name}`;
      const st = await lstat(full);
      const mode = (st.mode & 0o777).toString(8);
      if (st.isDirectory()) {
        await visit(full, relName);
        lines.push(`${relName} dir ${mode} ${ms(st.mtimeMs)}`);
      } else if (st.isSymbolicLink()) {
        lines.push(`${relName} link -> ${await readlink(full)}`);
      } else if (st.isFile()) {
        const sha = createHash('sha256').update(await readFile(full)).digest('hex');
        lines.push(`${relName} file ${st.size} ${mode} ${ms(st.mtimeMs)} ${sha}`);
      } else {
        lines.push(`${relName} other`);
      }
    }
  };
  await visit(root, '');
  return lines;
}

/** A tree with nested and empty directories, empty files, odd names, modes and mtimes (no special files). */
async function makeTree(root: string): Promise<void> {
  const when = (i: number): Date => new Date(1_600_000_000_000 + i * 86_400_123);
  await mkdir(path.join(root, 'a', 'b', 'c'), { recursive: true });
  await mkdir(path.join(root, 'empty dir'));
  await mkdir(path.join(root, 'ünï cødé'));
  await makeFile(path.join(root, 'a', 'b', 'c', 'deep.bin'), 300_000, 3);
  await makeFile(path.join(root, 'ünï cødé', 'fïlé with spaces.txt'), 5_000, 4);
  await writeFile(path.join(root, 'empty.bin'), '');
  await writeFile(path.join(root, 'a', 'empty too'), '');
  await writeFile(path.join(root, 'a', 'script.sh'), '#!/bin/sh\necho hi\n');
  await chmod(path.join(root, 'a', 'script.sh'), 0o755);
  await chmod(path.join(root, 'ünï cødé', 'fïlé with spaces.txt'), 0o600);
  await chmod(path.join(root, 'a', 'empty too'), 0o640);
  await chmod(path.join(root, 'a', 'b'), 0o750);
  // mtimes last, files before the directories that hold them.
  const order = ['a/b/c/deep.bin', 'ünï cødé/fïlé with spaces.txt', 'empty.bin', 'a/empty too', 'a/script.sh', 'a/b/c', 'a/b', 'a', 'empty dir', 'ünï cødé'];
  for (const [i, rel] of order.entries()) await utimes(path.join(root, rel), when(i), when(i));
}

/** One daemon for the cases that need no option (its key is made once, which takes most of a start). */
let shared: { d: Daemon; dir: string; out: string; cleanup: () => Promise<void> } | null = null;
let cases = 0;

/** Runs `run` with its own temporary directory, against the shared daemon or (with `extra`) one of its own with the same key. */
async function withDaemon(run: (d: Daemon, dir: string, out: string) => Promise<void>, extra: string[] = []): Promise<void> {
  if (shared === null) {
    const tmp = await tempDir();
    const out = path.join(tmp.dir, 'out');
    shared = { d: await startDaemon(out, path.join(tmp.dir, 'k', 'key.pem')), dir: tmp.dir, out, cleanup: tmp.cleanup };
  }
  const dir = path.join(shared.dir, `case-${cases++}`);
  await mkdir(dir);
  if (extra.length === 0) {
    await run(shared.d, dir, shared.out);
    return;
  }
  const out = path.join(dir, 'out');
  const d = await startDaemon(out, path.join(shared.dir, 'k', 'key.pem'), extra);
  try {
    await run(d, dir, out);
  } finally {
    await d.stop();
  }
}

const send = (d: Daemon | { port: number }, dir: string, args: string[]): ReturnType<typeof runSend> =>
  runSend(['127.0.0.1', String(d.port), ...args, '--json', '--quiet', '--backoff', '50'], { STX_HOME: path.join(dir, 'home') });

describe('stx-send with trees, several paths and stdin', () => {
  after(async () => {
    await shared?.d.stop();
    await shared?.cleanup();
  });

  it('a tree arrives identical: paths, sizes, modes, mtimes, SHA-256; links skipped by default, a FIFO skipped and listed', async () => {
    await withDaemon(async (d, dir, out) => {
      const src = path.join(dir, 'src', 'tree');
      await makeTree(src);
      await symlink('a/script.sh', path.join(src, 'inside-link'));
      await symlink('../../outside', path.join(src, 'a', 'outside-link'));
      execFileSync('mkfifo', [path.join(src, 'a', 'fifo')]);
      const r = await send(d, dir, [src, '--to', 'backup']);
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['ok'], true);
      assert.equal(json['files'], 5);
      assert.equal(json['directories'], 6); // tree, a, a/b, a/b/c, empty dir, ünï cødé
      assert.equal(json['links'], 0);
      assert.equal(json['reconnects'], 0);
      const skipped = json['skipped'] as { path: string; reason: string }[];
      assert.deepEqual(skipped.map((s) => `${path.relative(src, s.path)}: ${s.reason}`).sort(), [
        'a/fifo: FIFO',
        'a/outside-link: symbolic link (send links with --links)',
        'inside-link: symbolic link (send links with --links)',
      ]);
      const expected = (await listing(src)).filter((l) => !l.includes('link ->') && !l.includes('fifo'));
      const got = await listing(path.join(out, 'backup', 'tree'));
      assert.deepEqual(got, expected);
      assert.equal((await readdir(path.join(out, 'backup'))).join(','), 'tree');
      // One connection for the whole tree.
      assert.equal(logEvents(d.stdout(), 'authenticated').length, 1);
    });
  });

  it('--links sends links whose target stays in the tree, skips the others, never follows one; a/ sends the contents', async () => {
    await withDaemon(async (d, dir, out) => {
      const src = path.join(dir, 'src', 'tree');
      await mkdir(path.join(src, 'sub', 'deeper'), { recursive: true });
      await writeFile(path.join(src, 'sub', 'f.txt'), 'f');
      await writeFile(path.join(dir, 'src', 'secret'), 'outside the tree');
      await symlink('f.txt', path.join(src, 'sub', 'same-dir'));
      await symlink('../sub/f.txt', path.join(src, 'sub', 'deeper', 'up-one'));
      await symlink('../secret', path.join(src, 'escapes'));
      await symlink(path.join(dir, 'src', 'secret'), path.join(src, 'absolute'));
      await symlink('sub/../../secret', path.join(src, 'dotdot-inside'));
      await symlink('..', path.join(src, 'sub', 'to-top'));
      const r = await send(d, dir, [`${src}/`, '--to', 'links', '--links']);
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['links'], 3);
      const reasons = (json['skipped'] as { path: string; reason: string }[]).map((s) => `${path.relative(src, s.path)}: ${s.reason}`).sort();
      assert.deepEqual(reasons, [
        'absolute: symbolic link to an absolute path',
        'dotdot-inside: symbolic link target with ".." after a name',
        'escapes: symbolic link pointing out of the tree',
      ]);
      const got = (await listing(path.join(out, 'links'))).filter((l) => l.includes('->'));
      assert.deepEqual(got, ['sub/deeper/up-one link -> ../sub/f.txt', 'sub/same-dir link -> f.txt', 'sub/to-top link -> ..']);
      // The contents of tree/ went straight under --to, and nothing came from outside the tree.
      assert.deepEqual((await readdir(path.join(out, 'links'))).sort(), ['sub']);
      assert.equal(await readFile(path.join(out, 'links', 'sub', 'same-dir'), 'utf8'), 'f');
    });
  });

  it('a cut in the middle of a tree: it resumes, and no file already done is sent again', async () => {
    await withDaemon(async (d, dir, out) => {
      const src = path.join(dir, 'src', 'many');
      await mkdir(path.join(src, 'd'), { recursive: true });
      // Larger than a PUT (§9.11): each goes OPEN … DONE and resumes on its own.
      const files = 6;
      const each = MiB + MiB / 2;
      for (let i = 0; i < files; i++) {
        const file = path.join(src, i % 2 === 0 ? 'd' : '', `f${i}.bin`);
        await makeFile(file, each, 100 + i);
        // Whole milliseconds: the protocol carries mtime in ms (§4).
        await utimes(file, new Date(1_650_000_000_000 + i), new Date(1_650_000_000_000 + i));
      }
      const total = files * each;
      const proxy = await startProxy(d.port, { cutAt: [Math.floor(total * 0.45)] });
      try {
        const before = { done: logEvents(d.stdout(), 'upload').filter((e) => e['outcome'] === 'done').length, opens: logEvents(d.stdout(), 'open').length };
        const r = await send(proxy, dir, [src, '--to', 'cut']);
        assert.equal(r.code, 0, r.stderr);
        const json = readJsonLine(r.stdout);
        assert.equal(json['files'], files);
        assert.equal(json['reconnects'], 1);
        assert.equal(proxy.cuts, 1);
        assert.deepEqual(await listing(path.join(out, 'cut', 'many')), await listing(src));
        // Every file was published once, and opened once except the one in flight at the cut.
        const done = logEvents(d.stdout(), 'upload')
          .filter((e) => e['outcome'] === 'done')
          .slice(before.done);
        assert.equal(done.length, files);
        assert.equal(new Set(done.map((e) => e['name'])).size, files);
        const opens = logEvents(d.stdout(), 'open').slice(before.opens);
        const reopened = opens.length - files;
        assert.ok(reopened <= 1, `${opens.length} OPENs for ${files} files`);
        // Bytes sent again: at most the file in flight, not the finished ones.
        const crossed = Number(json['bytes_sent']);
        t_log(`tree cut: ${crossed} DATA bytes sent for ${total}, ${opens.length} OPENs, proxy ${proxy.bytesUp} bytes up`);
        assert.ok(crossed <= total + each, `${crossed} bytes sent for ${total}`);
      } finally {
        await proxy.close();
      }
    });
  });

  it('a file the server refuses fails alone: the others arrive, the exit code is the refusal’s (6), --json lists it; a stream past the quota is TOO_LARGE', async () => {
    await withDaemon(
      async (d, dir, out) => {
        const src = path.join(dir, 'src', 'set');
        await mkdir(src, { recursive: true });
        for (const n of ['a.txt', 'b.txt', 'c.txt']) await writeFile(path.join(src, n), `new ${n}`);
        await mkdir(path.join(out, 'set'), { recursive: true });
        await writeFile(path.join(out, 'set', 'b.txt'), 'the stored one, another size');
        const r = await send(d, dir, [src]);
        assert.equal(r.code, 6, r.stderr);
        const json = readJsonLine(r.stdout);
        assert.equal(json['ok'], false);
        assert.equal(json['files'], 2);
        const failed = json['failed'] as { name: string; code: string }[];
        assert.deepEqual(failed.map((f) => `${f.name} ${f.code}`), ['set/b.txt EXISTS']);
        assert.equal(await readFile(path.join(out, 'set', 'a.txt'), 'utf8'), 'new a.txt');
        assert.equal(await readFile(path.join(out, 'set', 'c.txt'), 'utf8'), 'new c.txt');
        assert.equal(await readFile(path.join(out, 'set', 'b.txt'), 'utf8'), 'the stored one, another size');
        // A stream has no size to refuse at OPEN: its DATA past the quota is TOO_LARGE (§9.8).
        const proc = spawn(process.execPath, [SEND_CLI, '127.0.0.1', String(d.port), '-', '--as', 'big.bin', '--json', '--quiet'], {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: { ...process.env, STX_HOME: path.join(dir, 'home') },
        });
        let stdout = '';
        proc.stdout.setEncoding('utf8').on('data', (t: string) => (stdout += t));
        const exited = new Promise<number | null>((r) => proc.on('close', (c) => r(c)));
        proc.stdin.on('error', () => undefined); // it may stop reading once refused
        proc.stdin.end(Buffer.alloc(3 * MiB, 7));
        assert.equal(await exited, 6);
        assert.equal(readJsonLine(stdout)['code'], 'TOO_LARGE');
        assert.ok(!(await readdir(out)).includes('big.bin'));
      },
      ['--append-only', '--max-file-size', '2M'],
    );
  });

  // The stream arrives whole across a cut, so it arrives whole without one too: one case is enough.
  for (const cut of [true]) {
    it(`stdin: a generated stream of 20 MiB arrives identical${cut ? ', across a cut in the middle' : ''}`, async () => {
      await withDaemon(async (d, dir, out) => {
        const size = 20 * MiB;
        const name = `dumps/db-${cut ? 'cut' : 'whole'}.sql`;
        const random = prng(cut ? 7 : 8);
        const proxy = cut ? await startProxy(d.port, { cutAt: [10 * MiB] }) : null;
        try {
          const proc = spawn(process.execPath, [SEND_CLI, '127.0.0.1', String(proxy?.port ?? d.port), '-', '--as', name, '--json', '--quiet', '--backoff', '50'], {
            stdio: ['pipe', 'pipe', 'pipe'],
            env: { ...process.env, STX_HOME: path.join(dir, 'home') },
          });
          let stdout = '';
          let stderr = '';
          proc.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
          proc.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
          const exited = new Promise<number | null>((r) => proc.on('close', (c) => r(c)));
          // Written in uneven pieces, with backpressure, as a dump would come.
          const stream = Buffer.allocUnsafe(size);
          for (let i = 0; i + 4 <= size; i += 4) stream.writeUInt32LE((random() * 2 ** 32) >>> 0, i);
          for (let written = 0; written < size; ) {
            const n = Math.min(size - written, 1 + Math.floor(random() * 300_000));
            const piece = stream.subarray(written, written + n);
            written += n;
            if (!proc.stdin.write(piece)) await new Promise((r) => proc.stdin.once('drain', r));
          }
          proc.stdin.end();
          const code = await exited;
          assert.equal(code, 0, stderr);
          const json = readJsonLine(stdout);
          const sha = createHash('sha256').update(stream).digest('hex');
          assert.equal(json['sha256'], sha);
          assert.equal(json['bytes'], size);
          assert.equal(json['reconnects'], cut ? 1 : 0);
          assert.equal(createHash('sha256').update(await readFile(path.join(out, name))).digest('hex'), sha);
          if (proxy !== null) {
            assert.equal(proxy.cuts, 1);
            t_log(`stdin cut: ${proxy.bytesUp} bytes crossed for ${size}`);
          }
        } finally {
          await proxy?.close();
        }
      });
    });
  }
});

function t_log(message: string): void {
  console.log(message);
}
