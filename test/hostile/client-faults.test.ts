// Fault injection for the CLIENT (issue "Hardening", part 3): the real stx-send against a fault
// proxy in front of a real stx-recv that resets, closes, stalls or corrupts at random points of
// the handshake and the data, over 50 seeded trials; and against evil servers built from our own
// ServerHandshake that misbehave on purpose. Every run must end with the identical file (exit 0)
// or a clear error and its exit code (3 after the retries, or the code of §10); never a hang past
// the timeouts, never a wrong file.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FrameChannel } from '../../src/crypto/channel.js';
import { ServerHandshake } from '../../src/crypto/index.js';
import { ERRORS } from '../../src/proto/errors.js';
import type { Frame } from '../../src/proto/frames.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import { mapPool } from '../support/pool.js';
import { makeFile, readJsonLine, runSend, sha256File, type SendResult } from '../support/procs.js';
import { startFaultProxy, type Fault, type FaultKind } from './fault-proxy.js';
import { startArena, type Arena } from './harness.js';
import { startEvilServer, type EvilServer, type Script } from './evil-server.js';
import { lengthPrefix, RawClient, serveUntilKeys } from './raw-client.js';
import { prng } from '../support/prng.js';

const MiB = 1024 * 1024;
const TRIALS = 50;
/**
 * Trials run this many at a time, each with its own proxy and remote name. Most of a trial is
 * waiting (stalls, timeouts, backoff), so four share the machine without slowing each other.
 */
const PARALLEL = 4;
/** Kill stx-send after this long and fail: it must always end by itself well before. */
const HANG_BOUND_MS = 45_000;
/** Bytes of the handshake and OPEN, client→server and server→client (roughly, for aiming faults). */
const UP_HANDSHAKE_BYTES = 620;
const DOWN_BYTES = 700;
const RETRIES = 3;
/** Server→client bytes up to the end of SERVER_HELLO (preamble, then a 3072-bit server_key). */
const SERVER_HELLO_END = 600;

const SEED = Number(process.env['STX_FAULT_SEED'] ?? Date.now() % 2 ** 31);

interface Trial {
  readonly n: number;
  readonly size: number;
  readonly faults: readonly Fault[];
}

function planTrials(seed: number): Trial[] {
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[Math.floor(rnd() * xs.length)];
    if (x === undefined) throw new Error('empty choice');
    return x;
  };
  const kinds: readonly FaultKind[] = ['reset', 'reset', 'close', 'close', 'stall-reset', 'stall-close', 'stall-resume', 'stall-resume', 'corrupt', 'corrupt'];
  const sizes = [0, 1, 1000, 65_536, 300_000, MiB + 17, 2 * MiB - 5];
  return Array.from({ length: TRIALS }, (_, n) => {
    const size = pick(sizes);
    // Mostly fewer faulty connections than retries (the upload must succeed), sometimes more.
    const count = rnd() < 0.15 ? RETRIES + 2 : 1 + Math.floor(rnd() * 3);
    const faults = Array.from({ length: count }, (): Fault => {
      const kind = pick(kinds);
      const direction = rnd() < 0.7 ? 'up' : 'down';
      const phase = rnd();
      const at =
        direction === 'down'
          ? Math.floor(rnd() * DOWN_BYTES)
          : phase < 0.4 || size === 0
            ? Math.floor(rnd() * UP_HANDSHAKE_BYTES)
            : UP_HANDSHAKE_BYTES + Math.floor(rnd() * (size + 60));
      return { kind, direction, at, stallMs: 100 + Math.floor(rnd() * 700) };
    });
    return { n, size, faults };
  });
}

/** A clear error: the stable code on stderr (README: every message names its code). */
function assertClearError(r: SendResult, label: string): void {
  assert.match(r.stderr, /stx-send: error: [A-Z_]+: /, `${label}: a clear error with its code:\n${r.stderr}`);
}

