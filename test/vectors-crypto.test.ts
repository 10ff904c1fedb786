// Conformance with spec/vectors/handshake*.json and spec/vectors/records*.json (spec/PROTOCOL.md
// §6–§8, §12): every vector in those files is replayed through our implementation, so a new
// vector (or a new file) needs no new code.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { test } from 'node:test';
import { decodeBody } from '../src/proto/codec.js';
import { StxError } from '../src/proto/errors.js';
import { createHash, hkdfSync } from 'node:crypto';
import { deriveKeys, finishedMac, fingerprint, oaepDecrypt, okpPrivateFromRaw, okpPublicRaw, RecordOpener, RecordSealer, serverKeySpki, signTranscript, TicketKey, x25519KeyPair, x25519SharedSecret, type SessionKeys } from '../src/crypto/index.js';
import { MAX_TICKET_LIFETIME_S } from '../src/proto/limits.js';
import { vectorFiles } from './support/vectors.js';
import { get, has, hex, hexOrNull, list, num, str, strOrNull } from './tools/crypto-files.js';
import { asClientFinished, asServerFinished, runHandshake, runResumption, type WireName } from './tools/handshake-pair.js';

const handshakes = vectorFiles('handshake').flatMap(({ file, vectors }) => vectors.map((v) => ({ file, v })));
const resumptions = vectorFiles('resumption').flatMap(({ file, vectors }) => vectors.map((v) => ({ file, v })));
const records = vectorFiles('records').flatMap(({ file, vectors }) => vectors.map((v) => ({ file, v })));
const sealVectors = records.filter(({ v }) => has(v, 'body'));
const failVectors = records.filter(({ v }) => has(v, 'error'));

const WIRE: readonly WireName[] = [
  'client_preamble',
  'client_hello',
  'server_preamble',
  'server_hello',
  'key_exchange',
  'client_finished_record',
  'server_finished_record',
];
const KEY_FIELDS: readonly [keyof SessionKeys, string][] = [
  ['c2sKey', 'c2s_key'],
  ['c2sIv', 'c2s_iv'],
  ['s2cKey', 's2c_key'],
  ['s2cIv', 's2c_iv'],
  ['cFinishedKey', 'c_finished_key'],
  ['sFinishedKey', 's_finished_key'],
  ['resumption', 'resumption_psk'],
];

function assertHex(actual: Buffer, expected: Buffer, what: string): void {
  assert.equal(actual.toString('hex'), expected.toString('hex'), what);
}

test('there are handshake and record vectors, each of one kind', () => {
  assert.ok(handshakes.length >= 2);
  assert.ok(sealVectors.length >= 5);
  assert.ok(failVectors.length >= 5);
  assert.equal(sealVectors.length + failVectors.length, records.length);
});

