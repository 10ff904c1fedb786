// Hostile clients against a real stx-recv, part 1: the preamble (§3), frame lengths and
// truncation (§2, §8), malformed payloads (§2.1), and every frame type in every server state where
// it is illegal, generated from the state tables of src/proto/states.ts (§11.1).
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeBody, encodeFrame } from '../../src/proto/codec.js';
import { FRAME_TYPES, type FrameName } from '../../src/proto/frames.js';
import { MAX_PLAINTEXT_FRAME_LENGTH_BYTES, MAX_RECORD_LENGTH_BYTES } from '../../src/proto/limits.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import { SERVER_RECEIVE, type ServerState } from '../../src/proto/states.js';
import {
  assertServesRaw,
  caseTitle,
  itServesAfter,
  partials,
  runCase,
  startArena,
  type Arena,
  type HostileCase,
} from './harness.js';
import { dataBody, lengthPrefix, RawClient, sampleFrame, sha256, withLength, type Outcome } from './raw-client.js';
import { packFrame } from '../../src/proto/pack.js';

const MiB = 1024 * 1024;
const NO_BODY_WAIT_MS = 1500;

let arena: Arena;
/** A published file the Locating and Serving drivers download (§9.9). */
const SERVED = 'served.bin';
const SERVED_BYTES = 24 * MiB;
before(async () => {
  arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '5s', '--allow-download']);
  await writeFile(path.join(arena.out, SERVED), Buffer.alloc(SERVED_BYTES, 7));
});
after(() => arena.close('after the frame suite'));

/** The server's preamble: STX\0, version 1, reserved 0, whatever the client sent (§3). */
async function serverPreamble(c: RawClient): Promise<void> {
  const p = await c.readPreamble();
  assert.ok(p !== null, 'the server sends its preamble before any refusal (§3)');
  assert.deepEqual(p, encodePreamble(1));
}

/** Sends `bytes` right after connecting and reads the outcome (after the server's preamble). */
const sendRaw = (...bytes: Buffer[]) => async (c: RawClient): Promise<Outcome> => {
  await c.write(...bytes);
  await serverPreamble(c);
  return c.outcome();
};

/** Preamble, then `bytes`, then the outcome (the server preamble must come back first, §3). */
const afterPreamble = (...bytes: Buffer[]) => async (c: RawClient): Promise<Outcome> => {
  await c.write(encodePreamble(), ...bytes);
  await serverPreamble(c);
  return c.outcome();
};

/** A completed handshake, then `body` sealed as one record. */
const afterHandshake = (make: (c: RawClient) => Buffer) => async (c: RawClient): Promise<Outcome> => {
  assert.ok(await c.handshake());
  await c.write(make(c));
  return c.outcome();
};

function runAll(cases: readonly HostileCase[], serves: 'raw' | 'send'): void {
  for (const hc of cases) {
    it(caseTitle(hc), hc.todo === undefined ? {} : { todo: hc.todo }, async () => {
      await runCase(arena, hc);
    });
  }
  if (serves === 'send') itServesAfter(() => arena, 'the cases above');
}

