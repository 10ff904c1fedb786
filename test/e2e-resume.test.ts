// Interruptions against the real binaries (issue 3, tests 2, 3, 4): cut connections, a killed
// daemon, a stopped daemon. The file must arrive whole, and resume must not resend much.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ACK_INTERVAL_BYTES, MAX_QUEUED_BYTES_PER_CONNECTION } from '../src/recv/config.js';
import { makeFile, readJsonLine, runSend, sha256File, spawnSend, startDaemon, tempDir, watchSend } from './support/procs.js';
import { durableOnDisk, waitFor } from './support/partials.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;
/** Bytes a client may have to send again after a cut: the ACK interval plus the server's queue. */
const WINDOW = ACK_INTERVAL_BYTES + MAX_QUEUED_BYTES_PER_CONNECTION;

describe('resume after interruptions', () => {
  it('five cuts at random points: the client resumes by itself and resends little', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      const size = 160 * MiB;
      const src = path.join(tmp.dir, 'f.bin');
      const sha = await makeFile(src, size, 40);
      // Five cut points spread over the upload, each at a random place in its fifth.
      const cutAt = [0, 1, 2, 3, 4].map((i) => Math.floor(((i + 0.2 + Math.random() * 0.6) * size) / 5));
      const proxy = await startProxy(d.port, { cutAt, bytesPerSecond: 200 * MiB });
      try {
        const r = await runSend(['127.0.0.1', String(proxy.port), src, '--json', '--quiet', '--backoff', '50'], { STX_HOME: path.join(tmp.dir, 'home') });
        assert.equal(r.code, 0, r.stderr);
        const json = readJsonLine(r.stdout);
        assert.equal(json['sha256'], sha);
        assert.equal(json['reconnects'], 5);
        assert.equal(proxy.cuts, 5);
        assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
        const limit = size + 5 * 2 * WINDOW;
        assert.ok(proxy.bytesUp < limit, `${proxy.bytesUp} bytes crossed, limit ${limit}`);
        assert.ok(proxy.bytesUp >= size);
      } finally {
        await proxy.close();
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('SIGKILL of the daemon mid-upload: a new stx-send resumes from a non-zero offset', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const key = path.join(tmp.dir, 'k.pem');
      const home = path.join(tmp.dir, 'home');
      const size = 128 * MiB;
      const src = path.join(tmp.dir, 'f.bin');
      const sha = await makeFile(src, size, 41);
      const d1 = await startDaemon(out, key);
      const proxy = await startProxy(d1.port, { bytesPerSecond: 48 * MiB });
      const client = spawnSend(['127.0.0.1', String(proxy.port), src, '--quiet', '--retries', '0'], { STX_HOME: home });
      try {
        await waitFor('a durable offset', () => durableOnDisk(out) >= 16 * MiB);
        assert.equal(await d1.stop('SIGKILL'), 'SIGKILL');
      } finally {
        client.kill('SIGKILL');
        await proxy.close();
      }
      const durable = durableOnDisk(out);
      assert.ok(durable > 0 && durable < size, `durable ${durable}`);
      assert.equal(existsSync(path.join(out, 'f.bin')), false, 'no partial under the final name');
      const d2 = await startDaemon(out, key, [], d1.port);
      try {
        const r = await runSend(['127.0.0.1', String(d2.port), src, '--json', '--quiet'], { STX_HOME: home });
        assert.equal(r.code, 0, r.stderr);
        const json = readJsonLine(r.stdout);
        assert.ok(typeof json['resumed_from'] === 'number' && json['resumed_from'] >= durable, `resumed_from ${String(json['resumed_from'])}`);
        assert.equal(json['sha256'], sha);
        assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
      } finally {
        await d2.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('SIGTERM mid-upload: the daemon exits 0 in bounded time and the client resumes against the restarted one', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const key = path.join(tmp.dir, 'k.pem');
      const size = 128 * MiB;
      const src = path.join(tmp.dir, 'f.bin');
      const sha = await makeFile(src, size, 42);
      const d1 = await startDaemon(out, key);
      const port = d1.port;
      const proxy = await startProxy(port, { bytesPerSecond: 48 * MiB });
      const watched = watchSend(
        spawnSend(['127.0.0.1', String(proxy.port), src, '--json', '--quiet', '--backoff', '200', '--retries', '20'], {
          STX_HOME: path.join(tmp.dir, 'home'),
        }),
      );
      const client = watched.proc;
      try {
        await waitFor('a durable offset', () => durableOnDisk(out) >= 16 * MiB);
        const t0 = Date.now();
        assert.equal(await d1.stop('SIGTERM', 20_000), 0);
        const stopMs = Date.now() - t0;
        assert.ok(stopMs < 10_000, `stopped in ${stopMs} ms`);
        const durable = durableOnDisk(out);
        assert.ok(durable > 0 && durable < size);
        const d2 = await startDaemon(out, key, [], port);
        try {
          assert.equal(await watched.exited, 0, watched.stderr());
          const json = readJsonLine(watched.stdout());
          assert.equal(json['sha256'], sha);
          assert.ok(Number(json['reconnects']) >= 1);
          assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
        } finally {
          await d2.stop();
        }
      } finally {
        client.kill('SIGKILL');
        await proxy.close();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
