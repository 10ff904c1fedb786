// Hostile clients against a real stx-recv, part 2: the handshake and the record layer (§6–§8).
// A wrong RSA secret, a wrong FINISHED, a tampered transcript byte, small-order X25519 shares,
// flipped ciphertext bits, replayed, dropped, reordered and reflected records. Crypto failures
// look alike on the wire (§10): every handshake failure but AUTH_REFUSED is HANDSHAKE_FAILED with
// the same message, and a record that fails after the handshake is DECRYPT_FAILED.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { finishedMac } from '../../src/crypto/key-schedule.js';
import { oaepEncrypt } from '../../src/crypto/oaep.js';
import { RecordSealer } from '../../src/crypto/record.js';
import { encodeBody, encodeFrame } from '../../src/proto/codec.js';
import { FRAME_TYPES } from '../../src/proto/frames.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import { caseTitle, itServesAfter, partials, runCase, startArena, type Arena, type HostileCase } from './harness.js';
import { dataBody, fieldValueOffset, flipBit, HandshakeRefused, RawClient, type HandshakeHooks, type Outcome } from './raw-client.js';

const MiB = 1024 * 1024;
/** The one message a server puts in a HANDSHAKE_FAILED it can still send readably (§10). */
const WIRE_HANDSHAKE_FAILED = 'handshake failed';

let arena: Arena;
before(async () => {
  arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '5s']);
});
after(() => arena.close('after the crypto suite'));

/** A handshake with `hooks` that the server must end; returns how it ended. */
const refusedHandshake = (hooks: HandshakeHooks, check?: (o: Outcome) => void) => async (c: RawClient): Promise<Outcome> => {
  const err = await c.handshake(hooks).then(
    () => assert.fail('the handshake completed'),
    (e: unknown) => e,
  );
  if (!(err instanceof HandshakeRefused)) throw err;
  check?.(err.outcome);
  return err.outcome;
};

/** The server's readable ERROR carries the one generic message, no detail (§10). */
const generic = (o: Outcome): void => {
  assert.equal(o.via, 'ERROR');
  assert.equal(o.message, WIRE_HANDSHAKE_FAILED, 'crypto failures look alike on the wire');
};

/** After a completed handshake, `send` puts whatever it likes on the wire. */
const afterHandshake = (send: (c: RawClient, s: NonNullable<Awaited<ReturnType<RawClient['handshake']>>>) => Promise<void>) =>
  async (c: RawClient): Promise<Outcome> => {
    const s = await c.handshake();
    assert.ok(s !== null);
    await send(c, s);
    return c.outcome();
  };

/** A PING record sealed at the client's next seq, without sending it. */
const ping = (c: RawClient, seq: number): Buffer => c.sealFrame({ type: 'PING', seq });

/** A record from a second, completed session on its own connection (for cross-session replay). */
async function otherSession(): Promise<{ finished: Buffer; serverFinished: Buffer; ping1: Buffer; close: () => void }> {
  const o = await RawClient.connect(arena.daemon.port);
  const s = await o.handshake();
  assert.ok(s !== null);
  const ping1 = ping(o, 7);
  return { finished: s.clientFinishedRecord, serverFinished: s.serverFinishedRecord, ping1, close: () => o.destroy() };
}

const otherRsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;