describe(`stx-send through a fault proxy: ${TRIALS} seeded trials`, () => {
  let arena: Arena;
  before(async () => {
    // Short server timeouts, so that a connection the proxy broke mid-frame is dropped quickly.
    arena = await startArena(['--handshake-timeout', '2s', '--idle-timeout', '3s']);
  });
  after(() => arena.close('after the client fault trials'));

  it(`every trial ends with the identical file (exit 0) or a clear error (exit 3), in bounded time (seed ${SEED})`, { timeout: 10 * 60_000 }, async (t) => {
    t.diagnostic(`seed ${SEED} (replay with STX_FAULT_SEED=${SEED})`);
    process.stderr.write(`client-faults: seed ${SEED} (replay with STX_FAULT_SEED=${SEED})\n`);
    const trials = planTrials(SEED);
    const outcomes = new Map<number, number>();
    let fired = 0;
    const run = async (trial: Trial): Promise<void> => {
      const label = `trial ${trial.n} (seed ${SEED}, ${trial.size} bytes, faults ${JSON.stringify(trial.faults)})`;
      const file = path.join(arena.src, `trial-${trial.n}.bin`);
      const sha = await makeFile(file, trial.size, 1000 + trial.n);
      const name = `trials/${trial.n}.bin`;
      const proxy = await startFaultProxy(arena.daemon.port, trial.faults);
      const t0 = Date.now();
      let r: SendResult;
      try {
        r = await runSend(
          ['127.0.0.1', String(proxy.port), file, '--as', name, '--fingerprint', arena.daemon.fingerprint, '--json', '--quiet', '--retries', String(RETRIES), '--backoff', '30'],
          { STX_HOME: arena.home },
          HANG_BOUND_MS,
        );
      } finally {
        fired += proxy.fired;
        await proxy.close();
      }
      const ms = Date.now() - t0;
      assert.ok(ms < HANG_BOUND_MS - 1000, `${label}: stx-send hung (${ms} ms, killed)`);
      outcomes.set(r.code, (outcomes.get(r.code) ?? 0) + 1);
      // A flipped bit in SERVER_HELLO's server_key is a different key: exit 4, as it must be.
      const keyFlip = trial.faults.some((f) => f.kind === 'corrupt' && f.direction === 'down' && f.at < SERVER_HELLO_END);
      const allowed = keyFlip ? [0, 3, 4] : [0, 3];
      assert.ok(allowed.includes(r.code), `${label}: exit ${r.code}\n${r.stderr}`);
      const final = path.join(arena.out, name);
      if (r.code === 0) {
        assert.equal((readJsonLine(r.stdout))['sha256'], sha, label);
        assert.equal(await sha256File(final), sha, `${label}: the stored file is identical`);
      } else {
        assertClearError(r, label);
        // The server may have published before the client heard DONE; then it is the right file.
        if (existsSync(final)) assert.equal(await sha256File(final), sha, `${label}: never a wrong file`);
      }
    };
    await mapPool(trials, PARALLEL, run);
    t.diagnostic(`exit codes: ${JSON.stringify(Object.fromEntries(outcomes))}; faults fired: ${fired}`);
    assert.ok((outcomes.get(0) ?? 0) >= TRIALS / 2, `most trials succeed: ${JSON.stringify(Object.fromEntries(outcomes))}`);
    assert.ok(fired >= TRIALS, `faults really fired (${fired})`);
    await arena.assertServes('after the fault trials');
  });

  it('a black hole mid-data (no byte either way, no close): stx-send gives up by itself', { timeout: 60_000 }, async () => {
    const file = path.join(arena.src, 'blackhole.bin');
    await makeFile(file, 4 * MiB, 31);
    const proxy = await startFaultProxy(arena.daemon.port, [{ kind: 'blackhole', direction: 'up', at: UP_HANDSHAKE_BYTES + MiB }]);
    const BOUND_MS = 9000;
    const t0 = Date.now();
    try {
      // With a client idle timeout (the flag asked for in the report), make it short here.
      const help = await runSend(['--help']);
      const flags = /--idle-timeout/.test(help.stdout) ? ['--idle-timeout', '3s'] : [];
      const r = await runSend(
        ['127.0.0.1', String(proxy.port), file, '--as', 'blackhole.bin', '--fingerprint', arena.daemon.fingerprint, '--quiet', '--retries', '0', ...flags],
        { STX_HOME: arena.home },
        BOUND_MS,
      );
      assert.ok(Date.now() - t0 < BOUND_MS - 500, `stx-send still waiting after ${BOUND_MS} ms (killed)`);
      assert.equal(r.code, 3, r.stderr);
      assertClearError(r, 'black hole');
    } finally {
      await proxy.close();
    }
  });
});

