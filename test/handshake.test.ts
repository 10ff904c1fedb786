// The stx/1 handshake end to end in memory (spec/PROTOCOL.md §3, §5–§8): both sides through the
// real codec and record layer, real keys, and every failure the spec names.
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { GCM_UPDATE_BYTES } from '../src/crypto/aead.js';
import { decodeBody, encodeBody, encodeDataHead, encodeFrame } from '../src/proto/codec.js';
import { StxError } from '../src/proto/errors.js';
import { MAX_BYTES_PER_KEY, MAX_RECORDS_PER_KEY } from '../src/proto/limits.js';
import { ClientHandshake, finishedMac, fingerprint, identityFingerprint, oaepEncrypt, okpPublicRaw, RecordOpener, RecordSealer, RESERVED_CONTROL_BODY_BYTES, ServerHandshake, serverKeySpki, type SessionKeys } from '../src/crypto/index.js';
import { generateIdentity, generateServerKey } from '../src/keystore/index.js';
import {
  asClientFinished,
  asClientHello,
  asKeyExchange,
  asServerFinished,
  asServerHello,
  decodeFrame,
  runHandshake,
  type PairOptions,
  type WireName,
} from './tools/handshake-pair.js';
import { hasCode } from './support/expect.js';

let serverKey: KeyObject;
let otherServerKey: KeyObject;
before(async () => {
  [serverKey, otherServerKey] = await Promise.all([generateServerKey(), generateServerKey(2048)]);
});

function flipBit(b: Buffer, at: number): Buffer {
  const out = Buffer.from(b);
  out[at] = (out[at] ?? 0) ^ 0x01;
  return out;
}

function assertKeysEqual(a: SessionKeys, b: SessionKeys): void {
  for (const k of ['c2sKey', 'c2sIv', 's2cKey', 's2cIv', 'cFinishedKey', 'sFinishedKey'] as const) {
    assert.deepEqual(a[k], b[k], k);
    assert.ok(a[k].some((x) => x !== 0), `${k} is not zero`);
  }
}

describe('successful handshakes', () => {
  test('anonymous client: equal keys, records flow both ways, secrets erased', () => {
    const r = runHandshake({ server: { serverKey } });
    assertKeysEqual(r.clientKeyCopy, r.serverKeyCopy);
    assert.deepEqual(r.clientKeys.transcriptHash, r.serverKeys.transcriptHash);
    assert.equal(r.serverKeyInfo.fingerprint, fingerprint(serverKeySpki(serverKey)));
    assert.deepEqual(r.serverKeyInfo.serverKeyDer, serverKeySpki(serverKey));
    assert.equal(r.accepted.clientFingerprint, null);
    assert.equal(r.accepted.identity, null);

    // The first records after FINISHED (seq 1 each way).
    const open = encodeBody({ type: 'OPEN', name: 'a/b.txt', size: 3, mtime: 0, mode: 0o600 });
    const rec = Buffer.concat(r.clientKeys.sealer.seal(open));
    assert.deepEqual(decodeBody(r.serverKeys.opener.open(rec)), { type: 'OPEN', name: 'a/b.txt', size: 3, mtime: 0, mode: 0o600 });
    const ok = Buffer.concat(r.serverKeys.sealer.seal(encodeBody({ type: 'OPEN_OK', offset: 0 })));
    assert.deepEqual(decodeBody(r.clientKeys.opener.open(ok)), { type: 'OPEN_OK', offset: 0 });

    // §7.2: keys erased once each side has finished.
    for (const k of Object.values(r.clientKeys.keys) as Buffer[]) assert.ok(k.every((x) => x === 0));
    for (const k of Object.values(r.serverKeys.keys) as Buffer[]) assert.ok(k.every((x) => x === 0));
  });

  test('authenticated client with an authorized key', () => {
    const identity = generateIdentity();
    const raw = okpPublicRaw('ed25519', identity);
    const r = runHandshake({ client: { identity }, server: { serverKey, authorizedKeys: new Set([identityFingerprint(raw)]) } });
    assert.equal(r.accepted.clientFingerprint, identityFingerprint(raw));
    assert.deepEqual(r.accepted.identity, raw);
    assertKeysEqual(r.clientKeyCopy, r.serverKeyCopy);
  });

  test('a server without an authorized-keys file accepts a proven identity', () => {
    const identity = generateIdentity();
    const r = runHandshake({ client: { identity }, server: { serverKey, authorizedKeys: null } });
    assert.equal(r.accepted.clientFingerprint, identityFingerprint(okpPublicRaw('ed25519', identity)));
  });

  test('two handshakes never share keys', () => {
    const a = runHandshake({ server: { serverKey } });
    const b = runHandshake({ server: { serverKey } });
    assert.notDeepEqual(a.clientKeyCopy.c2sKey, b.clientKeyCopy.c2sKey);
    assert.notDeepEqual(a.clientKeys.transcriptHash, b.clientKeys.transcriptHash);
  });
});

