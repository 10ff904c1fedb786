// Resume of a big partial and takeover (issue 10; spec §9.4, §9.7), against the real binaries
// with short idle timeouts: a resume never waits in silence for the server's re-read, a client
// whose old connection the server still holds takes its upload over, and two live copies of the
// same client never knock each other off in turn.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { logEvents, durableOnDisk, waitFor } from './support/partials.js';
import { makeFile, readJsonLine, runSend, sha256File, spawnSend, startDaemon, tempDir, watchSend, type Daemon } from './support/procs.js';
import { startProxy, type CutProxy } from './support/proxy.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('resume of a partial over 1 GiB with short idle timeouts', () => {
  it('after a daemon restart the re-read keeps the connection alive (PROGRESS); after a client restart nothing is re-read', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const key = path.join(tmp.dir, 'k.pem');
      const home = { STX_HOME: path.join(tmp.dir, 'home') };
      const size = GiB + 128 * MiB;
      const src = path.join(tmp.dir, 'big.bin');
      const sha = await makeFile(src, size, 77);
      const idle = ['--idle-timeout', '500ms'];
      const clientArgs = (port: number): string[] => ['127.0.0.1', String(port), src, '--json', '--quiet', '--retries', '3', '--backoff', '50', ...idle];

      // 1. A partial of at least 1 GiB, then the daemon dies with it (no running hash survives).
      const d1 = await startDaemon(out, key, idle);
      const c1 = spawnSend(clientArgs(d1.port), home);
      try {
        await waitFor('1 GiB durable', () => durableOnDisk(out) >= GiB, 120_000);
        assert.equal(await d1.stop('SIGKILL'), 'SIGKILL');
      } finally {
        c1.kill('SIGKILL');
      }
      const held = durableOnDisk(out);
      assert.ok(held >= GiB && held < size, `durable ${held}`);

      // 2. Restarted daemon: the OPEN must re-read `held` bytes; the client waits through it.
      const d2 = await startDaemon(out, key, idle);
      try {
        const proxy = await startProxy(d2.port, { bytesPerSecond: 64 * MiB });
        const c2 = spawnSend(clientArgs(proxy.port), home);
        const c2exit = watchSend(c2).result;
        try {
          await waitFor('the resumed OPEN', () => logEvents(d2.stdout(), 'open').length > 0, 120_000);
          const reopened = logEvents(d2.stdout(), 'open')[0] ?? {};
          assert.equal(reopened['offset'], held);
          assert.equal(reopened['reread'], held, 'a restarted daemon has to read the partial back');
          process.stderr.write(`# re-read of ${held} bytes took ${String(reopened['ms'])} ms with 500 ms idle timeouts\n`);
          // Let some data follow, then lose this client too (a restart on the client's side).
          await waitFor('more data', () => durableOnDisk(out) > held, 60_000);
          assert.equal(c2.exitCode, null, 'the client is still on its first connection');
        } finally {
          c2.kill('SIGKILL');
          await proxy.close();
        }
        const c2result = await c2exit;
        assert.equal(logEvents(d2.stdout(), 'open').length, 1, `one OPEN, no reconnect: ${c2result.stderr}`);

        // 3. Same daemon: the hash of the interrupted upload was kept, the resume reads nothing back.
        const r = await runSend(clientArgs(d2.port), home);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readJsonLine(r.stdout)['sha256'], sha);
        const opens = logEvents(d2.stdout(), 'open');
        const resumed = opens.at(-1) ?? {};
        assert.equal(opens.length, 2);
        assert.ok(Number(resumed['offset']) >= held, `offset ${String(resumed['offset'])}`);
        assert.equal(resumed['reread'], 0);
        process.stderr.write(`# resume at ${String(resumed['offset'])} answered in ${String(resumed['ms'])} ms\n`);
        assert.equal(await sha256File(path.join(out, 'big.bin')), sha);
      } finally {
        await d2.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});

interface Scene {
  readonly out: string;
  readonly src: string;
  readonly sha: string;
  readonly daemon: Daemon;
  readonly proxy: CutProxy;
  readonly home: Record<string, string>;
}

/** A daemon, a throttled proxy before it and a 48 MiB file: what each takeover case starts from. */
async function withScene(seed: number, bytesPerSecond: number, fn: (s: Scene) => Promise<void>): Promise<void> {
  const tmp = await tempDir();
  try {
    const out = path.join(tmp.dir, 'out');
    const daemon = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
    const src = path.join(tmp.dir, 'f.bin');
    const sha = await makeFile(src, 48 * MiB, seed);
    const proxy = await startProxy(daemon.port, { bytesPerSecond });
    try {
      await fn({ out, src, sha, daemon, proxy, home: { STX_HOME: path.join(tmp.dir, 'home') } });
    } finally {
      await proxy.close();
      await daemon.stop();
    }
  } finally {
    await tmp.cleanup();
  }
}

describe('takeover (§9.4)', () => {
  it('pulled cable: the client reconnects while the server still holds its old connection, and takes the upload over', () =>
    withScene(78, 32 * MiB, async ({ out, src, sha, daemon, proxy, home }) => {
      const client = spawnSend(['127.0.0.1', String(proxy.port), src, '--json', '--quiet', '--idle-timeout', '1s', '--backoff', '50'], home);
      const exited = watchSend(client).result;
      await waitFor('a durable offset', () => durableOnDisk(out) >= 8 * MiB);
      proxy.freezeAll();
      const r = await exited;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readJsonLine(r.stdout)['reconnects'], 1);
      assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
      const closes = logEvents(daemon.stdout(), 'close').filter((e) => e['code'] === 'SUPERSEDED');
      assert.equal(closes.length, 1, 'the old connection was closed as superseded');
    }));

  it('two live clients with the same identity: the newcomer finishes, the first stops with SUPERSEDED (exit 6), no ping-pong', () =>
    withScene(79, 8 * MiB, async ({ out, src, sha, daemon, proxy, home }) => {
      const args = ['127.0.0.1', String(proxy.port), src, '--json', '--quiet', '--backoff', '50'];
      const first = watchSend(spawnSend(args, home)).result;
      // 8 MiB/s: the first is still far from done (6 s in all) when the second one arrives.
      await waitFor('a durable offset', () => durableOnDisk(out) >= 4 * MiB);
      const second = watchSend(spawnSend(args, home)).result;
      const [a, b] = await Promise.all([first, second]);
      assert.equal(a.code, 6, a.stderr);
      assert.match(a.stderr, /SUPERSEDED/);
      assert.equal(b.code, 0, b.stderr);
      assert.equal(readJsonLine(b.stdout)['sha256'], sha);
      assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
      assert.equal(logEvents(daemon.stdout(), 'open').length, 2, 'one OPEN each: nobody came back');
    }));
});
