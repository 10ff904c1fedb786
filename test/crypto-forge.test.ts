// node-forge as an independent second implementation of spec/vectors/handshake*.json and
// spec/vectors/records*.json (spec/PROTOCOL.md §5–§8). Nothing from src/crypto is used here:
// transcript hashes (forge.md.sha256), RSA-OAEP-SHA-256/MGF1-SHA-256 with label (forge.pki),
// HKDF built from forge.hmac per RFC 5869, FINISHED MACs (forge.hmac), AES-256-GCM records and
// nonces (forge.cipher), fingerprints, and Ed25519 (forge.pki.ed25519). forge has no X25519:
// the X25519 public keys and dh are checked with node:crypto, the one exception.
// MessagePack payloads are read with msgpackr directly, not through our codec.
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { test } from 'node:test';
import { unpack } from 'msgpackr';
import forge from 'node-forge';
import { vectorFiles } from './support/vectors.js';
import { get, has, hex, hexOrNull, list, num, readJson, str, strOrNull } from './tools/crypto-files.js';

const bin = (b: Buffer): string => b.toString('binary');
const buf = (s: string): Buffer => Buffer.from(s, 'binary');

function sha256(...parts: Buffer[]): Buffer {
  const md = forge.md.sha256.create();
  for (const p of parts) md.update(bin(p));
  return buf(md.digest().getBytes());
}

function hmac(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = forge.hmac.create();
  h.start('sha256', bin(key));
  for (const p of parts) h.update(bin(p));
  return buf(h.digest().getBytes());
}

