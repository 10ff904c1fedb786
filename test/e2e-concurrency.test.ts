// Many clients at once against one daemon (issue 3, test 8).
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { startProxy } from './support/proxy.js';
import { makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir } from './support/procs.js';

const MiB = 1024 * 1024;

describe('concurrent clients', () => {
  it('20 clients upload different files at once, all intact, while idle connections wait', async () => {
    const tmp = await tempDir();
    const idle: net.Socket[] = [];
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        // Connections that never finish (or even start) the handshake must not block anyone.
        for (let i = 0; i < 10; i++) {
          const s = net.connect(d.port, '127.0.0.1');
          s.on('error', () => undefined);
          if (i % 2 === 0) s.write(Buffer.from('STX\0'));
          idle.push(s);
        }
        const files = await Promise.all(
          Array.from({ length: 20 }, async (_, i) => {
            const src = path.join(tmp.dir, `f${i}.bin`);
            return { i, src, sha: await makeFile(src, (i + 1) * MiB + i * 997, 100 + i) };
          }),
        );
        const results = await Promise.all(
          files.map((f) => runSend(['127.0.0.1', String(d.port), f.src, '--as', `many/f${f.i}.bin`, '--json', '--quiet'], { STX_HOME: path.join(tmp.dir, 'home') })),
        );
        for (const [k, r] of results.entries()) {
          assert.equal(r.code, 0, r.stderr);
          const f = files[k];
          assert.ok(f !== undefined);
          assert.equal((readJsonLine(r.stdout))['sha256'], f.sha);
          assert.equal(await sha256File(path.join(out, 'many', `f${f.i}.bin`)), f.sha);
        }
      } finally {
        await d.stop();
      }
    } finally {
      for (const s of idle) s.destroy();
      await tmp.cleanup();
    }
  });

  it('two clients upload the same name at once: one succeeds, the other gets BUSY, the result is one file whole', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        const a = path.join(tmp.dir, 'a.bin');
        const b = path.join(tmp.dir, 'b.bin');
        const shaA = await makeFile(a, 64 * MiB, 1);
        const shaB = await makeFile(b, 64 * MiB, 2);
        const home = path.join(tmp.dir, 'home');
        // Throttled, so that each upload lasts seconds and the two OPENs surely overlap.
        const pa = await startProxy(d.port, { bytesPerSecond: 24 * MiB });
        const pb = await startProxy(d.port, { bytesPerSecond: 24 * MiB });
        const [ra, rb] = await Promise.all([
          runSend(['127.0.0.1', String(pa.port), a, '--as', 'same.bin', '--retries', '0', '--fingerprint', d.fingerprint], { STX_HOME: home }),
          runSend(['127.0.0.1', String(pb.port), b, '--as', 'same.bin', '--retries', '0', '--fingerprint', d.fingerprint], { STX_HOME: home }),
        ]).finally(() => Promise.all([pa.close(), pb.close()]));
        const codes = [ra.code, rb.code].sort();
        assert.deepEqual(codes, [0, 6], `${ra.stderr}\n${rb.stderr}`);
        const loser = ra.code === 6 ? ra : rb;
        assert.match(loser.stderr, /BUSY/);
        const got = await sha256File(path.join(out, 'same.bin'));
        assert.equal(got, ra.code === 0 ? shaA : shaB);
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
