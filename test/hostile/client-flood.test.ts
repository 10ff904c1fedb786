// A server that floods the client with PINGs and never reads the PONGs (issue 14, client item 12):
// every PING asks for an answer, so a client that kept reading would queue PONGs without bound.
// The real stx-send must stop reading once its unsent output is over its bound (counted in
// records as well as bytes: a PONG is a few dozen bytes, its queue entry several times that), keep
// its memory bounded, and give up by its idle timeout, since nothing it may read arrives.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeBody } from '../../src/proto/codec.js';
import { makeFile, spawnSend, tempDir, watchSend } from '../support/procs.js';
import { startEvilServer } from './evil-server.js';
import { memoryOf } from './harness.js';

const MiB = 1024 * 1024;
/** The client's resident memory must stay under this while flooded (Node itself takes ~60 MiB). */
const CLIENT_RSS_BOUND_BYTES = 200 * MiB;

/** Recv-Q (bytes the kernel holds, unread by the client) of the client's sockets to `port`. */
function clientUnread(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  return Math.max(0, ...out.split('\n').filter((l) => l.trim() !== '').map((l) => Number(l.trim().split(/\s+/)[0] ?? 0)));
}

/** Whether the client leaves the same bytes unread, more than none, for all of `ms`. */
async function unreadStaysPut(port: number, ms: number): Promise<boolean> {
  const first = clientUnread(port);
  if (first === 0) return false;
  for (let waited = 0; waited < ms; waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    if (clientUnread(port) !== first) return false;
  }
  return true;
}

interface Flood {
  ms: number;
  pings: number;
  stuck: boolean;
  peakRss: number;
}

describe('stx-send flooded with PINGs by a server that reads nothing', () => {
  it('stops reading, keeps its memory bounded, and gives up by its idle timeout', { timeout: 180_000 }, async (t) => {
    const FLOOD_MS = 60_000;
    const MAX_PINGS = 3_000_000;
    /** How long our writes must make no progress before we look at the client's unread bytes. */
    const BLOCKED_MS = 1000;
    /**
     * How long those must then stay the same, and above 0, to call the client stopped: one that
     * merely falls behind (a loaded machine) reads some of them meanwhile, and in the end all.
     */
    const SETTLE_MS = 5000;
    // Well over the time it takes to see the client stopped (BLOCKED_MS + SETTLE_MS) on a loaded
    // machine: the client's no-progress timer runs from OPEN, so it must not end the flood first.
    const IDLE_S = 30;
    const tmp = await tempDir('stx-flood-');
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const flood: Flood = { ms: 0, pings: 0, stuck: false, peakRss: 0 };
    let clientPid = 0;
    let flooded: () => void = () => undefined;
    const floodOver = new Promise<void>((resolve) => (flooded = resolve));
    // The flooding connection stays open until the client is gone: it must end by itself.
    let clientGone: () => void = () => undefined;
    const clientExited = new Promise<void>((resolve) => (clientGone = resolve));
    const evil = await startEvilServer(key, async (p, hs) => {
      try {
        if (!(await hs())) return;
        await p.expectFrame('OPEN');
        // Never answer the OPEN, never read again: only PINGs, as fast as the client takes them.
        p.socket.pause();
        const ping = encodeBody({ type: 'PING', seq: Number.MAX_SAFE_INTEGER });
        const end = Date.now() + FLOOD_MS;
        let blockedSince = 0;
        while (Date.now() < end && flood.pings < MAX_PINGS && !p.serverEnded && !flood.stuck) {
          if (clientPid !== 0) flood.peakRss = Math.max(flood.peakRss, memoryOf(clientPid).rssBytes);
          if (p.socket.writableNeedDrain) {
            if (await p.drain(100)) blockedSince = 0;
            else if (blockedSince === 0) blockedSince = Date.now();
            else if (Date.now() - blockedSince >= BLOCKED_MS) {
              flood.stuck = await unreadStaysPut(evil.port, SETTLE_MS);
              blockedSince = 0;
            }
            continue;
          }
          const batch: Buffer[] = [];
          for (let i = 0; i < 2000; i++) batch.push(p.seal(ping));
          flood.pings += batch.length;
          p.writeNoWait(Buffer.concat(batch));
        }
        if (clientPid !== 0) flood.peakRss = Math.max(flood.peakRss, memoryOf(clientPid).rssBytes);
        flood.ms = Date.now() - (end - FLOOD_MS);
        flooded();
        await clientExited;
      } finally {
        flooded();
      }
    });
    try {
      const file = path.join(tmp.dir, 'f.bin');
      await makeFile(file, 100_000, 5);
      const args = ['127.0.0.1', String(evil.port), file, '--fingerprint', evil.fingerprint, '--quiet', '--retries', '0', '--idle-timeout', `${IDLE_S}s`];
      const client = watchSend(spawnSend(args, { STX_HOME: tmp.dir }));
      clientPid = client.proc.pid ?? 0;
      void client.exited.then(clientGone);
      try {
        await floodOver;
        t.diagnostic(`${flood.pings} PINGs in ${flood.ms} ms, client peak RSS ${(flood.peakRss / MiB).toFixed(1)} MiB, stopped reading: ${String(flood.stuck)}`);
        assert.ok(flood.peakRss < CLIENT_RSS_BOUND_BYTES, `client peak RSS ${(flood.peakRss / MiB).toFixed(1)} MiB after ${flood.pings} PINGs`);
        assert.ok(flood.stuck, `the client stopped reading a server that does not read its PONGs (${flood.pings} PINGs sent)`);
        // Nothing arrives any more and nothing moves on: the idle timeout ends it (exit 3, TIMEOUT).
        const r = await Promise.race([client.result, new Promise<null>((resolve) => setTimeout(() => resolve(null), (IDLE_S + 20) * 1000))]);
        assert.ok(r !== null, 'stx-send ended by itself');
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, new RegExp(`TIMEOUT: .*(sent nothing|made no progress) for ${IDLE_S * 1000} ms`));
      } finally {
        client.proc.kill('SIGKILL');
        clientGone();
      }
    } finally {
      await evil.close();
      await tmp.cleanup();
    }
  });
});