for (const { file, v: h } of handshakes) {
  test(`${file}: ${str(h, 'name')}`, () => {
    const inputs = get(h, 'inputs');
    const wire = get(h, 'wire');
    const values = get(h, 'values');
    const serverKey = createPrivateKey(str(inputs, 'server_rsa_private_pem'));
    const encryptedSecret = hex(inputs, 'encrypted_secret');
    const rsaSecret = hex(inputs, 'rsa_secret');
    const seed = hexOrNull(inputs, 'client_ed25519_private');
    // `as`: set inside the handshake's callbacks, which TypeScript's narrowing does not see.
    let label = null as Buffer | null;

    const r = runHandshake({
      client: {
        random: hex(inputs, 'client_random'),
        x25519Private: hex(inputs, 'client_x25519_private'),
        rsaSecret,
        ...(seed === null ? {} : { identity: okpPrivateFromRaw('ed25519', seed) }),
        // OAEP is randomized: the vector stores its ciphertext. It must hold this very secret
        // under this very label, or the client would be fed a value it did not compute.
        oaepEncrypt: (key, secret, oaepLabel) => {
          assert.equal(key.asymmetricKeyType, 'rsa');
          assertHex(oaepDecrypt(serverKey, encryptedSecret, oaepLabel), secret, 'encrypted_secret decrypts to rsa_secret under H_sh');
          label = Buffer.from(oaepLabel);
          return encryptedSecret;
        },
      },
      server: { serverKey, random: hex(inputs, 'server_random'), x25519Private: hex(inputs, 'server_x25519_private') },
    });

    for (const name of WIRE) assertHex(r.wire[name], hex(wire, name), `wire.${name}`);
    assertHex(r.clientFinishedBody, hex(wire, 'client_finished_body'), 'wire.client_finished_body');
    assertHex(r.accepted.serverFinished, hex(wire, 'server_finished_body'), 'wire.server_finished_body');

    const hSh = hex(values, 'h_sh');
    const hKe = hex(values, 'h_ke');
    assert.ok(label !== null, 'OAEP was used');
    assertHex(label, hSh, 'H_sh (the OAEP label)');
    assertHex(r.clientKeys.transcriptHash, hKe, 'client H_ke');
    assertHex(r.serverKeys.transcriptHash, hKe, 'server H_ke');

    const clientX = x25519KeyPair(hex(inputs, 'client_x25519_private'));
    const serverX = x25519KeyPair(hex(inputs, 'server_x25519_private'));
    assertHex(clientX.publicKey, hex(values, 'client_x25519_public'), 'client_x25519_public');
    assertHex(serverX.publicKey, hex(values, 'server_x25519_public'), 'server_x25519_public');
    const dh = hex(values, 'dh');
    assertHex(x25519SharedSecret(clientX.privateKey, serverX.publicKey), dh, 'dh (client side)');
    assertHex(x25519SharedSecret(serverX.privateKey, clientX.publicKey), dh, 'dh (server side)');

    assertHex(r.serverKeyInfo.serverKeyDer, hex(values, 'server_key'), 'server_key');
    assert.equal(r.serverKeyInfo.fingerprint, str(values, 'server_fingerprint'));

    const derived = deriveKeys(rsaSecret, dh, hKe);
    for (const [field, name] of KEY_FIELDS) {
      const expected = hex(values, name);
      assertHex(r.clientKeyCopy[field], expected, `client ${name}`);
      assertHex(r.serverKeyCopy[field], expected, `server ${name}`);
      assertHex(derived[field], expected, `deriveKeys ${name}`);
    }

    const cf = asClientFinished(decodeBody(r.clientFinishedBody));
    const sf = asServerFinished(decodeBody(r.accepted.serverFinished));
    assertHex(cf.verify, hex(values, 'client_verify'), 'client_verify');
    assertHex(finishedMac(hex(values, 'c_finished_key'), hKe), hex(values, 'client_verify'), 'HMAC(c_finished_key, H_ke)');
    assertHex(sf.verify, hex(values, 'server_verify'), 'server_verify');
    assertHex(finishedMac(hex(values, 's_finished_key'), hKe), hex(values, 'server_verify'), 'HMAC(s_finished_key, H_ke)');

    const identity = hexOrNull(values, 'client_identity');
    const signature = hexOrNull(values, 'client_signature');
    assert.equal(r.accepted.clientFingerprint, strOrNull(values, 'client_fingerprint'));
    if (seed === null) {
      assert.equal(identity, null);
      assert.equal(signature, null);
      assert.equal(cf.identity, undefined);
      assert.equal(r.accepted.identity, null);
    } else {
      assert.ok(identity !== null && signature !== null && cf.identity !== undefined && cf.signature !== undefined);
      assertHex(cf.identity, identity, 'client_identity');
      assertHex(cf.signature, signature, 'client_signature');
      const again = signTranscript(okpPrivateFromRaw('ed25519', seed), hKe);
      assertHex(again.signature, signature, 'Ed25519 signature is deterministic');
    }

    for (const rec of list(h, 'records')) {
      const direction = str(rec, 'direction');
      assert.ok(direction === 'c2s' || direction === 's2c', `direction ${direction}`);
      const key = hex(values, `${direction}_key`);
      const iv = hex(values, `${direction}_iv`);
      const seq = num(rec, 'seq');
      const body = hex(rec, 'body');
      assertHex(Buffer.concat(new RecordSealer(key, iv, { seq }).seal(body)), hex(rec, 'record'), `${direction} record ${seq}`);
      assertHex(new RecordOpener(key, iv, { start: { seq } }).open(hex(rec, 'record')), body, `${direction} record ${seq} opens`);
      decodeBody(body);
    }
  });
}

test('there is a resumed handshake vector, and its psk is one of handshake.json', () => {
  assert.ok(resumptions.length >= 1);
  const psks = handshakes.map(({ v }) => hex(get(v, 'values'), 'resumption_psk').toString('hex'));
  for (const { v } of resumptions) assert.ok(psks.includes(hex(get(v, 'inputs'), 'psk').toString('hex')));
});

