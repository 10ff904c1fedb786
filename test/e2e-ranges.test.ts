// Ranged uploads (§9.13) with the real binaries on 127.0.0.1: stx-send --streams over parallel
// connections, verified whole; every connection cut mid-range, each range resuming its own part;
// and a hostile client's claims refused with their codes while the daemon goes on serving.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MAX_STREAMS_PER_UPLOAD, MIN_RANGE_BYTES } from '../src/proto/limits.js';
import { RawClient } from './hostile/raw-client.js';
import { logEvents, waitFor } from './support/partials.js';
import { makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir } from './support/procs.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;

function partialsLeft(out: string): string[] {
  const dir = path.join(out, '.stx', 'partials');
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe('ranged uploads: stx-send --streams (§9.13)', () => {
  it('four ranges on four connections, then verified whole; and with every connection cut mid-range, each range resumes its own part', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      const home = path.join(tmp.dir, 'home');
      try {
        const size = 4 * MiB + 12345;
        const src = path.join(tmp.dir, 'f.bin');
        const sha = await makeFile(src, size, 71);
        const r = await runSend(['127.0.0.1', String(d.port), src, '--streams', '4', '--json', '--quiet'], { STX_HOME: home });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readJsonLine(r.stdout)['sha256'], sha);
        assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
        const done = logEvents(d.stdout(), 'range').filter((e) => e['outcome'] === 'done');
        assert.deepEqual(
          done.map((e) => [e['start'], e['end']]).sort((a, b) => Number(a[0]) - Number(b[0])),
          [
            [0, 2 * MiB],
            [2 * MiB, 4 * MiB],
            [4 * MiB, size],
          ],
          'ranges of whole MiB, the last one ending the file (4 MiB and a bit in 4 streams: 2 MiB ranges, so 3 of them)',
        );
        assert.deepEqual(partialsLeft(out), [], 'nothing left behind once published');
        // The server hashed the ranges' bytes as they became durable (before the ranged upload let
        // go of the file): the OPEN that publishes it reads nothing back (§9.13 step 4).
        const opened = logEvents(d.stdout(), 'open').filter((e) => e['name'] === 'f.bin');
        assert.deepEqual(opened.map((e) => e['reread']), [0], 'the publishing OPEN reads nothing back');

        // More ranges than connections: each connection sends its next RANGE right after its last
        // RANGE_END (§9.13 step 2, revision 1.10). A server that read it while settling would refuse it
        // (UNEXPECTED_FRAME) and stx-send would reconnect without chaining: no reconnect here.
        const size3 = 64 * MiB;
        const src3 = path.join(tmp.dir, 'h.bin');
        const sha3 = await makeFile(src3, size3, 73);
        const r3 = await runSend(['127.0.0.1', String(d.port), src3, '--streams', '2', '--json', '--quiet'], { STX_HOME: home });
        assert.equal(r3.code, 0, r3.stderr);
        const json3 = readJsonLine(r3.stdout);
        assert.equal(json3['sha256'], sha3);
        assert.equal(json3['reconnects'], 0, 'chained RANGEs taken in order, no reconnect');
        assert.equal(await sha256File(path.join(out, 'h.bin')), sha3);
        const done3 = logEvents(d.stdout(), 'range').filter((e) => e['name'] === 'h.bin' && e['outcome'] === 'done');
        assert.deepEqual(
          done3.map((e) => [Number(e['start']) / MiB, Number(e['end']) / MiB]).sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0)),
          [
            [0, 20],
            [20, 40],
            [40, 52],
            [52, 64],
          ],
          '64 MiB in 2 streams: a turn of 2 × 20 MiB, then 2 × 12 MiB, two ranges per connection',
        );

        // The same through a proxy that cuts every connection once 45 % of the file has crossed.
        const size2 = 8 * MiB;
        const src2 = path.join(tmp.dir, 'g.bin');
        const sha2 = await makeFile(src2, size2, 72);
        const proxy = await startProxy(d.port, { bytesPerSecond: 3 * MiB });
        try {
          // Two ranges of 4 MiB at ~1.5 MiB/s each: the server checkpoints each range every second, mid-range.
          const sending = runSend(['127.0.0.1', String(proxy.port), src2, '--streams', '2', '--json', '--quiet', '--backoff', '50'], { STX_HOME: home });
          await waitFor('45 % of the file through the proxy', () => proxy.bytesUp > size2 * 0.45, 60_000);
          proxy.cutAll();
          const r2 = await sending;
          assert.equal(r2.code, 0, r2.stderr);
          const json = readJsonLine(r2.stdout);
          assert.equal(json['sha256'], sha2);
          assert.ok(Number(json['reconnects']) >= 1, `reconnects ${String(json['reconnects'])}`);
          assert.equal(await sha256File(path.join(out, 'g.bin')), sha2);
          // Every range was claimed again after the cut, and each went on from where the server held it.
          const claims = logEvents(d.stdout(), 'range').filter((e) => e['name'] === 'g.bin' && e['outcome'] === undefined);
          assert.ok(claims.length >= 3, `ranges claimed again after the cut: ${JSON.stringify(claims)}`);
          // What crossed: the file, plus at most what was in flight at the cut (the proxy's buffers and the server's queues).
          assert.ok(proxy.bytesUp < size2 + 4 * MiB, `${proxy.bytesUp} bytes crossed for ${size2}`);
        } finally {
          await proxy.close();
        }
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('the connections dial at once when the server key is pinned or known; after the first handshake only on first use', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      const home = path.join(tmp.dir, 'home');
      // Server bytes arrive 200 ms late: a handshake takes two of those round trips.
      const proxy = await startProxy(d.port, { delayDownMs: 200 });
      try {
        const size = 4 * MiB + 12345;
        const src = path.join(tmp.dir, 'f.bin');
        const sha = await makeFile(src, size, 74);
        const send = async (as: string): Promise<('accept' | 'down')[]> => {
          const from = proxy.order.length;
          const r = await runSend(['127.0.0.1', String(proxy.port), src, '--as', as, '--streams', '4', '--json', '--quiet'], { STX_HOME: home });
          assert.equal(r.code, 0, r.stderr);
          assert.equal(readJsonLine(r.stdout)['sha256'], sha);
          assert.equal(await sha256File(path.join(out, as)), sha);
          return proxy.order.slice(from);
        };
        // First use: the server's key is not known yet, so the other connections wait for the first
        // handshake (which records it), and trust on first use asks once.
        const first = await send('a.bin');
        assert.equal(first.filter((e) => e === 'accept').length, 3, 'three ranges, three connections');
        assert.ok(first.indexOf('down') < first.lastIndexOf('accept'), `the others dialed after the first heard the server: ${first.join(',')}`);
        // Known now (known_hosts): every connection dials at once, before the server's first answer.
        const known = await send('b.bin');
        assert.equal(known.filter((e) => e === 'accept').length, 3);
        assert.ok(known.lastIndexOf('accept') < known.indexOf('down'), `all dialed before the first answer: ${known.join(',')}`);
      } finally {
        await proxy.close();
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a ranged upload left by a client that split the file otherwise (BAD_RANGE) goes on in order, verified', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      const home = path.join(tmp.dir, 'home');
      try {
        const size = 12 * MiB;
        const src = path.join(tmp.dir, 'h.bin');
        const sha = await makeFile(src, size, 73);
        // Two ranges of 6 MiB at 1.5 MiB/s each, cut once they are recorded (their first checkpoint,
        // within a second) and a third is through; no retry: the ranges stay recorded, unfinished.
        const proxy = await startProxy(d.port, { bytesPerSecond: 3 * MiB });
        try {
          const sending = runSend(['127.0.0.1', String(proxy.port), src, '--streams', '2', '--json', '--quiet', '--retries', '0'], { STX_HOME: home });
          await waitFor('the ranges recorded', () => partialsLeft(out).some((f) => f.endsWith('.json')), 60_000);
          await waitFor('a third of the file through the proxy', () => proxy.bytesUp > size / 3, 60_000);
          proxy.cutAll();
          assert.notEqual((await sending).code, 0, 'the first send gave up');
        } finally {
          await proxy.close();
        }
        // Three streams split 12 MiB otherwise (4 MiB ranges): the first claim overlaps a recorded range.
        const r = await runSend(['127.0.0.1', String(d.port), src, '--streams', '3', '--json', '--quiet'], { STX_HOME: home });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readJsonLine(r.stdout)['sha256'], sha);
        assert.equal(await sha256File(path.join(out, 'h.bin')), sha);
        const refused = logEvents(d.stdout(), 'close').filter((e) => e['code'] === 'BAD_RANGE');
        assert.ok(refused.length >= 1, 'the second split was refused with BAD_RANGE first');
        // The OPEN took the upload over from the durable prefix of its first range (§9.13 step 4).
        const done = logEvents(d.stdout(), 'upload').filter((e) => e['name'] === 'h.bin' && e['outcome'] === 'done');
        assert.equal(done.length, 1);
        assert.ok(Number(done[0]?.['resumed_from']) > 0, `resumed from ${String(done[0]?.['resumed_from'])}`);
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('hostile claims: beyond the size, overlapping, too short, one too many at once, DATA outside the range; the daemon keeps serving', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        const size = (MAX_STREAMS_PER_UPLOAD + 1) * MIN_RANGE_BYTES;
        const base = { name: 'hostile.bin', size, mtime: 1_700_000_000_000, mode: 0o644 } as const;
        const refusedWith = async (frames: Parameters<RawClient['send']>[0][]): Promise<string> => {
          const c = await RawClient.connect(d.port);
          try {
            assert.ok(await c.handshake());
            for (const f of frames) await c.send(f);
            for (let i = 0; i < 10; i++) {
              const got = await c.next();
              if (got.kind === 'frame' && (got.frame.type === 'RANGE_OK' || got.frame.type === 'ACK')) continue;
              return got.kind === 'frame' && got.frame.type === 'ERROR' ? String(got.frame.code) : got.kind;
            }
            return 'no answer';
          } finally {
            c.destroy();
          }
        };
        assert.equal(await refusedWith([{ type: 'RANGE', ...base, start: 0, end: size + 1 }]), '45', 'beyond the size: BAD_RANGE');
        assert.equal(await refusedWith([{ type: 'RANGE', ...base, start: 0, end: 1000 }]), '45', 'short and not at the end: BAD_RANGE');
        assert.equal(await refusedWith([{ type: 'RANGE', ...base, start: 2 ** 52, end: 2 ** 53 - 1 }]), '45', 'a huge range: BAD_RANGE');
        {
          const c = await RawClient.connect(d.port);
          try {
            assert.ok(await c.handshake());
            await c.send({ type: 'RANGE', ...base, start: 0, end: MIN_RANGE_BYTES });
            await c.expectFrame('RANGE_OK');
            await c.send({ type: 'DATA', offset: MIN_RANGE_BYTES - 4, data: Buffer.alloc(8) });
            assert.equal((await c.outcome()).code, 'BAD_OFFSET', 'DATA not at the next offset and across the range end');
          } finally {
            c.destroy();
          }
        }

        // MAX_STREAMS_PER_UPLOAD claims held at once, then one more; and one overlapping a held one.
        const holders: RawClient[] = [];
        try {
          for (let i = 0; i < MAX_STREAMS_PER_UPLOAD; i++) {
            const c = await RawClient.connect(d.port);
            holders.push(c);
            assert.ok(await c.handshake());
            await c.send({ type: 'RANGE', ...base, start: i * MIN_RANGE_BYTES, end: (i + 1) * MIN_RANGE_BYTES });
            const ok = await c.expectFrame('RANGE_OK');
            assert.ok(ok.offset <= (i + 1) * MIN_RANGE_BYTES);
          }
          const last = MAX_STREAMS_PER_UPLOAD * MIN_RANGE_BYTES;
          assert.equal(await refusedWith([{ type: 'RANGE', ...base, start: last, end: size }]), '58', 'one too many at once: TOO_MANY_STREAMS');
        } finally {
          for (const c of holders) c.destroy();
        }
        // The held ranges were let go; an overlapping claim is still refused (they are recorded).
        assert.equal(await refusedWith([{ type: 'RANGE', ...base, start: MIN_RANGE_BYTES / 2, end: MIN_RANGE_BYTES * 2 }]), '45', 'overlapping recorded ranges: BAD_RANGE');

        // The daemon serves an ordinary upload meanwhile, and nothing appeared under the hostile name.
        const src = path.join(tmp.dir, 'ok.bin');
        const sha = await makeFile(src, 100_000, 73);
        const r = await runSend(['127.0.0.1', String(d.port), src, '--json', '--quiet'], { STX_HOME: path.join(tmp.dir, 'home') });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(await sha256File(path.join(out, 'ok.bin')), sha);
        assert.ok(!existsSync(path.join(out, 'hostile.bin')), 'no partial under its final name');
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