describe('transcript binding (§6.1): any altered handshake byte is HANDSHAKE_FAILED', () => {
  // Bit positions inside each message, as the receiver sees it: the random or key bytes,
  // chosen so that the message still decodes and only the transcript differs.
  const cases: { name: WireName; at: (b: Buffer) => number; what: string }[] = [
    { name: 'server_hello', at: (b) => b.indexOf(Buffer.from('random')) + 6 + 2 + 5, what: 'SERVER_HELLO random, as the client sees it' },
    { name: 'client_hello', at: (b) => b.indexOf(Buffer.from('random')) + 6 + 2 + 9, what: 'CLIENT_HELLO random, as the server sees it' },
    { name: 'server_hello', at: (b) => b.length - 40, what: 'SERVER_HELLO server_key modulus, as the client sees it' },
  ];
  for (const c of cases) {
    test(c.what, () => {
      assert.throws(
        () => runHandshake({ server: { serverKey }, wire: (name, bytes) => (name === c.name ? flipBit(bytes, c.at(bytes)) : bytes) }),
        hasCode('HANDSHAKE_FAILED'),
      );
    });
  }

  test('the failure is seen when CLIENT_FINISHED fails to open on the server', () => {
    const r = runHandshakeUntilClientFinished((name, b) => (name === 'server_hello' ? flipBit(b, b.indexOf(Buffer.from('random')) + 10) : b));
    assert.throws(() => r.opener.open(r.clientFinishedRecord), hasCode('HANDSHAKE_FAILED'));
    const clean = runHandshakeUntilClientFinished((_name, b) => b);
    assert.equal(asClientFinished(decodeBody(clean.opener.open(clean.clientFinishedRecord))).type, 'CLIENT_FINISHED');
  });

  test('an altered KEY_EXCHANGE ciphertext is HANDSHAKE_FAILED, like a wrong transcript', () => {
    assert.throws(
      () => runHandshake({ server: { serverKey }, wire: (name, b) => (name === 'key_exchange' ? flipBit(b, b.length - 1) : b) }),
      hasCode('HANDSHAKE_FAILED'),
    );
  });

  test('a downgraded preamble version is refused', () => {
    assert.throws(
      () => runHandshake({ server: { serverKey }, wire: (name, b) => (name === 'server_preamble' ? flipBit(b, 5) : b) }),
      hasCode('VERSION_UNSUPPORTED'),
    );
    assert.throws(
      () => runHandshake({ server: { serverKey }, wire: (name, b) => (name === 'client_preamble' ? flipBit(b, 7) : b) }),
      hasCode('BAD_PREAMBLE'),
    );
  });
});

/** Runs to the point where the server is about to open CLIENT_FINISHED. */
function runHandshakeUntilClientFinished(wire: NonNullable<PairOptions['wire']>, client = new ClientHandshake()) {
  const server = new ServerHandshake({ serverKey });
  const sp = server.onClientPreamble(wire('client_preamble', client.preamble()));
  const ch = wire('client_hello', client.clientHello());
  const sh = server.onClientHello(ch, asClientHello(decodeFrame(ch)));
  client.onServerPreamble(wire('server_preamble', sp));
  const shRx = wire('server_hello', sh);
  client.onServerHello(shRx, asServerHello(decodeFrame(shRx)));
  const c = client.finish();
  const ke = wire('key_exchange', c.keyExchange);
  const s = server.onKeyExchange(ke, asKeyExchange(decodeFrame(ke)));
  return { client, server, c, s, opener: s.opener, clientFinishedRecord: Buffer.concat(c.sealer.seal(c.clientFinished)) };
}

