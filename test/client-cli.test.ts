// The client CLIs' own flags (issue 10, rough edge 1): --help/-h and --version/-V on stx-keygen
// and stx-send, and stx-keygen's path as a named option. Before, `stx-keygen --help` wrote a
// private key to a file named "--help".
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from './support/paths.js';
import { KEYGEN_CLI, SEND_CLI, tempDir } from './support/procs.js';

const VERSION = ((): string => {
  const pkg: unknown = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
  if (typeof pkg !== 'object' || pkg === null || !('version' in pkg) || typeof pkg.version !== 'string') throw new Error('no version in package.json');
  return pkg.version;
})();

describe('stx-keygen and stx-send flags', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let home: string;
  const run = (cli: string, args: string[]): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [cli, ...args], { cwd: tmp.dir, env: { ...process.env, STX_HOME: home }, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  before(async () => {
    tmp = await tempDir();
    home = path.join(tmp.dir, 'home');
  });
  after(() => tmp.cleanup());

  for (const flag of ['--help', '-h']) {
    it(`stx-keygen ${flag} prints usage, exits 0 and writes no key anywhere`, () => {
      const r = run(KEYGEN_CLI, [flag]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /stx-keygen \[--file FILE\]/);
      assert.match(r.stdout, /--file/);
      assert.deepEqual(readdirSync(tmp.dir), [], 'no file named after the flag, no identity in STX_HOME');
    });
  }

  for (const flag of ['--version', '-V']) {
    it(`stx-keygen ${flag} and stx-send ${flag} print package.json's version`, () => {
      for (const cli of [KEYGEN_CLI, SEND_CLI]) {
        const r = run(cli, [flag]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout.trim(), VERSION);
      }
      assert.deepEqual(readdirSync(tmp.dir), []);
    });
  }

  it('stx-send -h prints its usage and exits 0', () => {
    const r = run(SEND_CLI, ['-h']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stx-send HOST PORT PATH/);
  });

  it('stx-keygen refuses a positional that looks like an option (exit 2) and writes nothing', () => {
    for (const args of [['--', '--help'], ['--', '-f'], ['--hlep'], ['--file', '']]) {
      const r = run(KEYGEN_CLI, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /stx-keygen: error: /);
      assert.deepEqual(readdirSync(tmp.dir), [], args.join(' '));
    }
  });

  it('stx-keygen --file FILE writes the identity there and prints its authorized-keys line; -f again reuses it', () => {
    const file = path.join(tmp.dir, 'ids', 'mine');
    const first = run(KEYGEN_CLI, ['--file', file]);
    assert.equal(first.code, 0, first.stderr);
    assert.ok(existsSync(file));
    assert.match(first.stdout, /^stx-ed25519 \S+/m);
    assert.match(first.stderr, /wrote a new identity/);
    const again = run(KEYGEN_CLI, ['-f', file]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, first.stdout, 'the same key, reused');
    assert.match(again.stderr, /using the existing identity/);
    assert.equal(existsSync(path.join(home, 'id_ed25519')), false, 'the default path is untouched');
  });

  it('stx-keygen without arguments writes $STX_HOME/id_ed25519', () => {
    const r = run(KEYGEN_CLI, []);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(path.join(home, 'id_ed25519')));
  });
});