describe('preamble (§3)', () => {
  const cases: HostileCase[] = [
    { name: 'an HTTP request instead of the preamble', expect: 'BAD_PREAMBLE', run: sendRaw(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')) },
    {
      name: 'a TLS ClientHello instead of the preamble',
      expect: 'BAD_PREAMBLE',
      run: sendRaw(Buffer.from('16030100a5010000a10303', 'hex'), Buffer.alloc(160, 0x41)),
    },
    { name: 'wrong magic "STY\\0"', expect: 'BAD_PREAMBLE', run: sendRaw(Buffer.from('5354590000010000', 'hex')) },
    { name: 'reserved bits set', expect: 'BAD_PREAMBLE', run: sendRaw(Buffer.from('5354580000010001', 'hex')) },
    { name: 'version 0 (no common version)', expect: 'VERSION_UNSUPPORTED', run: sendRaw(encodePreamble(0)) },
    {
      name: 'a preamble cut short by FIN (3 bytes)',
      expect: 'TRUNCATED',
      run: async (c) => {
        await c.write(Buffer.from('STX'));
        c.end();
        await serverPreamble(c);
        return c.outcome();
      },
    },
    {
      name: '8 bytes of zeros',
      expect: 'BAD_PREAMBLE',
      run: sendRaw(Buffer.alloc(8)),
    },
  ];
  runAll(cases, 'send');

  it('version 0xffff: the server selects version 1 (§3), and the preamble altered in transit breaks the keys', async () => {
    const c = await RawClient.connect(arena.daemon.port);
    try {
      const s = await c.handshake({ preamble: () => encodePreamble(0xffff), client: {} }).catch((err: unknown) => err);
      // The client's own transcript says version 1 while the wire said 0xffff: keys differ, so
      // the handshake fails; what matters here is that the server picked version 1 (§3).
      assert.ok(c.received.length > 0);
      const serverPreamble = Buffer.concat(c.received).subarray(0, 8);
      assert.equal(serverPreamble.readUInt16BE(4), 1, 'the server selects the highest version ≤ the client’s');
      assert.ok(s instanceof Error, 'a preamble altered in transit breaks the keys (§6.1)');
    } finally {
      c.destroy();
    }
    await assertServesRaw(arena, 'after version 0xffff');
  });
});

describe('lengths and truncation (§2, §8)', () => {
  const cases: HostileCase[] = [
    {
      name: 'plaintext length 2^32−1 and no body: refused before any body arrives',
      expect: 'FRAME_TOO_LARGE',
      run: async (c) => {
        await c.write(encodePreamble(), lengthPrefix(0xffff_ffff));
        await serverPreamble(c);
        const o = await c.outcome(NO_BODY_WAIT_MS);
        // Stream a few MiB after it anyway: the server has closed and buffers none of it.
        for (let i = 0; i < 8 && !c.serverEnded; i++) c.writeNoWait(Buffer.alloc(MiB, 0x5a));
        return o;
      },
    },
    {
      name: `plaintext length ${MAX_PLAINTEXT_FRAME_LENGTH_BYTES + 1} (one above the limit)`,
      expect: 'FRAME_TOO_LARGE',
      run: async (c) => {
        await c.write(encodePreamble(), lengthPrefix(MAX_PLAINTEXT_FRAME_LENGTH_BYTES + 1));
        await serverPreamble(c);
        return c.outcome(NO_BODY_WAIT_MS);
      },
    },
    { name: 'plaintext length 0', expect: 'MALFORMED_FRAME', run: afterPreamble(lengthPrefix(0)) },
    {
      name: 'a length prefix cut after 2 bytes, then FIN',
      expect: 'TRUNCATED',
      run: async (c) => {
        await c.write(encodePreamble(), Buffer.from([0, 0]));
        c.end();
        await serverPreamble(c);
        return c.outcome();
      },
    },
    {
      name: 'half a CLIENT_HELLO, then FIN',
      expect: 'TRUNCATED',
      run: async (c) => {
        const hello = encodeFrame(sampleFrame('CLIENT_HELLO'));
        await c.write(encodePreamble(), hello.subarray(0, 40));
        c.end();
        await serverPreamble(c);
        return c.outcome();
      },
    },
    {
      name: 'half a KEY_EXCHANGE, then FIN (no keys yet: closed without a word, §6)',
      expect: 'CLOSED',
      server: 'TRUNCATED',
      run: async (c) => {
        assert.equal(await c.handshake({ stopAfter: 'server_hello' }), null);
        await c.write(encodeFrame(sampleFrame('KEY_EXCHANGE')).subarray(0, 100));
        c.end();
        return c.outcome();
      },
    },
    {
      name: 'half the CLIENT_FINISHED record, then FIN',
      expect: 'TRUNCATED',
      run: async (c) => {
        assert.equal(await c.handshake({ stopAfter: 'key_exchange' }), null);
        const record = c.sealFrame({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32) });
        await c.write(record.subarray(0, 20));
        c.end();
        return c.outcome();
      },
    },
    {
      name: `record length ${MAX_RECORD_LENGTH_BYTES + 1} after the handshake, no body`,
      expect: 'FRAME_TOO_LARGE',
      run: async (c) => {
        assert.ok(await c.handshake());
        await c.write(lengthPrefix(MAX_RECORD_LENGTH_BYTES + 1));
        return c.outcome(NO_BODY_WAIT_MS);
      },
    },
    {
      name: 'record length 2^32−1 after the handshake, no body',
      expect: 'FRAME_TOO_LARGE',
      run: async (c) => {
        assert.ok(await c.handshake());
        await c.write(lengthPrefix(0xffff_ffff));
        return c.outcome(NO_BODY_WAIT_MS);
      },
    },
    {
      name: 'record length 16 (below the 17-byte minimum)',
      expect: 'MALFORMED_FRAME',
      run: afterHandshake(() => Buffer.concat([lengthPrefix(16), Buffer.alloc(16)])),
    },
    { name: 'record length 0', expect: 'MALFORMED_FRAME', run: afterHandshake(() => lengthPrefix(0)) },
    {
      name: 'a DATA record cut in the middle, then FIN (partial kept, no final file)',
      expect: 'TRUNCATED',
      run: async (c) => {
        assert.ok(await c.handshake());
        assert.equal(await c.open('truncated/mid-data.bin', 2 * MiB), 0);
        await c.sendData(Buffer.alloc(MiB, 1));
        const rec = c.seal(dataBody(MiB, Buffer.alloc(MiB, 2)));
        await c.write(rec.subarray(0, rec.length / 2));
        c.end();
        const o = await c.outcome();
        await c.waitClosed();
        assert.ok(!arena.finalFiles().includes('truncated/mid-data.bin'), 'no final file from a cut upload');
        assert.ok(partials(arena.out).some((p) => p.endsWith('.part')), 'the partial upload is kept for a resume');
        return o;
      },
    },
  ];
  runAll(cases, 'send');

  it('the daemon never buffered the announced 4 GiB (RSS bound)', () => {
    arena.assertMemoryBounded('after 2^32−1 length prefixes');
  });
});

describe('malformed frames (§2.1, §2.2, §4)', () => {
  const clientHelloBody = (payload: Buffer): Buffer => Buffer.concat([Buffer.from([FRAME_TYPES.CLIENT_HELLO]), payload]);
  const bin = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0xc4, b.length]), b]);
  const key = (k: string): Buffer => Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k)]);
  const cases: HostileCase[] = [
    { name: 'unknown frame type 0x00 in plaintext', expect: 'UNKNOWN_FRAME_TYPE', run: afterPreamble(withLength(Buffer.from([0x00, 0x80]))) },
    { name: 'unknown frame type 0x06 in plaintext', expect: 'UNKNOWN_FRAME_TYPE', run: afterPreamble(withLength(Buffer.from([0x06, 0x80]))) },
    { name: 'unknown frame type 0xff in plaintext', expect: 'UNKNOWN_FRAME_TYPE', run: afterPreamble(withLength(Buffer.from([0xff]))) },
    { name: 'unknown frame type 0x7f in a record', expect: 'UNKNOWN_FRAME_TYPE', run: afterHandshake((c) => c.seal(Buffer.from([0x7f, 0x80]))) },
    { name: 'CLIENT_HELLO that is not MessagePack', expect: 'MALFORMED_FRAME', run: afterPreamble(withLength(clientHelloBody(Buffer.from([0xc1])))) },
    { name: 'CLIENT_HELLO with trailing bytes', expect: 'MALFORMED_FRAME', run: afterPreamble(withLength(Buffer.concat([encodeBody(sampleFrame('CLIENT_HELLO')), Buffer.from([0])]))) },
    { name: 'CLIENT_HELLO that is an array, not a map', expect: 'MALFORMED_FRAME', run: afterPreamble(withLength(clientHelloBody(Buffer.from([0x92, 0x01, 0x02])))) },
    {
      name: 'CLIENT_HELLO with an unknown field',
      expect: 'MALFORMED_FRAME',
      run: afterPreamble(withLength(clientHelloBody(Buffer.concat([Buffer.from([0x83]), key('random'), bin(Buffer.alloc(32)), key('x25519'), bin(Buffer.alloc(32, 9)), key('evil'), Buffer.from([0x01])])))),
    },
    {
      name: 'CLIENT_HELLO with a 31-byte random',
      expect: 'MALFORMED_FRAME',
      run: afterPreamble(withLength(clientHelloBody(Buffer.concat([Buffer.from([0x82]), key('random'), bin(Buffer.alloc(31)), key('x25519'), bin(Buffer.alloc(32, 9))])))),
    },
    {
      name: 'CLIENT_HELLO with an extension type value',
      expect: 'MALFORMED_FRAME',
      run: afterPreamble(withLength(clientHelloBody(Buffer.concat([Buffer.from([0x82]), key('random'), Buffer.from([0xd4, 0x01, 0x00]), key('x25519'), bin(Buffer.alloc(32, 9))])))),
    },
    {
      name: 'a 20000-byte OPEN inside a record (control payload over 16384)',
      expect: 'FRAME_TOO_LARGE',
      run: afterHandshake((c) => c.seal(Buffer.concat([Buffer.from([FRAME_TYPES.OPEN]), Buffer.alloc(20_000, 0x41)]))),
    },
    { name: 'DATA with an offset and no bytes', expect: 'MALFORMED_FRAME', run: afterHandshake((c) => c.seal(dataBody(0, Buffer.alloc(0)))) },
    { name: 'PING with a negative seq', expect: 'MALFORMED_FRAME', run: afterHandshake((c) => c.seal(Buffer.concat([Buffer.from([FRAME_TYPES.PING, 0x81]), key('seq'), Buffer.from([0xff])]))) },
    { name: 'PING with a float seq', expect: 'MALFORMED_FRAME', run: afterHandshake((c) => c.seal(Buffer.concat([Buffer.from([FRAME_TYPES.PING, 0x81]), key('seq'), Buffer.from([0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])]))) },
  ];
  runAll(cases, 'send');
});