describe('key exchange failures (§7.1)', () => {
  const withEncrypt = (encrypt: NonNullable<NonNullable<PairOptions['client']>['oaepEncrypt']>): PairOptions => ({
    server: { serverKey },
    client: { oaepEncrypt: encrypt },
  });

  test('wrong RSA secret: HANDSHAKE_FAILED', () => {
    assert.throws(
      () => runHandshake(withEncrypt((key, secret, label) => oaepEncrypt(key, flipBit(secret, 0), label))),
      hasCode('HANDSHAKE_FAILED'),
    );
  });

  test('secret of 31 bytes, wrong label, or garbage: HANDSHAKE_FAILED', () => {
    for (const encrypt of [
      (key: KeyObject, secret: Buffer, label: Buffer) => oaepEncrypt(key, secret.subarray(1), label),
      (key: KeyObject, secret: Buffer) => oaepEncrypt(key, secret, Buffer.alloc(0)),
      () => Buffer.alloc(384, 0x42),
    ]) {
      assert.throws(() => runHandshake(withEncrypt(encrypt)), hasCode('HANDSHAKE_FAILED'));
    }
  });

  test('secret encrypted to another server key: HANDSHAKE_FAILED', () => {
    const other = createPublicKey(otherServerKey);
    assert.throws(() => runHandshake(withEncrypt((_k, secret, label) => oaepEncrypt(other, secret, label))), hasCode('HANDSHAKE_FAILED'));
  });

  test('small-order X25519 shares are refused on both sides', () => {
    for (const bad of [Buffer.alloc(32), Buffer.concat([Buffer.from([1]), Buffer.alloc(31)])]) {
      const server = new ServerHandshake({ serverKey });
      server.onClientPreamble(new ClientHandshake().preamble());
      const ch = encodeFrame({ type: 'CLIENT_HELLO', random: Buffer.alloc(32), x25519: bad });
      assert.throws(() => server.onClientHello(ch, asClientHello(decodeFrame(ch))), hasCode('HANDSHAKE_FAILED'));

      const client = new ClientHandshake();
      const s2 = new ServerHandshake({ serverKey });
      client.onServerPreamble(s2.onClientPreamble(client.preamble()));
      const sh = encodeFrame({ type: 'SERVER_HELLO', random: Buffer.alloc(32), x25519: bad, server_key: serverKeySpki(serverKey) });
      assert.throws(() => client.onServerHello(sh, asServerHello(decodeFrame(sh))), hasCode('HANDSHAKE_FAILED'));
    }
  });

  test('a server_key that is not RSA 2048..8192 is refused before KEY_EXCHANGE', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'der' });
    const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
    for (const key of [small, ed, Buffer.from('not DER')]) {
      const client = new ClientHandshake();
      client.onServerPreamble(new ServerHandshake({ serverKey }).onClientPreamble(client.preamble()));
      const sh = encodeFrame({ type: 'SERVER_HELLO', random: Buffer.alloc(32), x25519: Buffer.alloc(32, 9), server_key: key });
      assert.throws(() => client.onServerHello(sh, asServerHello(decodeFrame(sh))), hasCode('HANDSHAKE_FAILED'));
      assert.throws(() => client.finish(), /state Failed/);
    }
  });

  test('a failed trust check stops the client before KEY_EXCHANGE (§5)', () => {
    let sentKeyExchange = false;
    assert.throws(
      () =>
        runHandshake({
          server: { serverKey },
          trust: () => {
            throw new Error('untrusted');
          },
          wire: (name, b) => {
            if (name === 'key_exchange') sentKeyExchange = true;
            return b;
          },
        }),
      /untrusted/,
    );
    assert.equal(sentKeyExchange, false);
  });
});