for (const { file, v: h } of resumptions) {
  test(`${file}: ${str(h, 'name')} (§7.5)`, () => {
    const inputs = get(h, 'inputs');
    const wire = get(h, 'wire');
    const values = get(h, 'values');
    const serverKey = createPrivateKey(str(inputs, 'server_rsa_private_pem'));
    const psk = hex(inputs, 'psk');
    const seed = hex(inputs, 'client_ed25519_private');
    const identity = okpPrivateFromRaw('ed25519', seed);
    // The ticket key by §7.5's formula, and the ticket: sealed by that key, opened by ours.
    const spkiHash = createHash('sha256').update(serverKeySpki(serverKey)).digest();
    const ticketKey = Buffer.from(hkdfSync('sha256', serverKey.export({ type: 'pkcs8', format: 'der' }), spkiHash, Buffer.concat([Buffer.from('stx/1 ticket key', 'ascii'), Buffer.of(1)]), 32));
    assertHex(ticketKey, hex(values, 'ticket_key'), 'ticket_key');
    const ticket = new TicketKey(serverKey, MAX_TICKET_LIFETIME_S).seal({ issuedAt: num(inputs, 'issued_at'), identity: okpPublicRaw('ed25519', identity), psk }, hex(inputs, 'ticket_nonce'));
    assertHex(ticket, hex(values, 'ticket'), 'ticket');
    const now = num(inputs, 'now');
    const r = runResumption({
      client: { random: hex(inputs, 'client_random'), x25519Private: hex(inputs, 'client_x25519_private'), identity, askTicket: true, ticket: { ticket, psk, serverFingerprint: fingerprint(serverKeySpki(serverKey)) } },
      server: { serverKey, random: hex(inputs, 'server_random'), x25519Private: hex(inputs, 'server_x25519_private'), now: () => now, ticketNonce: hex(inputs, 'new_ticket_nonce') },
    });
    assert.ok('psk' in r && r.newTicketRecord !== null && r.accepted.newTicket !== null, 'the ticket is taken');
    for (const name of ['client_preamble', 'client_hello', 'server_preamble', 'server_hello', 'client_finished_record', 'server_finished_record'] as const) {
      assertHex(r.wire[name], hex(wire, name), `wire.${name}`);
    }
    assertHex(r.clientFinishedBody, hex(wire, 'client_finished_body'), 'wire.client_finished_body');
    assertHex(r.accepted.serverFinished, hex(wire, 'server_finished_body'), 'wire.server_finished_body');
    assertHex(r.accepted.newTicket, hex(wire, 'new_ticket_body'), 'wire.new_ticket_body');
    assertHex(r.newTicketRecord, hex(wire, 'new_ticket_record'), 'wire.new_ticket_record');
    assert.equal(r.accepted.clientFingerprint, str(values, 'client_fingerprint'));
    // ikm = psk ‖ dh, H_ke = H_sh (no KEY_EXCHANGE).
    const hSh = createHash('sha256').update(Buffer.concat([hex(wire, 'client_preamble'), hex(wire, 'client_hello'), hex(wire, 'server_preamble'), hex(wire, 'server_hello')])).digest();
    assertHex(hSh, hex(values, 'h_ke'), 'H_ke = H_sh');
    const dh = hex(values, 'dh');
    assertHex(x25519SharedSecret(x25519KeyPair(hex(inputs, 'client_x25519_private')).privateKey, hex(values, 'server_x25519_public')), dh, 'dh');
    const derived = deriveKeys(psk, dh, hSh);
    for (const [field, name] of KEY_FIELDS) {
      const expected = hex(values, name);
      assertHex(r.clientKeyCopy[field], expected, `client ${name}`);
      assertHex(r.serverKeyCopy[field], expected, `server ${name}`);
      assertHex(derived[field], expected, `deriveKeys ${name}`);
    }
  });
}

for (const { file, v: c } of sealVectors) {
  test(`${file}: seal ${str(c, 'comment')}`, () => {
    const key = hex(c, 'key');
    const iv = hex(c, 'iv');
    const seq = num(c, 'seq');
    const body = hex(c, 'body');
    const record = hex(c, 'record');
    const sealer = new RecordSealer(key, iv, { seq });
    assertHex(Buffer.concat(sealer.seal(body)), record, 'sealed record');
    assert.equal(sealer.seq, seq + 1);
    const opener = new RecordOpener(key, iv, { start: { seq } });
    assertHex(opener.open(record), body, 'opened body');
    assert.equal(opener.seq, seq + 1);
  });
}

for (const { file, v: c } of failVectors) {
  test(`${file}: open fails, ${str(c, 'comment')}`, () => {
    const opener = new RecordOpener(hex(c, 'key'), hex(c, 'iv'), { start: { seq: num(c, 'seq') } });
    const error = str(c, 'error');
    assert.throws(
      () => opener.open(hex(c, 'record')),
      (err: unknown) => err instanceof StxError && err.code === error,
      `expected ${error}`,
    );
  });
}
