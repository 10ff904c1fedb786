// End to end with the real binaries on 127.0.0.1: sizes, trust, authentication, policy (issue 3,
// tests 1, 5, 6, 7, 9).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { open, readFile, writeFile, symlink, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KEYGEN_CLI, makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir, type Daemon } from './support/procs.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

/** Every file under `dir`, relative, skipping the daemon's own .stx area. */
function listFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (rel === '.stx') continue;
    if (e.isDirectory()) out.push(...listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

describe('uploads through stx-recv and stx-send', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let daemon: Daemon;
  let out: string;
  let home: string;

  before(async () => {
    tmp = await tempDir();
    out = path.join(tmp.dir, 'out');
    home = path.join(tmp.dir, 'home');
    daemon = await startDaemon(out, path.join(tmp.dir, 'srv', 'server_key.pem'));
  });
  after(async () => {
    assert.equal(await daemon.stop('SIGTERM'), 0);
    await tmp.cleanup();
  });

  const send = (file: string, extra: string[] = []): ReturnType<typeof runSend> =>
    runSend(['127.0.0.1', String(daemon.port), file, '--json', '--quiet', ...extra], { STX_HOME: home });

  for (const [label, size] of [
    ['0 bytes', 0],
    ['1 byte', 1],
    ['1 MiB + 17 (not a multiple of the record size)', MiB + 17],
    ['256 MiB', 256 * MiB],
  ] as const) {
    it(`a file of ${label} arrives byte-identical`, async () => {
      const src = path.join(tmp.dir, `src-${size}.bin`);
      const sha = await makeFile(src, size, size);
      const r = await send(src, ['--as', `sizes/${size}.bin`]);
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['sha256'], sha);
      assert.equal(json['bytes'], size);
      assert.equal(json['name'], `sizes/${size}.bin`);
      assert.equal(await sha256File(path.join(out, 'sizes', `${size}.bin`)), sha);
    });
  }

  it('records the server on first use and accepts it again', async () => {
    const kh = await readFile(path.join(home, 'known_hosts'), 'utf8');
    assert.match(kh, new RegExp(`127\\.0\\.0\\.1:${daemon.port} ${daemon.fingerprint.replace(/[+/]/g, '\\$&')}`));
    const src = path.join(tmp.dir, 'again.bin');
    await makeFile(src, 1000, 9);
    assert.equal((await send(src)).code, 0);
  });

  it('a pinned fingerprint that matches is accepted without known_hosts', async () => {
    const src = path.join(tmp.dir, 'pinned.bin');
    await makeFile(src, 5000, 10);
    const r = await send(src, ['--fingerprint', daemon.fingerprint, '--known-hosts', path.join(tmp.dir, 'none', 'kh')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(path.join(tmp.dir, 'none', 'kh')), false);
  });

  it('a wrong pinned fingerprint exits 4 and sends no file data', async () => {
    const src = path.join(tmp.dir, 'wrongpin.bin');
    await makeFile(src, 4 * MiB, 11);
    const proxy = await startProxy(daemon.port);
    try {
      const r = await runSend(['127.0.0.1', String(proxy.port), src, '--as', 'wrongpin.bin', '--fingerprint', 'SHA256:' + 'A'.repeat(43)], { STX_HOME: home });
      assert.equal(r.code, 4, r.stderr);
      assert.match(r.stderr, /SERVER_KEY_MISMATCH/);
      assert.ok(r.stderr.includes(daemon.fingerprint), 'the message names the presented fingerprint');
      assert.ok(proxy.bytesUp < 1024, `only the hello crossed, not file data (${proxy.bytesUp} bytes)`);
      assert.equal(existsSync(path.join(out, 'wrongpin.bin')), false);
    } finally {
      await proxy.close();
    }
  });

  it('hostile remote names are refused with exit 6 and nothing appears outside --out', async () => {
    const src = path.join(tmp.dir, 'hostile.bin');
    await makeFile(src, 1000, 12);
    await mkdir(path.join(tmp.dir, 'elsewhere'), { recursive: true });
    await symlink(path.join(tmp.dir, 'elsewhere'), path.join(out, 'link'));
    const names = ['../escape.bin', '/abs.bin', 'a/../../x.bin', '.stx/partials/x', 'a//b', 'bad\u0001name', 'link/inside.bin', 'x/./y', ''];
    for (const name of names) {
      const r = await send(src, ['--as', name]);
      assert.equal(r.code, name === '' ? 2 : 6, `${JSON.stringify(name)}: ${r.stderr}`);
      if (name !== '') assert.match(r.stderr, /BAD_NAME/);
    }
    assert.deepEqual(readdirSync(path.join(tmp.dir, 'elsewhere')), []);
    assert.equal(existsSync(path.join(tmp.dir, 'escape.bin')), false);
    assert.equal(existsSync('/abs.bin'), false);
    // The daemon still serves a normal upload right after.
    const ok = await send(src, ['--as', 'after-hostile.bin']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('replaces an existing file only with a verified new one', async () => {
    const a = path.join(tmp.dir, 'replace-a.bin');
    const b = path.join(tmp.dir, 'replace-b.bin');
    await makeFile(a, 3000, 13);
    const shaB = await makeFile(b, 7000, 14);
    assert.equal((await send(a, ['--as', 'replace.bin'])).code, 0);
    assert.equal((await send(b, ['--as', 'replace.bin'])).code, 0);
    assert.equal(await sha256File(path.join(out, 'replace.bin')), shaB);
  });

  it('nothing but finished files appears under --out', () => {
    const files = listFiles(out);
    assert.ok(files.every((f) => !f.endsWith('.part')), files.join(', '));
    assert.ok(files.includes(path.join('sizes', '0.bin')));
  });
});

describe('server identity and client authentication', () => {
  it('a different server key on the same host:port exits 4 and sends no file data', async () => {
    const tmp = await tempDir();
    try {
      const home = path.join(tmp.dir, 'home');
      const out = path.join(tmp.dir, 'out');
      const src = path.join(tmp.dir, 'f.bin');
      await makeFile(src, 2 * MiB, 20);
      const first = await startDaemon(out, path.join(tmp.dir, 'k1.pem'));
      const port = first.port;
      assert.equal((await runSend(['127.0.0.1', String(port), src, '--as', 'one.bin', '--quiet'], { STX_HOME: home })).code, 0);
      assert.equal(await first.stop(), 0);
      const khBefore = await readFile(path.join(home, 'known_hosts'), 'utf8');
      const second = await startDaemon(out, path.join(tmp.dir, 'k2.pem'), [], port);
      try {
        assert.notEqual(second.fingerprint, first.fingerprint);
        const r = await runSend(['127.0.0.1', String(port), src, '--as', 'two.bin'], { STX_HOME: home });
        assert.equal(r.code, 4, r.stderr);
        assert.ok(r.stderr.includes(first.fingerprint) && r.stderr.includes(second.fingerprint), r.stderr);
        assert.match(r.stderr, /known_hosts/);
        assert.equal(existsSync(path.join(out, 'two.bin')), false);
        assert.equal(readdirSync(path.join(out, '.stx', 'partials')).length, 0, 'no partial: no file data arrived');
        assert.equal(await readFile(path.join(home, 'known_hosts'), 'utf8'), khBefore);
      } finally {
        await second.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('with --authorized-keys an unknown key exits 5 and a listed one succeeds', async () => {
    const tmp = await tempDir();
    try {
      const alice = path.join(tmp.dir, 'alice');
      const mallory = path.join(tmp.dir, 'mallory');
      const line = execFileSync(process.execPath, [KEYGEN_CLI, path.join(alice, 'id_ed25519')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      execFileSync(process.execPath, [KEYGEN_CLI, path.join(mallory, 'id_ed25519')], { stdio: 'ignore' });
      assert.match(line, /^stx-ed25519 \S+/);
      assert.equal(((await stat(path.join(alice, 'id_ed25519'))).mode & 0o777).toString(8), '600');
      const auth = path.join(tmp.dir, 'authorized_keys');
      await writeFile(auth, `# team\n${line}`);
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'), ['--authorized-keys', auth]);
      try {
        const src = path.join(tmp.dir, 'f.bin');
        const sha = await makeFile(src, 100_000, 21);
        const bad = await runSend(['127.0.0.1', String(d.port), src, '--as', 'm.bin'], { STX_HOME: mallory });
        assert.equal(bad.code, 5, bad.stderr);
        assert.match(bad.stderr, /AUTH_REFUSED/);
        const anon = await runSend(['127.0.0.1', String(d.port), src, '--as', 'anon.bin'], { STX_HOME: path.join(tmp.dir, 'nobody') });
        assert.equal(anon.code, 5, anon.stderr);
        const good = await runSend(['127.0.0.1', String(d.port), src, '--as', 'a.bin', '--json'], { STX_HOME: alice });
        assert.equal(good.code, 0, good.stderr);
        assert.equal(await sha256File(path.join(out, 'a.bin')), sha);
        assert.equal(existsSync(path.join(out, 'm.bin')) || existsSync(path.join(out, 'anon.bin')), false);
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('--append-only refuses a second upload to an existing name and keeps the stored file', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'), ['--append-only']);
      try {
        const home = path.join(tmp.dir, 'home');
        const a = path.join(tmp.dir, 'a.bin');
        const b = path.join(tmp.dir, 'b.bin');
        const shaA = await makeFile(a, 50_000, 30);
        await makeFile(b, 60_000, 31);
        assert.equal((await runSend(['127.0.0.1', String(d.port), a, '--as', 'keep.bin'], { STX_HOME: home })).code, 0);
        const r = await runSend(['127.0.0.1', String(d.port), b, '--as', 'keep.bin'], { STX_HOME: home });
        assert.equal(r.code, 6, r.stderr);
        assert.match(r.stderr, /EXISTS/);
        assert.equal(await sha256File(path.join(out, 'keep.bin')), shaA);
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
  it('--append-only: re-running the same backup succeeds without writing; same size, other bytes is EXISTS', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'), ['--append-only']);
      try {
        const home = { STX_HOME: path.join(tmp.dir, 'home') };
        const a = path.join(tmp.dir, 'backup.tar');
        const sha = await makeFile(a, 3 * 1024 * 1024 + 7, 32);
        const args = ['127.0.0.1', String(d.port), a, '--json', '--quiet'];
        assert.equal((await runSend(args, home)).code, 0);
        const stored = await stat(path.join(out, 'backup.tar'));
        const again = await runSend(args, home);
        assert.equal(again.code, 0, again.stderr);
        assert.equal(readJsonLine(again.stdout)['sha256'], sha);
        const after = await stat(path.join(out, 'backup.tar'));
        assert.equal(after.ino, stored.ino, 'the stored file was not replaced');
        assert.equal(after.mtimeMs, stored.mtimeMs);
        // Same size, one byte different: refused, stored copy intact.
        const fh = await open(a, 'r+');
        const byte = Buffer.alloc(1);
        await fh.read(byte, 0, 1, 1000);
        byte.writeUInt8(byte.readUInt8(0) ^ 0xff); // flipped: never the byte it was
        await fh.write(byte, 0, 1, 1000);
        await fh.close();
        const other = await runSend(args, home);
        assert.equal(other.code, 6, other.stderr);
        assert.match(other.stderr, /EXISTS/);
        assert.equal(await sha256File(path.join(out, 'backup.tar')), sha);
        const done = d.stdout().split('\n').filter((l) => l.includes('"outcome":"unchanged"'));
        assert.equal(done.length, 1, 'the daemon logged the no-op as such');
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
