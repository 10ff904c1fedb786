// The conformance runner (spec/PROTOCOL.md §14, test/conformance/) against our own stx-recv: every
// case passes, and the runner can fail — a broken expectation and a wrong pinned key are reported.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { conformanceCases } from './conformance/cases.js';
import { report, runConformance } from './conformance/runner.js';
import { DIST_DIR } from './support/paths.js';
import { startDaemon, tempDir, type Daemon } from './support/procs.js';

const MAIN = path.join(DIST_DIR, 'test', 'conformance', 'main.js');

let daemon: Daemon;
let cleanup: () => Promise<void>;
before(async () => {
  const tmp = await tempDir('stx-conformance-');
  cleanup = tmp.cleanup;
  // Short timers, so the §9.6 cases (--timeouts) wait seconds, not a minute.
  daemon = await startDaemon(path.join(tmp.dir, 'out'), path.join(tmp.dir, 'srv', 'server_key.pem'), ['--handshake-timeout', '2s', '--idle-timeout', '2s', '--handshake-rate-per-source', '0']);
});
after(async () => {
  const code = await daemon.stop('SIGTERM');
  await cleanup();
  assert.equal(code, 0, 'stx-recv stops cleanly after the conformance run');
});

function runMain(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

it('npm run conformance passes every case against stx-recv, timer cases included', { timeout: 60_000 }, async () => {
  const r = await runMain(['--host', '127.0.0.1', '--port', String(daemon.port), '--fingerprint', daemon.fingerprint, '--timeouts', '--timer-wait-ms', '10000']);
  assert.doesNotMatch(r.stdout, /^ *FAIL /m, r.stdout + r.stderr);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const all = /\| all \| \| (\d+) \| (\d+) \| 0 \|/.exec(r.stdout);
  assert.ok(all !== null, r.stdout);
  assert.equal(all[1], all[2]);
  assert.ok(Number(all[1]) >= 150, `${all[1]} cases`);
  // Every section the cases name appears in the table.
  for (const s of ['§2 | Frames', '§2.1 | Control payloads', '§3 | Preamble', '§4 | Frame types', '§9.1 | Upload lifecycle', '§9.6 | Liveness and shutdown', '§10.1 | Order of checks', '§11.1 | Server']) {
    assert.ok(r.stdout.includes(`| ${s} |`), `the table has a row for ${s}`);
  }
});

it('a deliberately broken expectation is reported as a failure, next to a passing case', async () => {
  const cases = conformanceCases();
  const ping = cases.find((c) => c.name.startsWith('PING in Receiving'));
  const done = cases.find((c) => c.name.startsWith('an upload of 3 DATA frames'));
  assert.ok(ping !== undefined && done !== undefined);
  const results = await runConformance([{ ...ping, expect: ['PONG seq=1'] }, done], { host: '127.0.0.1', port: daemon.port, fingerprint: daemon.fingerprint });
  assert.deepEqual(results.map((r) => r.pass), [false, true]);
  assert.equal(results[0]?.got, `PONG seq=${Number.MAX_SAFE_INTEGER}`);
  const text = report(results);
  assert.match(text, /FAIL {2}PING in Receiving/);
  assert.match(text, /\| all \| \| 2 \| 1 \| 1 \|/);
});

it('a server key other than the pinned one fails every case that handshakes, and the exit code says so', async () => {
  const r = await runMain(['--port', String(daemon.port), '--fingerprint', 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', '--only', '§6']);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stdout, /FAIL {2}an anonymous handshake completes/);
  assert.match(r.stdout, /is not the pinned SHA256:AAAA/);
});
