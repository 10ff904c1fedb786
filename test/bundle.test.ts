// The bundled commands in dist/bin/ (package.json "bundle", DESIGN.md "Dependencies") start worker
// threads by a URL relative to the module that starts them: once bundled, that module is a file in
// dist/bin/, so every worker has to be an entry of the bundle too, under the same file name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { DIST_DIR, REPO_ROOT } from './support/paths.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

it('every worker thread a module starts is bundled beside the commands in dist/bin/', () => {
  const workers = new Set<string>();
  for (const file of sources(path.join(REPO_ROOT, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/new Worker\(new URL\('\.\/([\w-]+\.js)', import\.meta\.url\)/g)) workers.add(m[1] ?? '');
  }
  assert.ok(workers.size >= 2, `found the hashing and publishing threads: ${[...workers].join(', ')}`);
  for (const w of workers) {
    assert.ok(existsSync(path.join(DIST_DIR, 'bin', w)), `dist/bin/${w} (add it to package.json's "bundle" entries)`);
  }
  for (const cmd of ['stx-recv', 'stx-send', 'stx-get', 'stx-keygen']) assert.ok(existsSync(path.join(DIST_DIR, 'bin', `${cmd}.js`)), cmd);
});

/**
 * Runs a bundled command with Intl.Segmenter counted (the first one of a process loads ICU's break
 * rules); returns its stdout and how many were made.
 */
function countingSegmenters(cmd: string, args: readonly string[]): { stdout: string; segmenters: number } {
  const preload =
    'const S = Intl.Segmenter; let n = 0; ' +
    'Intl.Segmenter = class extends S { constructor(...a) { super(...a); n++; } }; ' +
    'process.on("exit", () => process.stderr.write(`segmenters ${n}\\n`));';
  const run = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(preload)}`, path.join(DIST_DIR, 'bin', `${cmd}.js`), ...args], { encoding: 'utf8', timeout: 30_000 });
  const counted = /segmenters (\d+)/.exec(run.stderr);
  assert.ok(counted !== null, run.stderr);
  return { stdout: run.stdout, segmenters: Number(counted[1]) };
}

it('a command that lays out no text makes no Intl.Segmenter at start (string-width is loaded on first use)', () => {
  for (const cmd of ['stx-send', 'stx-recv', 'stx-get', 'stx-keygen']) {
    const { stdout, segmenters } = countingSegmenters(cmd, ['--version']);
    assert.match(stdout, /^\d+\.\d+\.\d+/, cmd);
    assert.equal(segmenters, 0, `${cmd} --version`);
  }
  // --help still measures its columns with the real string-width.
  const help = countingSegmenters('stx-send', ['--help']);
  assert.match(help.stdout, /--to\s+remote directory/);
  assert.ok(help.segmenters >= 1, 'string-width was loaded for --help');
});

it('stx-send and stx-get run as commands do not make node parse NODE_EXTRA_CA_CERTS, and pass their arguments through whole', () => {
  // Node warns at start when the file cannot be loaded: the warning shows whether it was parsed.
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/stx-test-ca.pem' };
  for (const name of ['stx-send', 'stx-get']) {
    const cmd = path.join(DIST_DIR, 'bin', `${name}.js`);
    const viaNode = spawnSync(process.execPath, [cmd, '--version'], { encoding: 'utf8', timeout: 30_000, env });
    assert.match(viaNode.stderr, /extra certs/i, `${name}: node itself still reads the variable (the check below can fail)`);
    const direct = spawnSync(cmd, ['--version'], { encoding: 'utf8', timeout: 30_000, env });
    assert.equal(direct.status, 0, direct.stderr);
    assert.match(direct.stdout, /^\d+\.\d+\.\d+/, name);
    assert.doesNotMatch(direct.stderr, /extra certs/i, name);
  }
  const odd = "/nonexistent/a name with 'quotes' and $HOME";
  const missing = spawnSync(path.join(DIST_DIR, 'bin', 'stx-send.js'), ['127.0.0.1', '1', odd], { encoding: 'utf8', timeout: 30_000, env });
  assert.notEqual(missing.status, 0);
  assert.ok(missing.stderr.includes(`LOCAL_FILE: cannot read ${odd}`), missing.stderr);
});