describe('FINISHED and client authentication (§7.3, §7.4)', () => {
  test('verify is checked first: a wrong verify is HANDSHAKE_FAILED whatever the identity', () => {
    // An identity that would also be refused: the code must still be HANDSHAKE_FAILED.
    const identity = generateIdentity();
    assert.throws(
      () =>
        runHandshake({
          client: { identity },
          server: { serverKey, authorizedKeys: new Set<string>() },
          clientFinished: (body) => {
            const f = asClientFinished(decodeBody(body));
            return encodeBody({ ...f, verify: flipBit(f.verify, 0) });
          },
        }),
      hasCode('HANDSHAKE_FAILED'),
    );
  });

  test('a wrong SERVER_FINISHED.verify is HANDSHAKE_FAILED on the client', () => {
    assert.throws(
      () =>
        runHandshake({
          server: { serverKey },
          serverFinished: (body) => encodeBody({ type: 'SERVER_FINISHED', verify: flipBit(asServerFinished(decodeBody(body)).verify, 31) }),
        }),
      hasCode('HANDSHAKE_FAILED'),
    );
  });

  test('unauthorized identity: AUTH_REFUSED', () => {
    const identity = generateIdentity();
    const other = identityFingerprint(okpPublicRaw('ed25519', generateIdentity()));
    assert.throws(
      () => runHandshake({ client: { identity }, server: { serverKey, authorizedKeys: new Set([other]) } }),
      hasCode('AUTH_REFUSED'),
    );
  });

  test('anonymous client when keys are required: AUTH_REFUSED', () => {
    assert.throws(() => runHandshake({ server: { serverKey, authorizedKeys: new Set<string>() } }), hasCode('AUTH_REFUSED'));
  });

  test('an identity whose signature does not verify: AUTH_REFUSED, with or without a file', () => {
    const identity = generateIdentity();
    const fp = identityFingerprint(okpPublicRaw('ed25519', identity));
    const tamper = (body: Buffer): Buffer => {
      const f = asClientFinished(decodeBody(body));
      assert.ok(f.signature !== undefined);
      return encodeBody({ ...f, signature: flipBit(f.signature, 10) });
    };
    for (const authorizedKeys of [null, new Set([fp])]) {
      assert.throws(
        () => runHandshake({ client: { identity }, server: { serverKey, authorizedKeys }, clientFinished: tamper }),
        hasCode('AUTH_REFUSED'),
      );
    }
  });

  test('a listed key with a bad signature and an unlisted key get the same AUTH_REFUSED message (no oracle for who is listed)', () => {
    const listed = generateIdentity();
    const fp = identityFingerprint(okpPublicRaw('ed25519', listed));
    const refusal = (run: () => unknown): string => {
      try {
        run();
      } catch (err) {
        assert.ok(hasCode('AUTH_REFUSED')(err));
        return (err as Error).message;
      }
      assert.fail('the handshake was accepted');
    };
    const authorizedKeys = new Set([fp]);
    const badSignature = refusal(() =>
      runHandshake({
        client: { identity: listed },
        server: { serverKey, authorizedKeys },
        clientFinished: (body) => {
          const f = asClientFinished(decodeBody(body));
          assert.ok(f.signature !== undefined);
          return encodeBody({ ...f, signature: flipBit(f.signature, 10) });
        },
      }),
    );
    const unlisted = generateIdentity();
    const notListed = refusal(() => runHandshake({ client: { identity: unlisted }, server: { serverKey, authorizedKeys } }));
    const strip = (m: string): string => m.replace(/SHA256:[A-Za-z0-9+/]+/g, 'SHA256:…');
    assert.equal(strip(badSignature), strip(notListed));
  });

  test('a signature made for another server key (or another session) is refused', () => {
    const identity = generateIdentity();
    const fp = identityFingerprint(okpPublicRaw('ed25519', identity));
    // The victim authenticates to server X; its CLIENT_FINISHED is captured.
    const x = runHandshake({ client: { identity }, server: { serverKey: otherServerKey, authorizedKeys: new Set([fp]) } });
    const stolen = asClientFinished(decodeBody(x.clientFinishedBody));
    assert.ok(stolen.identity !== undefined && stolen.signature !== undefined);
    // An attacker without the identity key replays identity + signature to server Y (and to X
    // again), with a correct verify for its own session.
    for (const key of [serverKey, otherServerKey]) {
      assert.throws(
        () =>
          runHandshake({
            server: { serverKey: key, authorizedKeys: new Set([fp]) },
            clientFinished: (_body, c) =>
              encodeBody({
                type: 'CLIENT_FINISHED',
                verify: finishedMac(c.keys.cFinishedKey, c.transcriptHash),
                identity: stolen.identity ?? Buffer.alloc(0),
                signature: stolen.signature ?? Buffer.alloc(0),
              }),
          }),
        hasCode('AUTH_REFUSED'),
      );
    }
  });

  test('calls out of order are caller bugs, not StxErrors', () => {
    const client = new ClientHandshake();
    assert.throws(() => client.finish(), (err: unknown) => err instanceof Error && !(err instanceof StxError));
    const server = new ServerHandshake({ serverKey });
    assert.throws(() => server.onClientFinished({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32) }), /AwaitClientFinished/);
  });
});