/** RFC 5869 §2.2–2.3 on forge's HMAC-SHA-256. */
function hkdf(salt: Buffer, ikm: Buffer, info: Buffer, length: number): Buffer {
  const prk = hmac(salt.length === 0 ? Buffer.alloc(32) : salt, ikm);
  const blocks: Buffer[] = [];
  let t: Buffer = Buffer.alloc(0);
  for (let i = 1; blocks.length * 32 < length; i++) {
    t = hmac(prk, t, info, Buffer.from([i]));
    blocks.push(t);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** nonce = iv XOR (0^4 ‖ seq:u64) (§8), computed with BigInt, independently of record.ts. */
function nonce(iv: Buffer, seq: number): Buffer {
  const pad = Buffer.alloc(12);
  pad.writeBigUInt64BE(BigInt(seq), 4);
  return Buffer.from(iv.map((b, i) => b ^ (pad[i] ?? 0)));
}

/** Opens a record (length ‖ ct ‖ tag, length as AAD) with forge; null if it does not authenticate. */
function forgeOpen(key: Buffer, iv: Buffer, seq: number, record: Buffer): Buffer | null {
  const decipher = forge.cipher.createDecipher('AES-GCM', forge.util.createBuffer(bin(key)));
  decipher.start({
    iv: bin(nonce(iv, seq)),
    additionalData: bin(record.subarray(0, 4)),
    tagLength: 128,
    tag: forge.util.createBuffer(bin(record.subarray(record.length - 16))),
  });
  decipher.update(forge.util.createBuffer(bin(record.subarray(4, record.length - 16))));
  return decipher.finish() ? buf(decipher.output.getBytes()) : null;
}

/** Seals a body with forge into a whole record. */
function forgeSeal(key: Buffer, iv: Buffer, seq: number, body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length + 16);
  const cipher = forge.cipher.createCipher('AES-GCM', forge.util.createBuffer(bin(key)));
  cipher.start({ iv: bin(nonce(iv, seq)), additionalData: bin(header), tagLength: 128 });
  cipher.update(forge.util.createBuffer(bin(body)));
  assert.ok(cipher.finish());
  return Buffer.concat([header, buf(cipher.output.getBytes()), buf(cipher.mode.tag.getBytes())]);
}

function fingerprint(der: Buffer): string {
  return 'SHA256:' + forge.util.encode64(bin(sha256(der))).replace(/=+$/, '');
}

/** The MessagePack map of a frame body (type ‖ payload), with its type byte checked. */
function payload(body: Buffer, type: number): Map<string, unknown> {
  assert.equal(body[0], type, 'frame type');
  const value: unknown = unpack(body.subarray(1));
  assert.ok(typeof value === 'object' && value !== null);
  return new Map(Object.entries(value));
}
function binField(m: Map<string, unknown>, key: string): Buffer {
  const v = m.get(key);
  assert.ok(v instanceof Uint8Array, `${key} is bin`);
  return Buffer.from(v);
}
/** The body of a whole plaintext frame, its length prefix checked. */
function frameBody(frame: Buffer): Buffer {
  assert.equal(frame.readUInt32BE(0), frame.length - 4, 'frame length prefix');
  return frame.subarray(4);
}

const handshakes = vectorFiles('handshake').flatMap(({ vectors }) => vectors);
const records = vectorFiles('records').flatMap(({ vectors }) => vectors);

for (const h of handshakes) {
  test(`forge recomputes handshake vector: ${str(h, 'name')}`, () => {
    const inputs = get(h, 'inputs');
    const wire = get(h, 'wire');
    const values = get(h, 'values');
    const w = (name: string): Buffer => hex(wire, name);
    const v = (name: string): Buffer => hex(values, name);

    // Preambles (§3).
    assert.equal(w('client_preamble').toString('hex'), '5354580000010000');
    assert.equal(w('server_preamble').toString('hex'), '5354580000010000');

    // Hellos (§4) carry the fixed randoms and public keys.
    const ch = payload(frameBody(w('client_hello')), 0x01);
    assert.deepEqual(binField(ch, 'random'), hex(inputs, 'client_random'));
    assert.deepEqual(binField(ch, 'x25519'), v('client_x25519_public'));
    const sh = payload(frameBody(w('server_hello')), 0x02);
    assert.deepEqual(binField(sh, 'random'), hex(inputs, 'server_random'));
    assert.deepEqual(binField(sh, 'x25519'), v('server_x25519_public'));
    assert.deepEqual(binField(sh, 'server_key'), v('server_key'));

    // Server key and fingerprint (§5): the SPKI is the public half of the stored private key.
    const rsa = forge.pki.privateKeyFromPem(str(inputs, 'server_rsa_private_pem'));
    const spki = forge.pki.publicKeyFromAsn1(forge.asn1.fromDer(bin(v('server_key'))));
    assert.ok('n' in spki && spki.n.equals(rsa.n) && spki.e.equals(rsa.e), 'server_key matches the private key');
    assert.equal(rsa.n.bitLength(), 3072);
    assert.equal(fingerprint(v('server_key')), str(values, 'server_fingerprint'));

    // Transcript hashes (§6.1).
    const hSh = sha256(w('client_preamble'), w('client_hello'), w('server_preamble'), w('server_hello'));
    assert.deepEqual(hSh, v('h_sh'), 'H_sh');
    const hKe = sha256(w('client_preamble'), w('client_hello'), w('server_preamble'), w('server_hello'), w('key_exchange'));
    assert.deepEqual(hKe, v('h_ke'), 'H_ke');

    // KEY_EXCHANGE (§7.1): RSA-OAEP-SHA-256, MGF1-SHA-256, label H_sh.
    const ke = payload(frameBody(w('key_exchange')), 0x03);
    const encrypted = binField(ke, 'encrypted_secret');
    assert.deepEqual(encrypted, hex(inputs, 'encrypted_secret'));
    const secret = buf(
      rsa.decrypt(bin(encrypted), 'RSA-OAEP', {
        md: forge.md.sha256.create(),
        mgf1: { md: forge.md.sha256.create() },
        label: bin(hSh),
      }),
    );
    assert.deepEqual(secret, hex(inputs, 'rsa_secret'), 'OAEP plaintext is rsa_secret');
    assert.throws(() =>
      rsa.decrypt(bin(encrypted), 'RSA-OAEP', { md: forge.md.sha256.create(), mgf1: { md: forge.md.sha256.create() }, label: '' }),
    );

    // X25519 with node:crypto (forge has none).
    const xPriv = (raw: Buffer) =>
      createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), raw]), format: 'der', type: 'pkcs8' });
    const xPub = (raw: Buffer) =>
      createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), raw]), format: 'der', type: 'spki' });
    const clientPriv = xPriv(hex(inputs, 'client_x25519_private'));
    assert.deepEqual(createPublicKey(clientPriv).export({ format: 'der', type: 'spki' }).subarray(12), v('client_x25519_public'));
    const serverPriv = xPriv(hex(inputs, 'server_x25519_private'));
    assert.deepEqual(createPublicKey(serverPriv).export({ format: 'der', type: 'spki' }).subarray(12), v('server_x25519_public'));
    const dh = diffieHellman({ privateKey: clientPriv, publicKey: xPub(v('server_x25519_public')) });
    assert.deepEqual(dh, v('dh'), 'dh');

    // Key schedule (§7.2).
    const ikm = Buffer.concat([secret, dh]);
    const K = (label: string, len: number): Buffer => hkdf(hKe, ikm, Buffer.from(`stx/1 ${label}`, 'ascii'), len);
    const keys = {
      c2s_key: K('c2s key', 32),
      c2s_iv: K('c2s iv', 12),
      s2c_key: K('s2c key', 32),
      s2c_iv: K('s2c iv', 12),
      c_finished_key: K('c finished', 32),
      s_finished_key: K('s finished', 32),
      resumption_psk: K('resumption', 32),
    };
    for (const [name, value] of Object.entries(keys)) assert.deepEqual(value, v(name), name);

    // FINISHED (§7.3) inside the first record of each direction (§8, seq 0).
    const cfBody = forgeOpen(keys.c2s_key, keys.c2s_iv, 0, w('client_finished_record'));
    assert.ok(cfBody !== null, 'CLIENT_FINISHED record authenticates');
    assert.deepEqual(cfBody, w('client_finished_body'));
    assert.deepEqual(forgeSeal(keys.c2s_key, keys.c2s_iv, 0, cfBody), w('client_finished_record'));
    const cf = payload(cfBody, 0x04);
    assert.deepEqual(binField(cf, 'verify'), hmac(keys.c_finished_key, hKe));
    assert.deepEqual(v('client_verify'), hmac(keys.c_finished_key, hKe));

    const sfBody = forgeOpen(keys.s2c_key, keys.s2c_iv, 0, w('server_finished_record'));
    assert.ok(sfBody !== null, 'SERVER_FINISHED record authenticates');
    assert.deepEqual(sfBody, w('server_finished_body'));
    assert.deepEqual(forgeSeal(keys.s2c_key, keys.s2c_iv, 0, sfBody), w('server_finished_record'));
    assert.deepEqual(binField(payload(sfBody, 0x05), 'verify'), hmac(keys.s_finished_key, hKe));
    assert.deepEqual(v('server_verify'), hmac(keys.s_finished_key, hKe));

    // Client signature (§7.4) with forge's Ed25519.
    const seed = hexOrNull(inputs, 'client_ed25519_private');
    if (seed === null) {
      assert.equal(cf.has('identity') || cf.has('signature'), false);
      assert.equal(hexOrNull(values, 'client_signature'), null);
      assert.equal(strOrNull(values, 'client_fingerprint'), null);
    } else {
      const pair = forge.pki.ed25519.generateKeyPair({ seed });
      const identity = Buffer.from(pair.publicKey);
      assert.deepEqual(binField(cf, 'identity'), identity);
      assert.deepEqual(v('client_identity'), identity);
      const message = Buffer.concat([Buffer.from('stx/1 client signature\0', 'ascii'), hKe]);
      const signature = binField(cf, 'signature');
      assert.deepEqual(signature, v('client_signature'));
      assert.ok(forge.pki.ed25519.verify({ message, signature, publicKey: identity }));
      assert.deepEqual(Buffer.from(forge.pki.ed25519.sign({ message, privateKey: pair.privateKey })), signature);
      assert.equal(forge.pki.ed25519.verify({ message: Buffer.concat([message, Buffer.from([0])]), signature, publicKey: identity }), false);
      // Identity fingerprint: over the Ed25519 DER SubjectPublicKeyInfo (RFC 8410).
      const spkiEd = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), identity]);
      assert.equal(fingerprint(spkiEd), str(values, 'client_fingerprint'));
    }

    // The next records of each direction.
    for (const rec of list(h, 'records')) {
      const dir = str(rec, 'direction');
      const key = dir === 'c2s' ? keys.c2s_key : keys.s2c_key;
      const iv = dir === 'c2s' ? keys.c2s_iv : keys.s2c_iv;
      const seq = num(rec, 'seq');
      assert.ok(seq >= 1, 'records follow FINISHED');
      assert.deepEqual(forgeOpen(key, iv, seq, hex(rec, 'record')), hex(rec, 'body'), `${dir} ${seq} opens`);
      assert.deepEqual(forgeSeal(key, iv, seq, hex(rec, 'body')), hex(rec, 'record'), `${dir} ${seq} seals`);
    }
  });
}

