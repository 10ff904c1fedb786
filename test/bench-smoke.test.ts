// A small run of the benchmark (stx only, 16 MiB, every extra at a tiny scale) so that the
// harness cannot rot: it must finish, verify every file and write both reports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';
import { DIST_DIR } from './support/paths.js';

const GNU_TIME = '/usr/bin/time';
/** The run takes a few seconds; this bounds a hang, not a slow machine. */
const TIMEOUT_MS = 120_000;

function run(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(DIST_DIR, 'bench', 'run.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (t: string) => (stderr += t));
    const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

it('bench smoke: stx 16 MiB with every extra, all verified, both reports written', { skip: !existsSync(GNU_TIME) && 'GNU time is not installed' }, async () => {
  const out = await mkdtemp(path.join(os.tmpdir(), 'stx-bench-smoke-'));
  try {
    const r = await run([
      '--size', '16M', '--runs', '1', '--only', 'stx', '--out', out,
      '--handshakes', '10', '--parallel-clients', '2', '--handshakes-per-client', '5', '--concurrent-clients', '4,4r', '--concurrent-size', '1M,1M', '--concurrent-rounds', '1', '--memory-sizes', '2M',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const json: unknown = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8'));
    assert.ok(typeof json === 'object' && json !== null);
    const summaries: unknown = Reflect.get(json, 'summaries');
    const stx = Array.isArray(summaries) ? (summaries as unknown[]).find((s: unknown) => typeof s === 'object' && s !== null && Reflect.get(s, 'name') === 'stx') : undefined;
    assert.equal(Reflect.get(stx ?? {}, 'verifiedRuns'), 1, 'the stx run was verified');
    const extras: unknown = Reflect.get(json, 'extras');
    assert.ok(typeof extras === 'object' && extras !== null);
    const concurrency: unknown = Reflect.get(extras, 'concurrency');
    const cases: unknown = Reflect.get(concurrency ?? {}, 'cases');
    const first: unknown = Array.isArray(cases) ? (cases as unknown[])[0] : undefined;
    assert.equal(Reflect.get(first ?? {}, 'verified'), 4, 'every concurrent upload was verified');
    assert.equal(Reflect.get(first ?? {}, 'attempted'), 4);
    // 4r: returning clients, each resuming with the ticket of its first visit (§7.5).
    const returning: unknown = Array.isArray(cases) ? (cases as unknown[])[1] : undefined;
    assert.equal(Reflect.get(returning ?? {}, 'returning'), true);
    assert.equal(Reflect.get(returning ?? {}, 'verified'), 4, 'every returning upload was verified');
    const samples: unknown = Reflect.get(concurrency ?? {}, 'samples');
    const resumedSample: unknown = Array.isArray(samples) ? (samples as unknown[]).find((x: unknown) => Reflect.get(x ?? {}, 'returning') === true) : undefined;
    assert.equal(Reflect.get(resumedSample ?? {}, 'resumed'), 4, 'the returning clients resumed, none went through RSA');
    // Each case against a warm daemon (the targets' figures) and a fresh one (kept beside it).
    assert.equal(Reflect.get(concurrency ?? {}, 'daemonState'), 'warm');
    const others: unknown = Reflect.get(concurrency ?? {}, 'others');
    const fresh: unknown = Array.isArray(others) ? (others as unknown[])[0] : undefined;
    assert.equal(Reflect.get(fresh ?? {}, 'daemonState'), 'fresh');
    const freshCases: unknown = Reflect.get(fresh ?? {}, 'cases');
    assert.equal(Reflect.get((Array.isArray(freshCases) ? (freshCases as unknown[])[1] : undefined) ?? {}, 'verified'), 4, 'every returning upload to a fresh daemon was verified');
    const handshake: unknown = Reflect.get(extras, 'handshake');
    const latency: unknown = Reflect.get(handshake ?? {}, 'latency');
    assert.ok(Number(Reflect.get(latency ?? {}, 'medianMs')) > 0, 'handshake latency measured');
    const markdown = await readFile(path.join(out, 'RESULTS.md'), 'utf8');
    for (const heading of ['## Targets', '## Handshakes', '## Concurrent clients', '## Peak memory by file size']) {
      assert.ok(markdown.includes(heading), `RESULTS.md has "${heading}"`);
    }
    assert.ok(markdown.includes('| 4 returning × 1 MiB | warm |') && markdown.includes('| 4 returning × 1 MiB | fresh |'), 'RESULTS.md has warm and fresh rows');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