describe('records after the handshake (§8)', () => {
  function established() {
    const r = runHandshake({ server: { serverKey } });
    const bodies = [0, 1, 2, 3].map((i) => encodeBody({ type: 'PING', seq: i }));
    const records = bodies.map((b) => Buffer.concat(r.clientKeys.sealer.seal(b)));
    return { r, bodies, records, opener: () => new RecordOpener(r.clientKeyCopy.c2sKey, r.clientKeyCopy.c2sIv, { start: { seq: 1 } }) };
  }

  test('in order: every record opens', () => {
    const { bodies, records, opener } = established();
    const o = opener();
    records.forEach((rec, i) => assert.deepEqual(o.open(rec), bodies[i]));
  });

  test('replay, reorder, drop and bit flips are DECRYPT_FAILED', () => {
    const { records, opener } = established();
    const [r0, r1, r2] = [records[0], records[1], records[2]];
    assert.ok(r0 && r1 && r2);
    const replay = opener();
    replay.open(r0);
    assert.throws(() => replay.open(r0), hasCode('DECRYPT_FAILED'), 'replay');
    assert.throws(() => opener().open(r1), hasCode('DECRYPT_FAILED'), 'reorder / drop');
    const dropped = opener();
    dropped.open(r0);
    assert.throws(() => dropped.open(r2), hasCode('DECRYPT_FAILED'), 'drop');
    for (let at = 0; at < r0.length; at++) {
      const flipped = flipBit(r0, at);
      assert.throws(() => opener().open(flipped), (err: unknown) => err instanceof StxError, `bit flip at ${at}`);
    }
    for (const at of [4, 5, r0.length - 1]) assert.throws(() => opener().open(flipBit(r0, at)), hasCode('DECRYPT_FAILED'));
  });

  test('after one failure the opener refuses everything, even the right record', () => {
    const { records, opener } = established();
    const o = opener();
    const r0 = records[0];
    assert.ok(r0);
    assert.throws(() => o.open(flipBit(r0, 6)), hasCode('DECRYPT_FAILED'));
    assert.throws(() => o.open(r0), hasCode('DECRYPT_FAILED'));
  });

  test('records of one direction do not open in the other', () => {
    const { r, records } = established();
    const r0 = records[0];
    assert.ok(r0);
    assert.throws(() => r.clientKeys.opener.open(r0), hasCode('DECRYPT_FAILED'));
  });

  test('DATA sealed from parts equals DATA sealed whole, without concatenating the parts', () => {
    const key = Buffer.alloc(32, 3);
    const iv = Buffer.alloc(12, 4);
    const data = Buffer.alloc(100_000, 0x61);
    const head = encodeDataHead(123);
    const pieces = new RecordSealer(key, iv).seal([head, data]);
    // header, ciphertext of head, ciphertext of data in GCM_UPDATE_BYTES slices, tag
    assert.equal(pieces.length, 3 + Math.ceil(data.length / GCM_UPDATE_BYTES));
    assert.equal(pieces[1]?.length, head.length);
    assert.deepEqual(pieces.slice(2, -1).map((p) => p.length), [GCM_UPDATE_BYTES, data.length - GCM_UPDATE_BYTES]);
    const whole = new RecordSealer(key, iv).seal(Buffer.concat([head, data]));
    assert.deepEqual(Buffer.concat(pieces), Buffer.concat(whole));
    assert.deepEqual(decodeBody(new RecordOpener(key, iv).open(Buffer.concat(pieces))), { type: 'DATA', offset: 123, data });
  });
});