// ---- evil servers -----------------------------------------------------------------------------

let evilKey: KeyObject;

/** An evil server (evil-server.ts) with this suite's key. */
const startEvil = (script: Script): Promise<EvilServer> => startEvilServer(evilKey, script);

/** Waits for OPEN and answers OPEN_OK at `offset`; returns the OPEN. */
async function acceptOpen(peer: RawClient, offset = 0): Promise<Extract<Frame, { type: 'OPEN' }>> {
  const open = await peer.expectFrame('OPEN');
  await peer.send({ type: 'OPEN_OK', offset });
  return open;
}

/** Reads DATA until END; returns END's hash and the bytes received. */
async function readUntilEnd(peer: RawClient): Promise<Buffer> {
  for (let i = 0; i < 100_000; i++) {
    const got = await peer.next(10_000);
    if (got.kind !== 'frame') throw new Error(`connection ended before END: ${got.kind}`);
    if (got.frame.type === 'END') return got.frame.sha256;
  }
  throw new Error('no END');
}

describe('stx-send against evil servers', () => {
  let home: Arena;
  let file: string;
  before(async () => {
    evilKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    // Only for its temp tree and a file to send; the daemon is not used here.
    home = await startArena();
    file = path.join(home.src, 'evil.bin');
    await makeFile(file, 2 * MiB + 3, 99);
  });
  after(() => home.close('after the evil servers'));

  const cases: ReadonlyArray<{ name: string; exit: number; code: string; script: Script; check?: (s: EvilServer) => void }> = [
    { name: 'an HTTP response instead of the preamble', exit: 3, code: 'BAD_PREAMBLE', script: async (p) => p.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n')) },
    { name: 'a preamble selecting version 2', exit: 3, code: 'VERSION_UNSUPPORTED', script: async (p) => p.write(encodePreamble(2)) },
    {
      name: 'a length prefix of 2^32 − 1 after the preamble',
      exit: 3,
      code: 'FRAME_TOO_LARGE',
      script: async (p) => {
        await p.write(encodePreamble(1), lengthPrefix(0xffff_ffff));
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a SERVER_HELLO with a 1024-bit RSA key',
      exit: 3,
      code: 'HANDSHAKE_FAILED',
      script: async (p) => {
        const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
        await p.readPreamble();
        await p.write(encodePreamble(1));
        await p.next();
        await p.send({ type: 'SERVER_HELLO', random: Buffer.alloc(32, 1), x25519: Buffer.alloc(32, 9), server_key: weak });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a different server key than the pinned one: nothing about the file is sent',
      exit: 4,
      code: 'SERVER_KEY_MISMATCH',
      script: async (p) => {
        const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
        const hs = new ServerHandshake({ serverKey: other });
        const pre = await p.readPreamble();
        if (pre === null) return;
        await p.write(hs.onClientPreamble(pre));
        const hello = await p.next();
        if (hello.kind !== 'frame' || hello.frame.type !== 'CLIENT_HELLO') return;
        await p.write(hs.onClientHello(hello.raw, hello.frame));
        await p.waitClosed(10_000);
      },
      check: (s) => {
        assert.equal(s.received.length, 1, 'no retry after a key mismatch');
        const rx = new FrameChannel();
        rx.push(Buffer.concat(s.received.flat()));
        assert.ok(rx.readPreamble() !== null);
        const frames: string[] = [];
        for (let r = rx.next(); r !== null; r = rx.next()) frames.push(r.frame.type === 'ERROR' ? `ERROR ${r.frame.code}` : r.frame.type);
        // CLIENT_HELLO and nothing else: an untrusted server is not even told why the client leaves (§5).
        assert.deepEqual(frames, ['CLIENT_HELLO']);
        assert.equal(Buffer.concat(s.received.flat()).includes(Buffer.from('evil.bin')), false, 'not even the name');
      },
    },
    {
      name: 'SERVER_FINISHED with a wrong verify',
      exit: 3,
      code: 'HANDSHAKE_FAILED',
      script: async (p) => {
        const got = await serveUntilKeys(p, evilKey);
        if (got === null) return;
        p.sealer = got.keys.sealer;
        await p.write(p.sealFrame({ type: 'SERVER_FINISHED', verify: Buffer.alloc(32, 7) }));
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'OPEN_OK with an offset past the file size',
      exit: 3,
      code: 'BAD_OFFSET',
      script: async (p, hs) => {
        if (!(await hs())) return;
        const open = await p.expectFrame('OPEN');
        await p.send({ type: 'OPEN_OK', offset: open.size + 1 });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'DONE with a different SHA-256 than the file has',
      exit: 7,
      code: 'INTEGRITY_FAILED',
      script: async (p, hs) => {
        if (!(await hs())) return;
        const open = await acceptOpen(p);
        await readUntilEnd(p);
        await p.send({ type: 'DONE', size: open.size, sha256: Buffer.alloc(32, 1) });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'DONE right behind OPEN_OK, before any DATA',
      exit: 3,
      code: 'UNEXPECTED_FRAME',
      script: async (p, hs) => {
        if (!(await hs())) return;
        const open = await p.expectFrame('OPEN');
        await p.write(p.sealFrame({ type: 'OPEN_OK', offset: 0 }), p.sealFrame({ type: 'DONE', size: open.size, sha256: Buffer.alloc(32) }));
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a second SERVER_FINISHED after the handshake',
      exit: 3,
      code: 'UNEXPECTED_FRAME',
      script: async (p, hs) => {
        if (!(await hs())) return;
        await p.expectFrame('OPEN');
        await p.send({ type: 'SERVER_FINISHED', verify: Buffer.alloc(32) });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'ERROR NO_SPACE in answer to OPEN',
      exit: 6,
      code: 'NO_SPACE',
      script: async (p, hs) => {
        if (!(await hs())) return;
        await p.expectFrame('OPEN');
        await p.send({ type: 'ERROR', code: ERRORS.NO_SPACE.wire, message: 'evil says: disk full' });
      },
    },
    {
      name: 'GOAWAY on every connection: the client retries, then gives up',
      exit: 3,
      code: 'TIMEOUT',
      script: async (p, hs) => {
        if (!(await hs())) return;
        await p.send({ type: 'GOAWAY', code: ERRORS.SHUTTING_DOWN.wire, message: 'come back later' });
      },
      check: (s) => assert.equal(s.received.length, 3, 'one connection per attempt: 1 + --retries 2'),
    },
    {
      // §6: the first server record may be GOAWAY (shutdown while the server awaits
      // CLIENT_FINISHED); the client retries as for any GOAWAY instead of failing the handshake.
      name: 'GOAWAY instead of SERVER_FINISHED on every connection: the client retries, then gives up',
      exit: 3,
      code: 'TIMEOUT',
      script: async (p) => {
        const got = await serveUntilKeys(p, evilKey);
        if (got === null) return;
        p.sealer = got.keys.sealer;
        await p.write(p.sealFrame({ type: 'GOAWAY', code: ERRORS.SHUTTING_DOWN.wire, message: 'shutting down mid-handshake' }));
      },
      check: (s) => assert.equal(s.received.length, 3, 'one connection per attempt: 1 + --retries 2'),
    },
    {
      // §2, §8: a client never receives DATA, so a record longer than MAX_CONTROL_RECORD_LENGTH is
      // refused as soon as its length arrives, not waited for.
      name: 'a 16402-byte record announced after the handshake',
      exit: 3,
      code: 'FRAME_TOO_LARGE',
      script: async (p, hs) => {
        if (!(await hs())) return;
        await p.expectFrame('OPEN');
        await p.write(lengthPrefix(16_402));
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a record that fails to open after the handshake, on every connection',
      exit: 3,
      code: 'TIMEOUT',
      script: async (p, hs) => {
        if (!(await hs())) return;
        await p.expectFrame('OPEN');
        const ok = p.sealFrame({ type: 'OPEN_OK', offset: 0 });
        ok[ok.length - 1] = (ok[ok.length - 1] ?? 0) ^ 1;
        await p.write(ok);
        await p.waitClosed(10_000);
      },
    },
  ];

  it('ACKs past what was sent (fake progress) are BAD_OFFSET at once: one connection, no endless retries', { timeout: 60_000 }, async () => {
    const evil = await startEvil(async (p, hs) => {
      if (!(await hs())) return;
      await acceptOpen(p);
      await p.expectFrame('DATA');
      await p.send({ type: 'ACK', offset: 3 * MiB + 3 }); // more than the whole file
      await p.waitClosed(10_000);
    });
    try {
      const r = await runSend(['127.0.0.1', String(evil.port), file, '--as', 'evil.bin', '--fingerprint', evil.fingerprint, '--quiet', '--retries', '3', '--backoff', '20'], { STX_HOME: home.home }, HANG_BOUND_MS);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /error: BAD_OFFSET: the server acknowledged offset 3145731/);
      assert.equal(evil.received.length, 1, 'not retried: a server that lies about progress is not trusted again');
    } finally {
      await evil.close();
    }
  });

  // Liveness is progress (issue 14, item 12): a server that keeps talking (PINGs) but never moves
  // the transfer on must not keep the client alive; before, each PING reset the idle timer.
  for (const [label, stall] of [
    ['never sends DONE after END', async (p: RawClient) => {
      await readUntilEnd(p);
    }],
    ['stops reading after OPEN_OK', (p: RawClient) => Promise.resolve(p.socket.pause())],
  ] as const) {
    it(`a server that PINGs but ${label}: TIMEOUT within the idle timeout, not kept alive by its PINGs`, { timeout: 60_000 }, async () => {
      const evil = await startEvil(async (p, hs) => {
        if (!(await hs())) return;
        await acceptOpen(p);
        await stall(p);
        for (let i = 0; i < 150 && !p.serverEnded; i++) {
          p.writeNoWait(p.sealFrame({ type: 'PING', seq: i }));
          await new Promise((r) => setTimeout(r, 200));
        }
      });
      try {
        const t0 = Date.now();
        const r = await runSend(['127.0.0.1', String(evil.port), file, '--as', 'evil.bin', '--fingerprint', evil.fingerprint, '--quiet', '--retries', '0', '--idle-timeout', '2s'], { STX_HOME: home.home }, HANG_BOUND_MS);
        assert.ok(Date.now() - t0 < 20_000, `stx-send ran ${Date.now() - t0} ms: ${r.stderr}`);
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /error: TIMEOUT: .*the server made no progress for 2000 ms/);
      } finally {
        await evil.close();
      }
    });
  }

  it('trust on first use records a server key only once the server proved it holds it (SERVER_FINISHED)', { timeout: 60_000 }, async () => {
    // The first connection gets a responder that sends a SERVER_HELLO with the key but cannot
    // finish (as one that copied someone's public key could not); the later ones the real handshake.
    let connections = 0;
    const evil = await startEvil(async (p, handshake) => {
      if (++connections > 1) {
        await handshake(); // then the script ends and the connection is closed
        return;
      }
      await serveUntilKeys(p, evilKey); // and then, unable to finish, it goes away
    });
    const knownHosts = path.join(home.home, 'known_hosts.tofu');
    try {
      const args = ['127.0.0.1', String(evil.port), file, '--as', 'evil.bin', '--known-hosts', knownHosts, '--quiet', '--retries', '0'];
      const first = await runSend(args, { STX_HOME: home.home }, HANG_BOUND_MS);
      assert.equal(first.code, 3, first.stderr);
      assert.equal(existsSync(knownHosts), false, 'a server that never proved its key is not recorded');
      // The next connection completes the handshake (then the script closes): now it is recorded.
      await runSend(args, { STX_HOME: home.home }, HANG_BOUND_MS);
      assert.equal(readFileSync(knownHosts, 'utf8'), `127.0.0.1:${evil.port} ${evil.fingerprint}\n`);
    } finally {
      await evil.close();
    }
  });

  it('a plaintext ERROR from a peer that proved nothing: its text is never shown and its code only if a server sends it there', { timeout: 60_000 }, async () => {
    const nasty = '\x1b]0;owned\x07\x1b[2Jevil says: disk full, call 555-0100';
    const plaintextError = (code: number): Script => async (p) => {
      const pre = await p.readPreamble();
      if (pre === null) return;
      await p.write(encodePreamble(1));
      await p.send({ type: 'ERROR', code, message: nasty });
      await p.waitClosed(10_000);
    };
    for (const [claimed, expectCode, expectExit] of [
      [ERRORS.NO_SPACE.wire, 'HANDSHAKE_FAILED', 3],
      [ERRORS.AUTH_REFUSED.wire, 'HANDSHAKE_FAILED', 3],
      [ERRORS.VERSION_UNSUPPORTED.wire, 'VERSION_UNSUPPORTED', 3],
    ] as const) {
      const evil = await startEvil(plaintextError(claimed));
      try {
        const r = await runSend(['127.0.0.1', String(evil.port), file, '--fingerprint', evil.fingerprint, '--retries', '0', '--json'], { STX_HOME: home.home }, HANG_BOUND_MS);
        assert.equal(r.code, expectExit, r.stderr);
        assert.match(r.stderr, new RegExp(`error: ${expectCode}: the server refused the connection before proving its identity`));
        for (const out of [r.stderr, r.stdout]) {
          assert.doesNotMatch(out, /evil says|555-0100/, 'no word of the peer reaches the terminal');
          assert.equal(out.includes('\x1b'), false, 'no escape sequence either');
        }
        assert.equal(readJsonLine(r.stdout)['code'], expectCode);
      } finally {
        await evil.close();
      }
    }
  });

  for (const c of cases) {
    it(`${c.name} → exit ${c.exit} (${c.code})`, { timeout: 60_000 }, async () => {
      const evil = await startEvil(c.script);
      try {
        const t0 = Date.now();
        const r = await runSend(
          ['127.0.0.1', String(evil.port), file, '--as', 'evil.bin', '--fingerprint', evil.fingerprint, '--quiet', '--retries', '2', '--backoff', '20'],
          { STX_HOME: home.home },
          HANG_BOUND_MS,
        );
        assert.ok(Date.now() - t0 < HANG_BOUND_MS - 1000, `stx-send hung: ${r.stderr}`);
        assert.equal(r.code, c.exit, r.stderr);
        assert.match(r.stderr, new RegExp(`error: ${c.code}: `), r.stderr);
        c.check?.(evil);
      } finally {
        await evil.close();
      }
    });
  }
});