// ---- every frame type in every state where it is illegal (§11.1), from the tables ------------

const ALL_FRAMES = Object.keys(FRAME_TYPES) as FrameName[];

function allowedIn(state: ServerState): Set<FrameName> {
  return new Set(SERVER_RECEIVE.filter(([s]) => s === state).map(([, f]) => f));
}

/**
 * How the raw client puts a fresh connection's server into each state, and how the illegal frame
 * is sent there. Opening and Verifying last only while the server works on OPEN or END; a frame
 * sent right behind OPEN or END (pipelined in the same write) is what arrives in them.
 */
interface StateDriver {
  readonly state: ServerState;
  /** What the client sees: the server's ERROR, or a silent close where it has no keys (§6). */
  readonly expect: 'UNEXPECTED_FRAME' | 'CLOSED';
  readonly drive: (c: RawClient, frame: FrameName, n: number) => Promise<Outcome>;
  /** Frames the spec refuses in this state but the daemon is known to accept (spec/daemon mismatch). */
  readonly known?: Partial<Record<FrameName, string>>;
}

/** Long enough for any refusal on loopback; what the todo cases wait for in vain. */
const STATE_WAIT_MS = 2000;


const DRIVERS: readonly StateDriver[] = [
  {
    state: 'AwaitClientHello',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      await c.write(encodePreamble(), encodeFrame(sampleFrame(frame)));
      await serverPreamble(c);
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'AwaitKeyExchange',
    expect: 'CLOSED',
    drive: async (c, frame) => {
      assert.equal(await c.handshake({ stopAfter: 'server_hello' }), null);
      await c.write(encodeFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'AwaitClientFinished',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      assert.equal(await c.handshake({ stopAfter: 'key_exchange' }), null);
      await c.write(c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'Ready',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      assert.ok(await c.handshake());
      await c.write(c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'Opening',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      const open = c.sealFrame({ type: 'OPEN', name: `states/opening-${n}.bin`, size: 10, mtime: 1, mode: 0o600 });
      await c.write(open, c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'Receiving',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      const name = `states/receiving-${n}.bin`;
      assert.equal(await c.open(name, 10), 0);
      await c.write(c.sealFrame(sampleFrame(frame)));
      const o = await c.outcome(STATE_WAIT_MS);
      await c.waitClosed();
      assert.ok(!arena.finalFiles().includes(name), 'no final file from an aborted upload');
      return o;
    },
  },
  {
    state: 'Verifying',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      const data = Buffer.from(`verifying ${n}`);
      assert.equal(await c.open(`states/verifying-${n}.bin`, data.length), 0);
      await c.write(c.seal(dataBody(0, data)), c.sealFrame({ type: 'END', sha256: sha256(data) }), c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  // Making receives nothing (§11.1, revision 1.11): what follows MKDIR or SYMLINK is carried out
  // in Ready, after MADE (pipelined, §9.8); no frame is judged there.
  // Putting lasts from PUT to its END (§9.11).
  {
    state: 'Putting',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      await c.write(c.sealFrame({ type: 'PUT', name: `states/putting-${n}.bin`, size: 10, mtime: 1, mode: 0o600 }), c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  // Packing lasts from PUT_PACK until its DATA has brought all its bytes (§9.11 step 8).
  {
    state: 'Packing',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      const pack = packFrame([{ name: `states/packing-${n}.bin`, size: 10, mtime: 1, mode: 0o600, sha256: Buffer.alloc(32, 7) }]);
      await c.write(c.sealFrame(pack), c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  // Ranging: a range of a parallel-stream upload (§9.13) while its DATA arrives. Claiming (from RANGE
  // to RANGE_OK) receives nothing (§11.1, revision 1.12): what follows RANGE is judged in Ranging.
  {
    state: 'Ranging',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame, n) => {
      assert.ok(await c.handshake());
      await c.send({ type: 'RANGE', name: `states/ranging-${n}.bin`, size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 });
      const ok = await c.next(STATE_WAIT_MS);
      assert.ok(ok.kind === 'frame' && ok.frame.type === 'RANGE_OK', 'RANGE_OK');
      await c.write(c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  // Settling receives nothing (§11.1, revision 1.10): what follows RANGE_END is carried out in
  // Ready, after RANGE_DONE (a chained RANGE, §9.13 step 2); no frame is judged there.
  // Listing and Locating: the frame right behind LIST or GET, in the same write, is judged in the
  // state they moved to (the walk and the file's opening run on after it).
  {
    state: 'Listing',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      assert.ok(await c.handshake());
      await c.write(c.sealFrame({ type: 'LIST', prefix: '' }), c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  {
    state: 'Locating',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      assert.ok(await c.handshake());
      await c.write(c.sealFrame({ type: 'GET', name: SERVED, offset: 0 }), c.sealFrame(sampleFrame(frame)));
      return c.outcome(STATE_WAIT_MS);
    },
  },
  // Serving: after GET_OK the client stops reading, so the server cannot get through the file
  // (its queue and the sockets' buffers hold less than SERVED_BYTES) before it reads the frame.
  {
    state: 'Serving',
    expect: 'UNEXPECTED_FRAME',
    drive: async (c, frame) => {
      assert.ok(await c.handshake());
      await c.send({ type: 'GET', name: SERVED, offset: 0 });
      const ok = await c.next(STATE_WAIT_MS);
      assert.ok(ok.kind === 'frame' && ok.frame.type === 'GET_OK', 'GET_OK');
      c.socket.pause();
      await c.write(c.sealFrame(sampleFrame(frame)));
      c.socket.resume();
      return c.outcome(STATE_WAIT_MS);
    },
  },
];

describe('every frame in every state where §11.1 has no row for it', () => {
  let generated = 0;
  let n = 0;
  for (const d of DRIVERS) {
    const allowed = allowedIn(d.state);
    // ERROR is allowed everywhere and closes (tested below).
    const illegal = ALL_FRAMES.filter((f) => !allowed.has(f) && f !== 'ERROR');
    for (const frame of illegal) {
      generated++;
      const todo = d.known?.[frame];
      const hc: HostileCase = {
        name: `${d.state}: ${frame}`,
        expect: d.expect,
        server: 'UNEXPECTED_FRAME',
        run: (c) => d.drive(c, frame, n++),
        ...(todo === undefined ? {} : { todo }),
      };
      it(`${hc.name} → ${d.expect === 'CLOSED' ? 'closed without a word (no keys), logged UNEXPECTED_FRAME' : 'UNEXPECTED_FRAME'}`, todo === undefined ? {} : { todo }, async () => {
        await runCase(arena, hc);
      });
    }
  }

  it('covers every state the server can be driven into from the wire, with every illegal frame', () => {
    const states = new Set(SERVER_RECEIVE.map(([s]) => s));
    assert.deepEqual(new Set(DRIVERS.map((d) => d.state)), states, 'a driver for every state with receive rows');
    assert.ok(generated >= 80, `${generated} generated cases`);
  });

  it('a frame behind RANGE_END is judged in Ready, after RANGE_DONE (§9.13 step 2: Settling receives nothing)', async () => {
    await runCase(arena, {
      name: 'END behind RANGE_END',
      expect: 'UNEXPECTED_FRAME',
      run: async (c) => {
        assert.ok(await c.handshake());
        await c.send({ type: 'RANGE', name: 'states/settling.bin', size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 });
        const ok = await c.next(STATE_WAIT_MS);
        assert.ok(ok.kind === 'frame' && ok.frame.type === 'RANGE_OK', 'RANGE_OK');
        await c.write(c.seal(dataBody(0, Buffer.from('0123456789'))), c.sealFrame({ type: 'RANGE_END', end: 10 }), c.sealFrame(sampleFrame('END')));
        const o = await c.outcome(STATE_WAIT_MS);
        assert.deepEqual(
          o.before.map((f) => f.type),
          ['RANGE_DONE'],
          'RANGE_DONE, then the ERROR',
        );
        return o;
      },
    });
  });

  it('a frame behind RANGE is judged in Ranging, after RANGE_OK (§9.13 step 2: Claiming receives nothing)', async () => {
    await runCase(arena, {
      name: 'END behind RANGE',
      expect: 'UNEXPECTED_FRAME',
      run: async (c) => {
        assert.ok(await c.handshake());
        await c.write(c.sealFrame({ type: 'RANGE', name: 'states/claiming.bin', size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 }), c.seal(dataBody(0, Buffer.from('01234'))), c.sealFrame(sampleFrame('END')));
        const o = await c.outcome(STATE_WAIT_MS);
        assert.deepEqual(
          o.before.map((f) => f.type),
          ['RANGE_OK'],
          'RANGE_OK (the DATA behind RANGE taken in Ranging), then the ERROR',
        );
        return o;
      },
    });
  });

  it('a frame behind MKDIR is judged in Ready, after MADE (§9.8 pipelined: Making receives nothing)', async () => {
    await runCase(arena, {
      name: 'END behind MKDIR',
      expect: 'UNEXPECTED_FRAME',
      run: async (c) => {
        assert.ok(await c.handshake());
        await c.write(c.sealFrame({ type: 'MKDIR', name: 'states/making', mtime: 1, mode: 0o700 }), c.sealFrame(sampleFrame('END')));
        const o = await c.outcome(STATE_WAIT_MS);
        assert.deepEqual(
          o.before.map((f) => f.type),
          ['MADE'],
          'MADE, then the ERROR',
        );
        return o;
      },
    });
  });

  // ERROR is legal in every state: the server closes without answering (§4, §11).
  for (const d of DRIVERS) {
    it(`${d.state}: ERROR from the client → closed without an answer`, async () => {
      await runCase(arena, {
        name: `${d.state}: ERROR`,
        expect: 'CLOSED',
        server: 'none',
        run: async (c) => {
          if (d.state === 'AwaitClientHello') {
            await c.write(encodePreamble(), encodeFrame(sampleFrame('ERROR')));
            await serverPreamble(c);
          } else if (d.state === 'AwaitKeyExchange') {
            assert.equal(await c.handshake({ stopAfter: 'server_hello' }), null);
            await c.write(encodeFrame(sampleFrame('ERROR')));
          } else if (d.state === 'AwaitClientFinished') {
            assert.equal(await c.handshake({ stopAfter: 'key_exchange' }), null);
            await c.write(c.sealFrame(sampleFrame('ERROR')));
          } else {
            assert.ok(await c.handshake());
            const extra: Buffer[] = [];
            if (d.state === 'Listing') extra.push(c.sealFrame({ type: 'LIST', prefix: '' }));
            if (d.state === 'Locating') extra.push(c.sealFrame({ type: 'GET', name: SERVED, offset: 0 }));
            if (d.state === 'Opening') extra.push(c.sealFrame({ type: 'OPEN', name: `states/err-opening.bin`, size: 10, mtime: 1, mode: 0o600 }));
            if (d.state === 'Receiving') assert.equal(await c.open('states/err-receiving.bin', 10), 0);
            if (d.state === 'Verifying') {
              const data = Buffer.from('verifying error');
              assert.equal(await c.open('states/err-verifying.bin', data.length), 0);
              extra.push(c.seal(dataBody(0, data)), c.sealFrame({ type: 'END', sha256: sha256(data) }));
            }
            await c.write(...extra, c.sealFrame(sampleFrame('ERROR')));
          }
          return c.outcome();
        },
      });
    });
  }

  after(async () => {
    await arena.assertServes('after the state tables');
  });
});