describe('wrong RSA secret (§7.1): the server goes on with a random secret, the failure shows at CLIENT_FINISHED', () => {
  // The server's ERROR is sealed with keys the client does not share, so the client cannot open
  // it and fails with HANDSHAKE_FAILED itself (§6); the daemon logs HANDSHAKE_FAILED.
  const cases: HostileCase[] = [
    {
      name: 'KEY_EXCHANGE carries a different 32-byte secret than the client keyed with',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: (k, _secret, label) => oaepEncrypt(k, randomBytes(32), label) } }),
    },
    {
      name: 'a 31-byte secret',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: (k, secret, label) => oaepEncrypt(k, secret.subarray(0, 31), label) } }),
    },
    {
      name: 'a 33-byte secret',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: (k, secret, label) => oaepEncrypt(k, Buffer.concat([secret, Buffer.from([0])]), label) } }),
    },
    {
      name: 'an OAEP label other than H_sh',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: (k, secret) => oaepEncrypt(k, secret, Buffer.alloc(32)) } }),
    },
    {
      name: 'the secret encrypted to another RSA key',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: (_k, secret, label) => oaepEncrypt(otherRsaKey, secret, label) } }),
    },
    {
      name: '384 random bytes as encrypted_secret',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: () => randomBytes(384) } }),
    },
    {
      name: 'a 1-byte encrypted_secret',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ client: { oaepEncrypt: () => Buffer.from([1]) } }),
    },
    {
      name: 'a 1025-byte encrypted_secret (malformed, and the server has no keys to say so)',
      expect: 'CLOSED',
      server: 'MALFORMED_FRAME',
      run: refusedHandshake({ client: { oaepEncrypt: () => randomBytes(1025) } }),
    },
  ];
  for (const hc of cases) it(caseTitle(hc), () => runCase(arena, hc).then(() => undefined));
  itServesAfter(() => arena, 'the cases above');
});

describe('wrong FINISHED and client authentication (§7.3, §7.4)', () => {
  const cases: HostileCase[] = [
    {
      name: 'CLIENT_FINISHED.verify with one bit flipped',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedBody: (_b, k) => encodeBody({ type: 'CLIENT_FINISHED', verify: flipBit(finishedMac(k.keys.cFinishedKey, k.transcriptHash), 0) }) }, generic),
    },
    {
      name: "CLIENT_FINISHED.verify made with the server's finished key (reflection)",
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedBody: (_b, k) => encodeBody({ type: 'CLIENT_FINISHED', verify: finishedMac(k.keys.sFinishedKey, k.transcriptHash) }) }, generic),
    },
    {
      name: 'CLIENT_FINISHED.verify all zeros',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedBody: () => encodeBody({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32) }) }, generic),
    },
    {
      name: 'CLIENT_FINISHED.verify over a wrong transcript hash (32 zero bytes)',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedBody: (_b, k) => encodeBody({ type: 'CLIENT_FINISHED', verify: finishedMac(k.keys.cFinishedKey, Buffer.alloc(32)) }) }, generic),
    },
    {
      name: 'a claimed identity whose signature does not verify (anonymous server: still AUTH_REFUSED)',
      expect: 'AUTH_REFUSED',
      run: refusedHandshake({
        clientFinishedBody: (_b, k) =>
          encodeBody({ type: 'CLIENT_FINISHED', verify: finishedMac(k.keys.cFinishedKey, k.transcriptHash), identity: randomBytes(32), signature: randomBytes(64) }),
      }),
    },
    {
      name: 'identity without signature',
      expect: 'MALFORMED_FRAME',
      run: refusedHandshake({
        clientFinishedBody: (_b, k) => {
          const verify = finishedMac(k.keys.cFinishedKey, k.transcriptHash);
          const key = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
          const bin = (b: Buffer): Buffer => Buffer.concat([Buffer.from([0xc4, b.length]), b]);
          return Buffer.concat([Buffer.from([FRAME_TYPES.CLIENT_FINISHED, 0x82]), key('verify'), bin(verify), key('identity'), bin(randomBytes(32))]);
        },
      }),
    },
    {
      name: 'a wrong verify together with a bad signature: HANDSHAKE_FAILED wins (§7.4)',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedBody: () => encodeBody({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32, 1), identity: randomBytes(32), signature: randomBytes(64) }) }, generic),
    },
  ];
  for (const hc of cases) it(caseTitle(hc), () => runCase(arena, hc).then(() => undefined));
  itServesAfter(() => arena, 'the cases above');
});