for (const h of vectorFiles('resumption').flatMap(({ vectors }) => vectors)) {
  test(`forge recomputes the resumed handshake vector: ${str(h, 'name')} (§7.5)`, () => {
    const inputs = get(h, 'inputs');
    const wire = get(h, 'wire');
    const values = get(h, 'values');
    const w = (k: string): Buffer => hex(wire, k);
    const v = (k: string): Buffer => hex(values, k);
    const psk = hex(inputs, 'psk');
    // The ticket opens under ticket_key (the PKCS#8 DER export is node:crypto's, the one other exception).
    const key = createPrivateKey(str(inputs, 'server_rsa_private_pem'));
    const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
    const ticketKey = hkdf(sha256(spki), key.export({ format: 'der', type: 'pkcs8' }), Buffer.concat([Buffer.from('stx/1 ticket key', 'ascii'), Buffer.of(1)]), 32);
    assert.deepEqual(ticketKey, v('ticket_key'));
    const ticket = v('ticket');
    const decipher = forge.cipher.createDecipher('AES-GCM', forge.util.createBuffer(bin(ticketKey)));
    decipher.start({ iv: bin(ticket.subarray(1, 13)), additionalData: bin(Buffer.concat([Buffer.of(1), sha256(spki)])), tagLength: 128, tag: forge.util.createBuffer(bin(ticket.subarray(ticket.length - 16))) });
    decipher.update(forge.util.createBuffer(bin(ticket.subarray(13, ticket.length - 16))));
    assert.ok(decipher.finish(), 'the ticket authenticates');
    const plain = buf(decipher.output.getBytes());
    assert.equal(Number(plain.readBigUInt64BE(0)), num(inputs, 'issued_at'));
    assert.equal(plain[8], 1, 'an Ed25519 identity');
    assert.deepEqual(plain.subarray(9, 41), Buffer.from(forge.pki.ed25519.generateKeyPair({ seed: hex(inputs, 'client_ed25519_private') }).publicKey));
    assert.deepEqual(plain.subarray(41), psk);
    assert.deepEqual(binField(payload(frameBody(w('client_hello')), 0x01), 'ticket'), ticket);
    assert.equal(payload(frameBody(w('server_hello')), 0x02).get('resumed'), 1);
    // H_ke = H_sh, ikm = psk ‖ dh (dh as the vector states it; forge has no X25519).
    const hKe = sha256(w('client_preamble'), w('client_hello'), w('server_preamble'), w('server_hello'));
    assert.deepEqual(hKe, v('h_ke'));
    const ikm = Buffer.concat([psk, v('dh')]);
    const K = (label: string, len: number): Buffer => hkdf(hKe, ikm, Buffer.from(`stx/1 ${label}`, 'ascii'), len);
    const keys = { c2s_key: K('c2s key', 32), c2s_iv: K('c2s iv', 12), s2c_key: K('s2c key', 32), s2c_iv: K('s2c iv', 12), c_finished_key: K('c finished', 32), s_finished_key: K('s finished', 32), resumption_psk: K('resumption', 32) };
    for (const [name, value] of Object.entries(keys)) assert.deepEqual(value, v(name), name);
    const cfBody = forgeOpen(keys.c2s_key, keys.c2s_iv, 0, w('client_finished_record'));
    assert.ok(cfBody !== null);
    const cf = payload(cfBody, 0x04);
    assert.deepEqual(binField(cf, 'verify'), hmac(keys.c_finished_key, hKe));
    assert.equal(cf.has('identity') || cf.has('signature'), false, 'a resumed CLIENT_FINISHED names no identity');
    const sfBody = forgeOpen(keys.s2c_key, keys.s2c_iv, 0, w('server_finished_record'));
    assert.ok(sfBody !== null);
    assert.deepEqual(binField(payload(sfBody, 0x05), 'verify'), hmac(keys.s_finished_key, hKe));
    assert.deepEqual(forgeOpen(keys.s2c_key, keys.s2c_iv, 1, w('new_ticket_record')), w('new_ticket_body'), 'NEW_TICKET is the next S→C record');
  });
}

