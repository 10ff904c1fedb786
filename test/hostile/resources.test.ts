// Hostile clients against a real stx-recv, part 5: resources (§9.6, DESIGN "Resources and
// backpressure"). 500 connections stalled in the handshake (slowloris) and 500 idle authenticated
// ones must not block a normal upload and must be closed by the timeouts; a client that never
// reads what the daemon sends must not make it buffer without bound; the daemon's memory (VmHWM,
// its peak resident set) stays under RSS_BOUND_BYTES throughout.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeFrame } from '../../src/proto/codec.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import { mapPool } from '../support/pool.js';
import { makeFile, readJsonLine, RECV_CLI, sha256File, tempDir } from '../support/procs.js';
import { establishedOn, fdLimit, memoryOf, RSS_BOUND_BYTES, startArena, waitUntil, type Arena } from './harness.js';
import { dataBody, lengthPrefix, RawClient, sampleFrame } from './raw-client.js';

const MiB = 1024 * 1024;
const STALLS = 500;
const IDLE = 500;
/**
 * These suites open hundreds of connections from 127.0.0.1 at once, more than the per-source
 * handshake limits allow (§9.6, handshake-flood.test.ts shows those): lifted here.
 */
const NO_HANDSHAKE_LIMITS = ['--max-handshakes', '100000', '--max-handshakes-per-source', '100000', '--handshake-rate-per-source', '0'];
/** The daemon needs a descriptor per connection plus its own; ask for room if the limit is low. */
const FD_OPTS = fdLimit() < 4096 ? { fdLimit: 4096 } : {};