describe('tampered transcript (§6.1): any altered handshake byte gives different keys', () => {
  const reencodedHello = (bytes: Buffer): Buffer => {
    // The same CLIENT_HELLO values with `random` as bin 32 instead of bin 8: equal as a frame,
    // different as bytes, so the transcripts differ.
    const r = fieldValueOffset(bytes, 'random');
    const x = fieldValueOffset(bytes, 'x25519');
    const key = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s)]);
    const body = Buffer.concat([
      Buffer.from([FRAME_TYPES.CLIENT_HELLO, 0x82]),
      key('random'),
      Buffer.from([0xc6, 0, 0, 0, 32]),
      bytes.subarray(r, r + 32),
      key('x25519'),
      Buffer.from([0xc4, 32]),
      bytes.subarray(x, x + 32),
    ]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    return Buffer.concat([len, body]);
  };
  const cases: HostileCase[] = [
    { name: 'CLIENT_HELLO.random bit flipped in transit', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ clientHello: (b) => flipBit(b, fieldValueOffset(b, 'random') + 5) }) },
    { name: 'CLIENT_HELLO.x25519 bit flipped in transit', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ clientHello: (b) => flipBit(b, fieldValueOffset(b, 'x25519') + 9) }) },
    { name: 'CLIENT_HELLO re-encoded (bin 32 for random): same values, other bytes', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ clientHello: reencodedHello }) },
    { name: 'SERVER_HELLO.random bit flipped in transit', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ serverHello: (b) => flipBit(b, fieldValueOffset(b, 'random') + 1) }) },
    { name: 'SERVER_HELLO.x25519 bit flipped in transit (transcript only)', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ serverHello: (b) => flipBit(b, fieldValueOffset(b, 'x25519') + 30) }) },
    { name: 'SERVER_HELLO.server_key bit flipped in transit (transcript only)', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ serverHello: (b) => flipBit(b, b.length - 3) }) },
    { name: 'KEY_EXCHANGE ciphertext bit flipped in transit', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ keyExchange: (b) => flipBit(b, b.length - 40) }) },
    { name: 'client preamble version 1 → 2 in transit (the server still picks 1)', expect: 'HANDSHAKE_FAILED', run: refusedHandshake({ preamble: () => encodePreamble(2) }) },
  ];
  for (const hc of cases) it(caseTitle(hc), () => runCase(arena, hc).then(() => undefined));
  itServesAfter(() => arena, 'the cases above');
});