describe('key limits (§8)', () => {
  const key = Buffer.alloc(32, 1);
  const iv = Buffer.alloc(12, 2);
  const body = Buffer.from([0x21, 0x81]);

  test('record count: the 2^32-th record seals and opens, the next is KEY_LIMIT', () => {
    const sealer = new RecordSealer(key, iv, { seq: MAX_RECORDS_PER_KEY - 1 });
    const opener = new RecordOpener(key, iv, { start: { seq: MAX_RECORDS_PER_KEY - 1 } });
    const last = Buffer.concat(sealer.seal(body));
    assert.deepEqual(opener.open(last), body);
    assert.throws(() => sealer.seal(body), hasCode('KEY_LIMIT'));
    assert.equal(sealer.seq, MAX_RECORDS_PER_KEY, 'a refused seal does not advance');
    // A peer that seals one more anyway (here: with the counter forced) is KEY_LIMIT on receipt.
    const beyond = Buffer.concat(new RecordSealer(key, iv, { seq: 0 }).seal(body));
    assert.throws(() => opener.open(beyond), hasCode('KEY_LIMIT'));
  });

  test('byte count: up to 2^38 body bytes, then KEY_LIMIT', () => {
    const sealer = new RecordSealer(key, iv, { bytes: MAX_BYTES_PER_KEY - body.length });
    const opener = new RecordOpener(key, iv, { start: { bytes: MAX_BYTES_PER_KEY - body.length } });
    assert.deepEqual(opener.open(Buffer.concat(sealer.seal(body))), body);
    assert.equal(sealer.bytes, MAX_BYTES_PER_KEY);
    assert.throws(() => sealer.seal(Buffer.from([0x21])), hasCode('KEY_LIMIT'));
    const more = Buffer.concat(new RecordSealer(key, iv, { seq: 1 }).seal(Buffer.from([0x21])));
    assert.throws(() => opener.open(more), hasCode('KEY_LIMIT'));
  });

  test('nearLimit keeps room for one last control record (GOAWAY)', () => {
    const fresh = new RecordSealer(key, iv);
    assert.equal(fresh.nearLimit(1_048_585), false);
    const byCount = new RecordSealer(key, iv, { seq: MAX_RECORDS_PER_KEY - 2 });
    assert.equal(byCount.nearLimit(1), false, 'this record and one more fit');
    byCount.seal(body);
    assert.equal(byCount.nearLimit(1), true, 'only one record left: keep it for GOAWAY');
    byCount.seal(encodeBody({ type: 'GOAWAY', code: 23, message: 'key limit' }));
    assert.throws(() => byCount.seal(body), hasCode('KEY_LIMIT'));

    const room = 1000;
    const byBytes = new RecordSealer(key, iv, { bytes: MAX_BYTES_PER_KEY - RESERVED_CONTROL_BODY_BYTES - room });
    assert.equal(byBytes.nearLimit(room), false);
    assert.equal(byBytes.nearLimit(room + 1), true);
    const opener = new RecordOpener(key, iv, { start: { seq: MAX_RECORDS_PER_KEY - 1 } });
    assert.equal(opener.nearLimit(1), true);
  });

  test('bodies outside 1..MAX_FRAME_LENGTH are refused before sealing', () => {
    const sealer = new RecordSealer(key, iv);
    assert.throws(() => sealer.seal(Buffer.alloc(0)), RangeError);
    assert.throws(() => sealer.seal([Buffer.alloc(1_048_585), Buffer.alloc(1)]), RangeError);
    assert.equal(sealer.seq, 0);
  });
});