/** Samples the daemon's RSS every 100 ms until stopped; returns the highest seen. */
function sampleRss(pid: number): { stop: () => number } {
  let peak = 0;
  const take = (): void => {
    try {
      peak = Math.max(peak, memoryOf(pid).rssBytes);
    } catch {
      // The process is gone; the caller's assertions say so.
    }
  };
  take();
  // Unref'd: a test that fails before stop() must not keep its file's process alive for ever.
  const timer = setInterval(take, 100).unref();
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** A normal upload with the real stx-send: its wall time and its result checked. */
async function timedUpload(a: Arena, file: string, sha: string, name: string): Promise<number> {
  const t0 = Date.now();
  const r = await a.send(file, ['--as', name, '--retries', '0']);
  const ms = Date.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  assert.equal((readJsonLine(r.stdout))['sha256'], sha);
  assert.equal(await sha256File(path.join(a.out, name)), sha);
  return ms;
}

type StallKind = 'silent' | 'preamble' | 'drip' | 'hello';
const STALL_KINDS: readonly StallKind[] = ['silent', 'preamble', 'drip', 'hello'];
const HANDSHAKE_TIMEOUT_MS = 4000;
const DRIP_EVERY_MS = 150;

describe(`slowloris: ${STALLS} connections stalled in the handshake`, () => {
  let a: Arena;
  before(async () => {
    a = await startArena(['--handshake-timeout', `${HANDSHAKE_TIMEOUT_MS / 1000}s`, '--idle-timeout', '60s', ...NO_HANDSHAKE_LIMITS], FD_OPTS);
  });
  after(() => a.close('at the end'));

  it('a normal upload is not blocked, and every stalled connection is closed by the handshake timeout', { timeout: 90_000 }, async () => {
    const file = path.join(a.src, 'normal.bin');
    const sha = await makeFile(file, 8 * MiB, 77);
    const alone = await timedUpload(a, file, sha, 'alone.bin');
    const rss = sampleRss(a.daemon.proc.pid ?? 0);

    // Four kinds: nothing at all; a preamble, then nothing; a preamble and CLIENT_HELLO one byte
    // at a time (each byte resets an idle timer, not the handshake timer); a whole CLIENT_HELLO,
    // then nothing (the server has sent SERVER_HELLO and has no keys to say TIMEOUT with, §6).
    const hello = Buffer.concat([encodePreamble(), encodeFrame(sampleFrame('CLIENT_HELLO'))]);
    const kinds = Array.from({ length: STALLS }, (_, i) => STALL_KINDS[i % STALL_KINDS.length] ?? 'silent');
    const stalls = await mapPool(kinds, 50, async (kind) => {
      const c = await RawClient.connect(a.daemon.port);
      const opened = Date.now();
      if (kind === 'preamble') await c.write(encodePreamble());
      if (kind === 'hello') await c.write(hello);
      return { c, kind, opened, closedAt: 0 };
    });
    let dripAt = 0;
    const dripper = setInterval(() => {
      for (const s of stalls) if (s.kind === 'drip' && !s.c.serverEnded && dripAt < hello.length) s.c.writeNoWait(hello.subarray(dripAt, dripAt + 1));
      dripAt++;
    }, DRIP_EVERY_MS);
    for (const s of stalls) void s.c.waitClosed(HANDSHAKE_TIMEOUT_MS + 20_000).then(() => (s.closedAt = Date.now()));
    try {
      assert.ok(establishedOn(a.daemon.port) >= STALLS, `the daemon holds all ${STALLS} stalled connections`);
      assert.ok(stalls.every((s) => s.closedAt === 0), 'every stall is still open when the upload starts');
      const loaded = await timedUpload(a, file, sha, 'under-slowloris.bin');
      assert.ok(loaded < 5 * alone + 2000, `upload took ${loaded} ms under ${STALLS} stalls vs ${alone} ms alone`);

      const latest = Math.max(...stalls.map((s) => s.opened));
      const allClosed = await waitUntil(() => stalls.every((s) => s.closedAt > 0), latest + HANDSHAKE_TIMEOUT_MS + 5000 - Date.now());
      assert.ok(allClosed, `${stalls.filter((s) => s.closedAt === 0).length} stalled connections still open`);
    } catch (err) {
      for (const s of stalls) s.c.destroy();
      throw err;
    } finally {
      clearInterval(dripper);
    }
    for (const s of stalls) {
      const lived = s.closedAt - s.opened;
      assert.ok(lived >= HANDSHAKE_TIMEOUT_MS - 500 && lived <= HANDSHAKE_TIMEOUT_MS + 5000, `${s.kind}: closed after ${lived} ms`);
    }
    // What each kind saw: the preamble and ERROR TIMEOUT in plaintext, or for 'hello' SERVER_HELLO
    // and then a close without a word.
    const seen = new Map<string, number>();
    for (const s of stalls) {
      const p = await s.c.readPreamble(100);
      assert.ok(p !== null, `${s.kind}: the server's preamble`);
      const o = await s.c.outcome(100, 0);
      const expect = s.kind === 'hello' ? 'CLOSED' : 'TIMEOUT';
      const got = s.kind === 'hello' ? o.code : o.via === 'ERROR' ? o.code : `${o.code} via ${o.via}`;
      if (s.kind === 'hello') assert.deepEqual(o.before.map((f) => f.type), ['SERVER_HELLO']);
      assert.equal(got, expect, s.kind);
      seen.set(s.kind, (seen.get(s.kind) ?? 0) + 1);
      s.c.destroy();
    }
    assert.deepEqual([...seen.values()], STALL_KINDS.map(() => STALLS / STALL_KINDS.length));
    assert.ok(await waitUntil(() => establishedOn(a.daemon.port) === 0, 5000), 'the daemon holds no connection any more');
    const peak = rss.stop();
    assert.ok(peak < RSS_BOUND_BYTES, `peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    a.assertMemoryBounded('after slowloris');
    await a.assertServes('after slowloris');
  });
});

describe(`${IDLE} idle authenticated connections`, () => {
  const IDLE_TIMEOUT_MS = 10_000;
  let a: Arena;
  before(async () => {
    a = await startArena(['--handshake-timeout', '30s', '--idle-timeout', `${IDLE_TIMEOUT_MS / 1000}s`, ...NO_HANDSHAKE_LIMITS], FD_OPTS);
  });
  after(() => a.close('at the end'));

  it('a normal upload is not blocked, and each is closed with TIMEOUT after the idle timeout', { timeout: 120_000 }, async () => {
    const file = path.join(a.src, 'normal.bin');
    const sha = await makeFile(file, 8 * MiB, 78);
    const alone = await timedUpload(a, file, sha, 'alone.bin');
    const rss = sampleRss(a.daemon.proc.pid ?? 0);
    const idle = await mapPool(Array.from({ length: IDLE }, (_, i) => i), 25, async () => {
      const c = await RawClient.connect(a.daemon.port);
      const s = await c.handshake({}, 30_000);
      assert.ok(s !== null);
      return { c, ready: Date.now(), closedAt: 0 };
    });
    for (const s of idle) void s.c.waitClosed(IDLE_TIMEOUT_MS + 30_000).then(() => (s.closedAt = Date.now()));
    assert.ok(establishedOn(a.daemon.port) >= IDLE, `the daemon holds all ${IDLE} authenticated connections`);
    const loaded = await timedUpload(a, file, sha, 'under-idle.bin');
    assert.ok(loaded < 5 * alone + 2000, `upload took ${loaded} ms beside ${IDLE} idle connections vs ${alone} ms alone`);

    const latest = Math.max(...idle.map((s) => s.ready));
    const allClosed = await waitUntil(() => idle.every((s) => s.closedAt > 0), latest + IDLE_TIMEOUT_MS + 5000 - Date.now());
    assert.ok(allClosed, `${idle.filter((s) => s.closedAt === 0).length} idle connections still open`);
    for (const s of idle) {
      const lived = s.closedAt - s.ready;
      assert.ok(lived >= IDLE_TIMEOUT_MS - 1000 && lived <= IDLE_TIMEOUT_MS + 5000, `closed ${lived} ms after the handshake`);
      const o = await s.c.outcome(100, 0);
      assert.equal(o.code, 'TIMEOUT', `a readable ERROR TIMEOUT (${o.via})`);
      assert.equal(o.via, 'ERROR');
      s.c.destroy();
    }
    assert.ok(await waitUntil(() => establishedOn(a.daemon.port) === 0, 5000), 'the daemon holds no connection any more');
    const peak = rss.stop();
    assert.ok(peak < RSS_BOUND_BYTES, `peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    a.assertMemoryBounded('after idle connections');
    await a.assertServes('after idle connections');
  });
});

describe('clients that do not read', () => {
  const IDLE_TIMEOUT_MS = 4000;
  let a: Arena;
  before(async () => {
    a = await startArena(['--handshake-timeout', '5s', '--idle-timeout', `${IDLE_TIMEOUT_MS / 1000}s`]);
  });
  after(() => a.close('after non-reading clients'));

  // The PING flood from a client that never reads is hostile/memory.test.ts's: it counts the
  // PONG records the daemon holds, which is the bound that matters (issue 14, item 3).

  it('256 MiB of DATA from a client that never reads the ACKs: bounded memory, and the file arrives', { timeout: 120_000 }, async () => {
    const SIZE = 256 * MiB;
    const chunk = Buffer.alloc(MiB);
    const hash = createHash('sha256');
    const c = await RawClient.connect(a.daemon.port);
    const rss = sampleRss(a.daemon.proc.pid ?? 0);
    try {
      assert.ok(await c.handshake());
      assert.equal(await c.open('noread/big.bin', SIZE), 0);
      c.socket.pause();
      const end = Date.now() + 60_000;
      for (let at = 0; at < SIZE; at += chunk.length) {
        assert.ok(Date.now() < end, 'sent within 60 s');
        chunk.writeUInt32BE(at / MiB, 0);
        hash.update(chunk);
        if (!c.writeNoWait(c.seal(dataBody(at, chunk)))) assert.ok(await c.drain(10_000), `the daemon keeps reading (at ${at})`);
      }
      const sha = hash.digest();
      await c.send({ type: 'END', sha256: sha });
      c.socket.resume();
      const done = await c.untilFrame('DONE', 30_000);
      assert.deepEqual(done.sha256, sha);
      const peak = rss.stop();
      assert.ok(peak < RSS_BOUND_BYTES, `peak RSS ${(peak / MiB).toFixed(1)} MiB`);
    } finally {
      rss.stop();
      c.destroy();
    }
  });

  it('a DATA-sized record outside an upload is FRAME_TOO_LARGE at once', async () => {
    const c = await RawClient.connect(a.daemon.port);
    try {
      assert.ok(await c.handshake());
      await c.write(lengthPrefix(1_048_601), Buffer.alloc(1000));
      const o = await c.outcome(5000);
      assert.equal(o.code, 'FRAME_TOO_LARGE');
    } finally {
      c.destroy();
    }
    await a.assertServes('after a DATA-sized record outside an upload');
  });

  it('a record whose body never comes is dropped by the idle timeout', async () => {
    const c = await RawClient.connect(a.daemon.port);
    try {
      assert.ok(await c.handshake());
      await c.open('never-completes.bin', 10_000_000);
      await c.write(lengthPrefix(1_048_601), Buffer.alloc(1000));
      const t0 = Date.now();
      const o = await c.outcome(IDLE_TIMEOUT_MS + 5000);
      assert.equal(o.code, 'TIMEOUT');
      assert.ok(Date.now() - t0 < IDLE_TIMEOUT_MS + 3000);
    } finally {
      c.destroy();
    }
    await a.assertServes('after a record that never completes');
  });
});

describe('incomplete records from many connections', () => {
  let b: Arena;
  before(async () => {
    b = await startArena(['--handshake-timeout', '10s', '--idle-timeout', '30s', ...NO_HANDSHAKE_LIMITS], FD_OPTS);
  });
  // Its memory is what the case below measures; the other suites check theirs.
  after(() => b.close('after incomplete records', { memory: false }));

  it(
    '256 authenticated connections each announcing a maximal record outside an upload: refused before buffering, memory stays under the bound',
    {},
    async () => {
      const N = 256;
      const rss = sampleRss(b.daemon.proc.pid ?? 0);
      const held = await mapPool(Array.from({ length: N }, (_, i) => i), 32, async () => {
        const c = await RawClient.connect(b.daemon.port);
        assert.ok(await c.handshake());
        // A record announcing the maximum, all but its last byte.
        await c.write(lengthPrefix(1_048_601), Buffer.alloc(1_048_600, 0x33));
        return c;
      });
      try {
        await new Promise((r) => setTimeout(r, 500));
        const peak = rss.stop();
        assert.ok(peak < RSS_BOUND_BYTES, `peak RSS ${(peak / MiB).toFixed(1)} MiB with ${N} incomplete records`);
      } finally {
        rss.stop();
        for (const c of held) c.destroy();
      }
    },
  );
});

describe('the connection limit (§9.6)', () => {
  const LIMIT = 20;
  let a: Arena;
  before(async () => {
    a = await startArena(['--max-connections', String(LIMIT), '--handshake-timeout', '2s', '--idle-timeout', '10s']);
  });
  after(() => a.close('after the connection limit'));

  it(`${LIMIT} stalled connections fill the limit: a newcomer gets its preamble and TOO_MANY_CONNECTIONS, and stx-send gets through once the stalls time out`, { timeout: 60_000 }, async () => {
    const stalls = await Promise.all(Array.from({ length: LIMIT }, () => RawClient.connect(a.daemon.port)));
    try {
      assert.ok(await waitUntil(() => establishedOn(a.daemon.port) >= LIMIT, 5000));
      const extra = await RawClient.connect(a.daemon.port);
      try {
        const p = await extra.readPreamble();
        assert.deepEqual(p, encodePreamble(1), 'the preamble first, even for a refusal (§3)');
        const o = await extra.outcome();
        assert.equal(o.code, 'TOO_MANY_CONNECTIONS');
        assert.equal(o.via, 'ERROR');
      } finally {
        extra.destroy();
      }
      const file = path.join(a.src, 'limit.bin');
      const sha = await makeFile(file, 100_000, 5);
      // TOO_MANY_CONNECTIONS is transient: stx-send retries until the stalls are timed out.
      const r = await a.send(file, ['--as', 'limit.bin', '--retries', '8', '--backoff', '250']);
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['sha256'], sha);
      assert.ok(typeof json['reconnects'] === 'number' && json['reconnects'] >= 1, `stx-send was refused first (${String(json['reconnects'])} reconnects)`);
      assert.ok(stalls.every((c) => c.serverEnded), 'the stalled connections were closed by the handshake timeout');
    } finally {
      for (const c of stalls) c.destroy();
    }
  });
});

describe('daemon lifecycle', () => {
  it(
    'SIGTERM right after stx-recv announced "listening" exits 0 (clean shutdown)',
    { timeout: 60_000 },
    async () => {
      const tmp = await tempDir('stx-sigterm-');
      try {
        const codes: Array<number | string> = [];
        for (let i = 0; i < 10; i++) {
          const proc = spawn(process.execPath, [RECV_CLI, '--listen', '127.0.0.1:0', '--out', path.join(tmp.dir, 'out'), '--key', path.join(tmp.dir, 'k.pem')], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let err = '';
          proc.stderr.setEncoding('utf8').on('data', (d: string) => {
            err += d;
            if (/listening on/.test(err) && !proc.killed) proc.kill('SIGTERM');
          });
          const killer = setTimeout(() => proc.kill('SIGKILL'), 20_000);
          codes.push(await new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1))));
          clearTimeout(killer);
        }
        assert.deepEqual(codes, codes.map(() => 0), `exit codes: ${codes.join(', ')}`);
      } finally {
        await tmp.cleanup();
      }
    },
  );
});
