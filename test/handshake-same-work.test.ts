// The server does the same work whether RSA-OAEP fails or not (spec/PROTOCOL.md §7.1; issue 14
// item 9): the sequence of node:crypto calls, and the sizes of what each is given, is the same for
// a KEY_EXCHANGE that fails to decrypt, one that decrypts to the wrong length, one that decrypts
// to a secret the client did not key with, and an honest one; and CLIENT_FINISHED is checked the
// same way after a rejected KEY_EXCHANGE as after an accepted one. The calls are observed, not
// replaced (node:crypto's functions wrapped, then the ES module bindings re-synced). Timings are
// measured by bench/micro/oaep-timing.ts, never asserted.
import assert from 'node:assert/strict';
import crypto, { randomBytes, type KeyObject } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';
import { after, before, describe, mock, test } from 'node:test';
import { ClientHandshake, oaepEncrypt, ServerHandshake } from '../src/crypto/index.js';
import { StxError } from '../src/proto/errors.js';
import type { ClientFinished, KeyExchange } from '../src/proto/frames.js';
import { vectorServerKey } from './support/vector-key.js';
import { asClientHello, asKeyExchange, asServerHello, decodeFrame } from './tools/handshake-pair.js';

/** The node:crypto functions the server's KEY_EXCHANGE and CLIENT_FINISHED steps may call. */
const TRACED = ['privateDecrypt', 'randomBytes', 'hkdfSync', 'createHmac', 'createHash', 'createSecretKey', 'timingSafeEqual', 'diffieHellman', 'generateKeyPairSync'] as const;

let trace: string[] | null = null;

/** One call as traced: its name and the sizes of its Buffer arguments (never their contents). */
function describeCall(name: string, args: readonly unknown[]): string {
  const sizes = args.map((a) => (Buffer.isBuffer(a) ? `${a.length}B` : typeof a === 'object' && a !== null && 'oaepLabel' in a ? 'oaep' : typeof a));
  return `${name}(${sizes.join(',')})`;
}

let serverKey: KeyObject;
before(() => {
  serverKey = vectorServerKey();
  for (const name of TRACED) {
    const original = crypto[name] as (...args: unknown[]) => unknown;
    mock.method(crypto, name, function (this: unknown, ...args: unknown[]) {
      trace?.push(describeCall(name, args));
      return original.apply(this, args);
    });
  }
  syncBuiltinESMExports();
});
after(() => {
  mock.restoreAll();
  syncBuiltinESMExports();
});

/** A server handshake brought to AwaitKeyExchange, and the client's KEY_EXCHANGE for `secretOf`. */
function upToKeyExchange(encrypt?: (k: KeyObject, secret: Buffer, label: Buffer) => Buffer): { server: ServerHandshake; kx: KeyExchange; raw: Buffer; finished: ClientFinished } {
  const client = new ClientHandshake(encrypt === undefined ? {} : { oaepEncrypt: encrypt });
  const server = new ServerHandshake({ serverKey });
  client.onServerPreamble(server.onClientPreamble(client.preamble()));
  const hello = server.onClientHello(client.clientHello(), asClientHello(decodeFrame(client.clientHello())));
  client.onServerHello(hello, asServerHello(decodeFrame(hello)));
  const keys = client.finish();
  // The FINISHED the client would send, as the server's onClientFinished takes it once opened.
  const finished = decodeFrame(Buffer.concat([Buffer.alloc(4), keys.clientFinished]));
  assert.equal(finished.type, 'CLIENT_FINISHED');
  return { server, kx: asKeyExchange(decodeFrame(keys.keyExchange)), raw: keys.keyExchange, finished };
}

function traced<T>(fn: () => T): { calls: string[]; result: T } {
  trace = [];
  try {
    const result = fn();
    return { calls: trace, result };
  } finally {
    trace = null;
  }
}

const CASES: ReadonlyArray<readonly [string, ((k: KeyObject, secret: Buffer, label: Buffer) => Buffer) | undefined]> = [
  ['the right secret', undefined],
  [
    'a ciphertext with one bit flipped (OAEP fails)',
    (k, secret, label) => {
      const c = oaepEncrypt(k, secret, label);
      c[100] = (c[100] ?? 0) ^ 1;
      return c;
    },
  ],
  ['384 random bytes', () => randomBytes(384)],
  ['a 31-byte secret', (k, secret, label) => oaepEncrypt(k, secret.subarray(0, 31), label)],
  ['another 32-byte secret', (k, _secret, label) => oaepEncrypt(k, randomBytes(32), label)],
  ['a label other than H_sh', (k, secret) => oaepEncrypt(k, secret, Buffer.alloc(32))],
];

describe('RSA-OAEP failure and success do the same work (§7.1)', () => {
  test('KEY_EXCHANGE: the same node:crypto calls, with the same sizes, for every kind of secret', () => {
    const traces = CASES.map(([name, encrypt]) => {
      const { server, kx, raw } = upToKeyExchange(encrypt);
      const { calls } = traced(() => server.onKeyExchange(raw, kx));
      assert.ok(calls.filter((c) => c.startsWith('privateDecrypt')).length === 1, `${name}: one RSA decryption (${calls.join(' ')})`);
      assert.ok(calls.filter((c) => c.startsWith('hkdfSync')).length === 7, `${name}: the seven keys of §7.2 derived (${calls.join(' ')})`);
      return [name, calls] as const;
    });
    const [, reference] = traces[0] ?? ['', []];
    for (const [name, calls] of traces) assert.deepEqual(calls, reference, `${name} vs the right secret`);
  });

  test('CLIENT_FINISHED after a rejected KEY_EXCHANGE: verify is still computed and compared, then HANDSHAKE_FAILED', () => {
    const run = (encrypt?: (k: KeyObject, secret: Buffer, label: Buffer) => Buffer): string[] => {
      const { server, kx, raw, finished } = upToKeyExchange(encrypt);
      server.onKeyExchange(raw, kx);
      // A wrong verify in both cases, so that both fail at the same check.
      const wrong: ClientFinished = { type: 'CLIENT_FINISHED', verify: Buffer.alloc(32, 7) };
      assert.equal(finished.type, 'CLIENT_FINISHED');
      const { calls } = traced(() =>
        assert.throws(
          () => server.onClientFinished(wrong),
          (err: unknown) => err instanceof StxError && err.code === 'HANDSHAKE_FAILED',
        ),
      );
      return calls;
    };
    const accepted = run();
    const rejected = run(() => randomBytes(384));
    assert.ok(accepted.some((c) => c.startsWith('createHmac')), `verify computed (${accepted.join(' ')})`);
    assert.deepEqual(rejected, accepted);
  });
});
