// Handshake admission (src/recv/admission.ts, spec/PROTOCOL.md §9.6): which source a remote address
// counts as, the three bounds (in progress in all, in progress per source, started per second per
// source) on a clock the test moves, the once-a-second log of refusals, and, against a real server
// in this process, that a refused connection costs no X25519 key and no RSA decryption (the
// node:crypto calls are counted, not replaced).
import assert from 'node:assert/strict';
import crypto, { randomBytes } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import net from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it, mock } from 'node:test';
import { pino } from 'pino';
import { encodeFrame } from '../src/proto/codec.js';
import { codeFromWire } from '../src/proto/errors.js';
import { encodePreamble } from '../src/proto/preamble.js';
import { HandshakeAdmission, sourceOf, type Admission, type HandshakeTicket } from '../src/recv/admission.js';
import { startServer } from '../src/recv/server.js';
import { FrameChannel } from '../src/crypto/channel.js';
import { tempDir } from './support/procs.js';
import { vectorServerKey } from './support/vector-key.js';
import { sampleFrame } from './hostile/raw-client.js';

/** A logger whose JSON lines the test reads back. */
function capturedLog(): { log: pino.Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(chunk.toString('utf8'));
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  return { log, lines: () => out.join('').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function ticketOf(a: Admission): HandshakeTicket {
  assert.ok(a.admitted, `admitted (${a.admitted ? '' : a.reason})`);
  return a.ticket;
}

function reasonOf(a: Admission): string {
  return a.admitted ? 'admitted' : a.reason;
}

describe('sources (§9.6): an IPv4 address, or an IPv6 /64', () => {
  it('maps addresses to their source', () => {
    const cases: ReadonlyArray<readonly [string | undefined, string]> = [
      ['192.0.2.7', '192.0.2.7'],
      ['::ffff:192.0.2.7', '192.0.2.7'],
      ['::FFFF:192.0.2.7', '192.0.2.7'],
      ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
      ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
      ['2001:0db8:0001:0002:ffff::', '2001:db8:1:2::/64'],
      ['2001:db8::1', '2001:db8:0:0::/64'],
      ['::1', '0:0:0:0::/64'],
      ['fe80::1%eth0', 'fe80:0:0:0::/64'],
      ['64:ff9b::192.0.2.7', '64:ff9b:0:0::/64'],
      [undefined, 'unknown'],
    ];
    for (const [address, source] of cases) assert.equal(sourceOf(address), source, String(address));
  });
});

describe('HandshakeAdmission: the bounds, on a clock the test moves', () => {
  const limits = { maxHandshakes: 4, maxHandshakesPerSource: 2, handshakeRatePerSource: 5 };
  let now = 0;
  const clock = (): number => now;

  it('handshakes in progress per source: the third from one address waits for one to end; another address is not affected', () => {
    const a = new HandshakeAdmission(limits, capturedLog().log, clock);
    try {
      const t1 = ticketOf(a.admit('192.0.2.1'));
      ticketOf(a.admit('192.0.2.1'));
      assert.equal(reasonOf(a.admit('192.0.2.1')), 'source');
      assert.equal(reasonOf(a.admit('::ffff:192.0.2.1')), 'source', 'the IPv4-mapped form is the same source');
      ticketOf(a.admit('192.0.2.2'));
      t1.end();
      t1.end();
      assert.equal(a.handshakesInProgress, 2, 'a second end() changes nothing');
      ticketOf(a.admit('192.0.2.1'));
      assert.equal(reasonOf(a.admit('192.0.2.1')), 'source');
    } finally {
      a.close();
    }
  });

  it('handshakes in progress in all: a new address is refused while the server holds its limit', () => {
    const a = new HandshakeAdmission(limits, capturedLog().log, clock);
    try {
      const held = ['192.0.2.1', '192.0.2.2', '2001:db8::1', '2001:db8::2'].map((ip) => ticketOf(a.admit(ip)));
      assert.equal(reasonOf(a.admit('198.51.100.1')), 'total');
      assert.equal(reasonOf(a.admit('2001:db8:0:0:ffff::3')), 'total', 'the /64 of two held ones: total is checked first');
      held[0]?.end();
      ticketOf(a.admit('198.51.100.1'));
    } finally {
      a.close();
    }
  });

  it('handshakes started per second: a source gets a burst of 2 s worth, then the rate; over T seconds at most burst + rate × T', () => {
    now = 1_000_000;
    const a = new HandshakeAdmission({ ...limits, maxHandshakes: 1000, maxHandshakesPerSource: 1000 }, capturedLog().log, clock);
    try {
      let admitted = 0;
      let refused = 0;
      // 100 attempts every 100 ms for 3 s, each handshake ending at once: only the rate limits it.
      for (let step = 0; step <= 30; step++) {
        for (let i = 0; i < 100; i++) {
          const r = a.admit('203.0.113.9');
          if (r.admitted) {
            admitted++;
            r.ticket.end();
          } else {
            assert.equal(r.reason, 'rate');
            refused++;
          }
        }
        now += 100;
      }
      // Burst 10 at once, then 5 per second for the 3 s that passed.
      assert.equal(admitted, 10 + 5 * 3);
      assert.equal(refused, 31 * 100 - admitted);
      ticketOf(a.admit('203.0.113.10'));
    } finally {
      a.close();
    }
  });

  it('rate 0 is no rate limit', () => {
    const a = new HandshakeAdmission({ ...limits, maxHandshakesPerSource: 1000, handshakeRatePerSource: 0 }, capturedLog().log, clock);
    try {
      for (let i = 0; i < 200; i++) ticketOf(a.admit('192.0.2.1')).end();
    } finally {
      a.close();
    }
  });

  it('refusals are logged once per interval and source, with what the source did; idle sources are forgotten', () => {
    now = 5_000_000;
    const { log, lines } = capturedLog();
    const a = new HandshakeAdmission(limits, log, clock);
    try {
      for (let i = 0; i < 20; i++) {
        const r = a.admit('192.0.2.50');
        if (r.admitted) {
          r.ticket.decrypting();
          r.ticket.end();
        }
      }
      ticketOf(a.admit('192.0.2.51')).end();
      a.flush();
      const logged = (): Record<string, unknown>[] => lines().filter((l) => l['event'] === 'handshake-limits');
      assert.equal(logged().length, 1, JSON.stringify(logged()));
      const first = logged()[0] ?? {};
      assert.deepEqual(
        { source: first['source'], refused: first['refused'], started: first['started'], decrypted: first['decrypted'], because: first['because'], total: first['total'] },
        { source: '192.0.2.50', refused: 10, started: 10, decrypted: 10, because: { total: 0, source: 0, rate: 10 }, total: { refused: 10, started: 10, decrypted: 10, ms: 0 } },
      );
      assert.equal(a.trackedSources, 2, 'both buckets are still refilling');
      now += 2000;
      ticketOf(a.admit('192.0.2.50')).decrypting();
      a.flush();
      // The interval after the last refusals is logged too: how the episode ended.
      const closing = logged()[1] ?? {};
      assert.deepEqual(
        { source: closing['source'], refused: closing['refused'], started: closing['started'], decrypted: closing['decrypted'], total: closing['total'] },
        { source: '192.0.2.50', refused: 0, started: 1, decrypted: 1, total: { refused: 10, started: 11, decrypted: 11, ms: 2000 } },
      );
      assert.equal(a.trackedSources, 1, 'the address with a handshake in progress is kept, the idle one forgotten');
      now += 2000;
      a.flush();
      assert.equal(logged().length, 2, 'nothing more to say');
    } finally {
      a.close();
    }
  });
});

describe('a refused connection costs no key generation and no decryption (a real server in this process)', () => {
  const counts = { privateDecrypt: 0, generateKeyPairSync: 0, diffieHellman: 0 };
  before(() => {
    for (const name of Object.keys(counts) as (keyof typeof counts)[]) {
      const original = crypto[name] as (...args: unknown[]) => unknown;
      mock.method(crypto, name, function (this: unknown, ...args: unknown[]) {
        counts[name]++;
        return original.apply(this, args);
      });
    }
    syncBuiltinESMExports();
  });
  after(() => {
    mock.restoreAll();
    syncBuiltinESMExports();
  });

  /**
   * One connection that sends its preamble and CLIENT_HELLO, and KEY_EXCHANGE (random bytes: the
   * server decrypts them all the same) if SERVER_HELLO comes; no cryptography on this side.
   */
  function attempt(port: number): Promise<'refused' | 'decrypted' | 'other'> {
    return new Promise((resolve) => {
      const rx = new FrameChannel();
      let preamble = false;
      let outcome: 'refused' | 'decrypted' | 'other' = 'other';
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write(Buffer.concat([encodePreamble(), encodeFrame(sampleFrame('CLIENT_HELLO'))])));
      const timer = setTimeout(() => socket.destroy(), 5000);
      socket.on('data', (d: Buffer) => {
        rx.push(d);
        preamble ||= rx.readPreamble() !== null;
        const got = preamble ? rx.next() : null;
        if (got === null) return;
        if (got.frame.type === 'ERROR' && codeFromWire(got.frame.code) === 'TOO_MANY_CONNECTIONS') outcome = 'refused';
        if (got.frame.type === 'SERVER_HELLO') {
          outcome = 'decrypted';
          socket.end(encodeFrame({ type: 'KEY_EXCHANGE', encrypted_secret: randomBytes(256) }));
          return;
        }
        socket.destroy();
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
  }

  it('30 attempts from one address against a burst of 6: each admitted one costs one X25519 key and one decryption, each refused one none', async () => {
    const tmp = await tempDir('stx-admission-');
    const { log, lines } = capturedLog();
    const server = await startServer({
      host: '127.0.0.1',
      port: 0,
      outDir: tmp.dir,
      serverKey: vectorServerKey(),
      authorizedKeys: null,
      appendOnly: false,
      maxConnections: 100,
      handshakes: { maxHandshakes: 100, maxHandshakesPerSource: 100, handshakeRatePerSource: 3 },
      partialTtlMs: 3_600_000,
      log,
    });
    try {
      counts.privateDecrypt = 0;
      counts.generateKeyPairSync = 0;
      counts.diffieHellman = 0;
      const outcomes: string[] = [];
      for (let i = 0; i < 30; i++) outcomes.push(await attempt(server.address.port));
      const decrypted = outcomes.filter((o) => o === 'decrypted').length;
      const refused = outcomes.filter((o) => o === 'refused').length;
      assert.equal(decrypted + refused, 30, outcomes.join(' '));
      // A burst of 6, plus 3 per second for however long the 30 attempts took.
      assert.ok(decrypted >= 6 && refused >= 1, `${decrypted} admitted, ${refused} refused`);
      assert.ok(await waitFor(() => counts.privateDecrypt >= decrypted), 'the server decrypted each KEY_EXCHANGE it got');
      assert.equal(counts.privateDecrypt, decrypted, 'one decryption per admitted handshake, none per refusal');
      assert.equal(counts.generateKeyPairSync, decrypted, 'one X25519 key per admitted connection, none per refusal');
      assert.equal(counts.diffieHellman, decrypted, 'one X25519 agreement per admitted connection');
    } finally {
      await server.shutdown();
      await tmp.cleanup();
    }
    const logged = lines().filter((l) => l['event'] === 'handshake-limits');
    assert.ok(logged.length >= 1, 'the refusals were logged at shutdown at the latest');
    assert.equal(logged.reduce((n, l) => n + Number(l['refused']), 0) > 0, true);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}