describe('small-order X25519 shares (§7.1): refused in plaintext before SERVER_HELLO', () => {
  const hello = (x25519: Buffer): Buffer => encodeFrame({ type: 'CLIENT_HELLO', random: randomBytes(32), x25519 });
  const smallOrder: ReadonlyArray<readonly [string, Buffer]> = [
    ['u = 0', Buffer.alloc(32)],
    ['u = 1', Buffer.concat([Buffer.from([1]), Buffer.alloc(31)])],
    ['u = p − 1', Buffer.from('ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', 'hex')],
    ['order-8 point', Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex')],
  ];
  for (const [label, share] of smallOrder) {
    it(`CLIENT_HELLO.x25519 ${label} → HANDSHAKE_FAILED`, async () => {
      await runCase(
        arena,
        {
          name: `small-order share ${label}`,
          expect: 'HANDSHAKE_FAILED',
          run: async (c) => {
            await c.write(encodePreamble(), hello(share));
            assert.ok((await c.readPreamble()) !== null);
            const o = await c.outcome();
            assert.equal(o.via, 'ERROR', 'a plaintext ERROR the client can read');
            assert.equal(o.before.length, 0, 'no SERVER_HELLO before it');
            return o;
          },
        },
        'send',
      );
    });
  }
});

describe('records (§8): altered, replayed, dropped, reordered, reflected', () => {
  const cases: HostileCase[] = [
    {
      name: 'CLIENT_FINISHED record with a flipped ciphertext bit (first record: HANDSHAKE_FAILED)',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedRecord: (r) => flipBit(r, 8) }, generic),
    },
    {
      name: 'CLIENT_FINISHED record with a flipped tag bit',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedRecord: (r) => flipBit(r, -1) }, generic),
    },
    {
      name: 'CLIENT_FINISHED record replayed from another session',
      expect: 'HANDSHAKE_FAILED',
      run: async (c) => {
        const other = await otherSession();
        try {
          return await refusedHandshake({ clientFinishedRecord: () => other.finished }, generic)(c);
        } finally {
          other.close();
        }
      },
    },
    {
      name: "the server's own SERVER_FINISHED record reflected as CLIENT_FINISHED",
      expect: 'HANDSHAKE_FAILED',
      run: async (c) => {
        const other = await otherSession();
        try {
          return await refusedHandshake({ clientFinishedRecord: () => other.serverFinished }, generic)(c);
        } finally {
          other.close();
        }
      },
    },
    {
      name: 'a plaintext CLIENT_FINISHED frame instead of a record',
      expect: 'HANDSHAKE_FAILED',
      run: refusedHandshake({ clientFinishedRecord: () => encodeFrame({ type: 'CLIENT_FINISHED', verify: randomBytes(32) }) }, generic),
    },
    {
      name: 'PING record with a flipped ciphertext bit',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake((c) => c.write(flipBit(ping(c, 1), 6))),
    },
    {
      name: 'PING record with a flipped tag bit',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake((c) => c.write(flipBit(ping(c, 1), -1))),
    },
    {
      name: 'PING record whose length header says one byte more (header is AAD)',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c) => {
        const r = ping(c, 1);
        r.writeUInt32BE(r.readUInt32BE(0) + 1, 0);
        await c.write(r, Buffer.from([0]));
      }),
    },
    {
      name: 'a replayed PING record (answered once, then refused)',
      expect: 'DECRYPT_FAILED',
      run: async (c) => {
        const o = await afterHandshake(async (cc) => {
          const r = ping(cc, 1);
          await cc.write(r);
          await cc.expectFrame('PONG');
          await cc.write(r);
        })(c);
        return o;
      },
    },
    {
      name: 'a dropped record (seq 1 never sent, seq 2 sent)',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c) => {
        ping(c, 1);
        await c.write(ping(c, 2));
      }),
    },
    {
      name: 'two records reordered',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c) => {
        const a = ping(c, 1);
        const b = ping(c, 2);
        await c.write(b, a);
      }),
    },
    {
      name: 'a record of another session at the same seq',
      expect: 'DECRYPT_FAILED',
      run: async (c) => {
        const other = await otherSession();
        try {
          return await afterHandshake((cc) => cc.write(other.ping1))(c);
        } finally {
          other.close();
        }
      },
    },
    {
      name: "the server's own PONG record reflected back",
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c) => {
        await c.write(ping(c, 1));
        const pong = await c.expectFrame('PONG');
        await c.write(pong.raw);
      }),
    },
    {
      name: 'a PING sealed with the s2c key and iv (direction reflection)',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c, s) => {
        const wrong = new RecordSealer(s.keyCopy.s2cKey, s.keyCopy.s2cIv, { seq: 1 });
        await c.write(...wrong.seal(encodeBody({ type: 'PING', seq: 1 })));
      }),
    },
    {
      name: 'a plaintext OPEN frame after the switch to records',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake((c) => c.write(encodeFrame({ type: 'OPEN', name: 'plain.bin', size: 1, mtime: 1, mode: 0o644 }))),
    },
    {
      name: 'a DATA record with a flipped bit mid-upload (partial kept, no final file)',
      expect: 'DECRYPT_FAILED',
      run: afterHandshake(async (c) => {
        assert.equal(await c.open('records/flipped.bin', 2 * MiB), 0);
        await c.sendData(Buffer.alloc(MiB, 3));
        await c.write(flipBit(c.seal(dataBody(MiB, Buffer.alloc(MiB, 4))), 1000));
      }),
    },
  ];
  for (const hc of cases) it(caseTitle(hc), () => runCase(arena, hc).then(() => undefined));
  itServesAfter(() => arena, 'the cases above');

  it('no final file appeared from the refused upload, and its partial is kept', () => {
    assert.ok(!arena.finalFiles().includes('records/flipped.bin'));
    assert.ok(partials(arena.out).length >= 2, 'part and record of the refused upload');
  });
});