test('forge recomputes every record seal vector', () => {
  const cases = records.filter((c) => has(c, 'body'));
  assert.ok(cases.length >= 5);
  for (const c of cases) {
    const [key, iv, seq, body, record] = [hex(c, 'key'), hex(c, 'iv'), num(c, 'seq'), hex(c, 'body'), hex(c, 'record')];
    assert.deepEqual(forgeSeal(key, iv, seq, body), record, str(c, 'comment'));
    assert.deepEqual(forgeOpen(key, iv, seq, record), body, str(c, 'comment'));
  }
});

test('forge refuses every DECRYPT_FAILED open vector', () => {
  // KEY_LIMIT and MALFORMED_FRAME cases are limits of §8 rather than AES-GCM failures; forge has
  // nothing to say about them, so only the DECRYPT_FAILED ones are counted here.
  const cases = records.filter((c) => has(c, 'error') && str(c, 'error') === 'DECRYPT_FAILED');
  assert.ok(cases.length >= 5);
  for (const c of cases) {
    assert.equal(forgeOpen(hex(c, 'key'), hex(c, 'iv'), num(c, 'seq'), hex(c, 'record')), null, str(c, 'comment'));
  }
});

test('forge HKDF agrees with RFC 5869 (the helper above is itself checked)', () => {
  const cases = list(readJson('test', 'vectors', 'rfc5869_hkdf_sha256.json'), 'tests');
  assert.equal(cases.length, 3);
  for (const c of cases) {
    assert.deepEqual(hkdf(hex(c, 'salt'), hex(c, 'ikm'), hex(c, 'info'), num(c, 'L')), hex(c, 'okm'));
  }
});
