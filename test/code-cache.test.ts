// stx-send runs its bundle through V8's code cache (src/send/code-cache.ts): the first run
// writes the cache, the next takes it; a cache V8 refuses (corrupt, or made for other code) is
// replaced (a corrupt one must not reach V8, which crashes on it); a cache directory that cannot be made or written costs nothing but the cache; and
// STX_TUNING without code-cache neither reads nor writes one. NODE_DEBUG=stx-code-cache says what
// each run did.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Script } from 'node:vm';
import { makeFile, SEND_CLI, startDaemon, tempDir } from './support/procs.js';

/** Runs `stx-send --version` with its caches under `cacheHome`: exit code, stdout, and what the cache did. */
function version(cacheHome: string, env: Record<string, string> = {}): { code: number | null; stdout: string; cache: string } {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'STX_TUNING' && k !== 'NODE_OPTIONS'));
  const run = spawnSync(process.execPath, [SEND_CLI, '--version'], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...base, XDG_CACHE_HOME: cacheHome, NODE_DEBUG: 'stx-code-cache', ...env },
  });
  const said = /STX-CODE-CACHE \d+: (absent|accepted|rejected) /.exec(run.stderr);
  return { code: run.status, stdout: run.stdout, cache: said?.[1] ?? `(nothing said: ${run.stderr})` };
}

/** The cache files in `cacheHome`/stx. */
function caches(cacheHome: string): string[] {
  const dir = path.join(cacheHome, 'stx');
  return existsSync(dir) ? readdirSync(dir).map((f) => path.join(dir, f)) : [];
}

describe('stx-send code cache', () => {
  let tmp: Awaited<ReturnType<typeof tempDir>>;
  before(async () => {
    tmp = await tempDir();
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('the first run writes it, the next takes it', () => {
    const home = path.join(tmp.dir, 'fresh');
    const first = version(home);
    assert.equal(first.code, 0);
    assert.match(first.stdout, /^\d+\.\d+\.\d+/);
    assert.equal(first.cache, 'absent');
    const [file, ...more] = caches(home);
    assert.ok(file !== undefined && more.length === 0, `one cache file: ${caches(home).join(', ')}`);
    assert.match(path.basename(file), /^stx-send-[0-9a-f]{32}\.v8cache$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const second = version(home);
    assert.equal(second.code, 0);
    assert.equal(second.stdout, first.stdout);
    assert.equal(second.cache, 'accepted');
  });

  it('the cache a transfer writes is taken by the next start (the flags V8 checks are as they were at start)', async () => {
    // 9 MiB: the sender collects V8's young generation itself every 8 MiB (young-gc.ts), which
    // set --expose-gc for the rest of the run, so that V8 refused the cache written at its end.
    const home = path.join(tmp.dir, 'after-send');
    const out = path.join(tmp.dir, 'out');
    const src = path.join(tmp.dir, 'f.bin');
    await makeFile(src, 9 * 1024 * 1024 + 3, 7);
    const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
    try {
      const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'STX_TUNING' && k !== 'NODE_OPTIONS'));
      const sent = spawnSync(process.execPath, [SEND_CLI, '127.0.0.1', String(d.port), src, '--quiet'], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...base, XDG_CACHE_HOME: home, NODE_DEBUG: 'stx-code-cache', STX_HOME: path.join(tmp.dir, 'stx-home') },
      });
      assert.equal(sent.status, 0, sent.stderr);
      assert.match(sent.stderr, /STX-CODE-CACHE \d+: absent /);
      assert.match(sent.stderr, /STX-CODE-CACHE \d+: wrote /);
    } finally {
      await d.stop();
    }
    assert.equal(version(home).cache, 'accepted');
  });

  it('a corrupt cache, or one made for other code, is refused and replaced', () => {
    const home = path.join(tmp.dir, 'replaced');
    assert.equal(version(home).cache, 'absent');
    const [file] = caches(home);
    assert.ok(file !== undefined);
    const good = readFileSync(file);
    const corrupt = Buffer.from(good);
    for (let i = 64; i < corrupt.length; i += 97) corrupt[i] = (corrupt[i] ?? 0) ^ 0x5a;
    const foreign = new Script('globalThis.x = 1 + 1;').createCachedData();
    // V8's data with its SHA-256 in front, as code-cache.ts writes it: V8 itself refuses it.
    const whole = (data: Buffer): Buffer => Buffer.concat([createHash('sha256').update(data).digest(), data]);
    for (const bad of [corrupt, whole(foreign), foreign, Buffer.from('not a cache'), Buffer.alloc(0)]) {
      writeFileSync(file, bad);
      const run = version(home);
      assert.equal(run.code, 0);
      assert.match(run.stdout, /^\d+\.\d+\.\d+/);
      assert.equal(run.cache, 'rejected');
      assert.notDeepEqual(readFileSync(file), bad, 'replaced');
      assert.equal(version(home).cache, 'accepted');
    }
  });

  it('a cache directory that cannot be made leaves the command working', () => {
    const notADir = path.join(tmp.dir, 'a-file');
    writeFileSync(notADir, 'x');
    for (let i = 0; i < 2; i++) {
      const run = version(notADir);
      assert.equal(run.code, 0);
      assert.match(run.stdout, /^\d+\.\d+\.\d+/);
      assert.equal(run.cache, 'absent');
    }
    assert.equal(readFileSync(notADir, 'utf8'), 'x');
  });

  it('STX_TUNING without code-cache reads and writes none', () => {
    const home = path.join(tmp.dir, 'off');
    for (const tuning of ['off', 'young-gc']) {
      const run = version(home, { STX_TUNING: tuning });
      assert.equal(run.code, 0);
      assert.match(run.stdout, /^\d+\.\d+\.\d+/);
      assert.equal(caches(home).length, 0, tuning);
    }
  });
});
