// External vectors against our wrappers (test/vectors/README.md): Wycheproof AES-GCM,
// RSA-OAEP-SHA-256 (2048 and 3072), X25519, HKDF-SHA-256, Ed25519, and RFC 5869. Each test counts
// the cases it checked and asserts the count, so nothing is skipped silently; the only skips are
// the three AES-GCM LongIv cases named below.
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHmac, createPrivateKey, type CipherGCMTypes } from 'node:crypto';
import { test } from 'node:test';
import { CryptoError } from '../src/proto/errors.js';
import { ed25519Verify, gcmOpen, gcmSeal, hkdfSha256, oaepDecrypt, oaepEncrypt, okpPrivateFromRaw, x25519SharedSecret } from '../src/crypto/index.js';
import { get, hex, list, num, readJson, str } from './tools/crypto-files.js';

interface Case {
  readonly group: unknown;
  readonly test: unknown;
  readonly tcId: number;
  readonly result: string;
}

/** Every test of a Wycheproof file, with its group; checks numberOfTests against the file. */
function wycheproof(file: string): Case[] {
  const doc = readJson('test', 'vectors', 'wycheproof', file);
  const cases: Case[] = [];
  for (const group of list(doc, 'testGroups')) {
    for (const t of list(group, 'tests')) cases.push({ group, test: t, tcId: num(t, 'tcId'), result: str(t, 'result') });
  }
  assert.equal(cases.length, num(doc, 'numberOfTests'), `${file}: numberOfTests`);
  return cases;
}

const isCode = (code: string) => (err: unknown) => err instanceof CryptoError && err.code === code;

test('Wycheproof AES-GCM', () => {
  const cases = wycheproof('aes_gcm_test.json');
  // 257-byte (2056-bit) IVs, "valid" in Wycheproof but refused by OpenSSL's createDecipheriv. The
  // record layer only ever uses 96-bit nonces (§8), so these three are skipped, by tcId.
  const LONG_IV_SKIPPED = [268, 272, 276];
  let viaWrapper = 0;
  let viaNode = 0;
  const skipped: number[] = [];
  for (const { group, test: t, tcId, result } of cases) {
    const keySize = num(group, 'keySize');
    const ivSize = num(group, 'ivSize');
    assert.equal(num(group, 'tagSize'), 128, `tcId ${tcId}`);
    const [key, iv, aad, msg, ct, tag] = [hex(t, 'key'), hex(t, 'iv'), hex(t, 'aad'), hex(t, 'msg'), hex(t, 'ct'), hex(t, 'tag')];
    if (keySize === 256 && ivSize === 96) {
      // Our wrapper: AES-256-GCM, 96-bit nonce, 128-bit tag — exactly what §8 uses.
      viaWrapper++;
      if (result === 'valid') {
        const sealed = gcmSeal(key, iv, aad, [msg.subarray(0, 7), msg.subarray(7)]);
        assert.deepEqual(Buffer.concat(sealed.ciphertext), ct, `tcId ${tcId} ciphertext`);
        assert.deepEqual(sealed.tag, tag, `tcId ${tcId} tag`);
        assert.deepEqual(gcmOpen(key, iv, aad, ct, tag), msg, `tcId ${tcId} open`);
      } else {
        assert.equal(result, 'invalid', `tcId ${tcId}`);
        assert.throws(() => gcmOpen(key, iv, aad, ct, tag), isCode('DECRYPT_FAILED'), `tcId ${tcId}`);
      }
      continue;
    }
    if (ivSize === 2056) {
      skipped.push(tcId);
      continue;
    }
    // Other key and IV sizes: node:crypto directly (the wrapper refuses them by design).
    viaNode++;
    const algorithm: CipherGCMTypes = keySize === 128 ? 'aes-128-gcm' : keySize === 192 ? 'aes-192-gcm' : 'aes-256-gcm';
    const open = (): Buffer => {
      const d = createDecipheriv(algorithm, key, iv, { authTagLength: 16 });
      d.setAAD(aad);
      d.setAuthTag(tag);
      return Buffer.concat([d.update(ct), d.final()]);
    };
    if (result === 'valid') {
      const c = createCipheriv(algorithm, key, iv, { authTagLength: 16 });
      c.setAAD(aad);
      assert.deepEqual(Buffer.concat([c.update(msg), c.final()]), ct, `tcId ${tcId}`);
      assert.deepEqual(c.getAuthTag(), tag, `tcId ${tcId}`);
      assert.deepEqual(open(), msg, `tcId ${tcId}`);
    } else {
      assert.throws(open, Error, `tcId ${tcId}`);
    }
  }
  assert.deepEqual(skipped, LONG_IV_SKIPPED);
  assert.equal(viaWrapper, 66);
  assert.equal(viaWrapper + viaNode + skipped.length, 316);
  assert.throws(() => gcmSeal(Buffer.alloc(16), Buffer.alloc(12), Buffer.alloc(0), []), RangeError, 'wrapper is AES-256 only');
  assert.throws(() => gcmOpen(Buffer.alloc(32), Buffer.alloc(16), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(16)), RangeError);
  assert.throws(() => gcmOpen(Buffer.alloc(32), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(12)), isCode('DECRYPT_FAILED'));
});

for (const [file, count] of [
  ['rsa_oaep_2048_sha256_mgf1sha256_test.json', 37],
  ['rsa_oaep_3072_sha256_mgf1sha256_test.json', 37],
] as const) {
  test(`Wycheproof RSA-OAEP: ${file}`, () => {
    let checked = 0;
    for (const { group, test: t, tcId, result } of wycheproof(file)) {
      assert.equal(str(group, 'sha'), 'SHA-256');
      assert.equal(str(group, 'mgfSha'), 'SHA-256');
      const key = createPrivateKey(str(group, 'privateKeyPem'));
      const [msg, ct, label] = [hex(t, 'msg'), hex(t, 'ct'), hex(t, 'label')];
      checked++;
      if (result === 'valid') {
        assert.deepEqual(oaepDecrypt(key, ct, label), msg, `tcId ${tcId}`);
      } else {
        assert.equal(result, 'invalid', `tcId ${tcId}`);
        assert.throws(() => oaepDecrypt(key, ct, label), isCode('HANDSHAKE_FAILED'), `tcId ${tcId}`);
      }
    }
    assert.equal(checked, count);
  });
}

test('RSA-OAEP wrapper round trip: label binds the ciphertext (§7.1)', () => {
  const group = list(readJson('test', 'vectors', 'wycheproof', 'rsa_oaep_3072_sha256_mgf1sha256_test.json'), 'testGroups')[0];
  const key = createPrivateKey(str(group, 'privateKeyPem'));
  const secret = Buffer.alloc(32, 7);
  const label = Buffer.alloc(32, 1);
  const ct = oaepEncrypt(key, secret, label);
  assert.equal(ct.length, 384);
  assert.deepEqual(oaepDecrypt(key, ct, label), secret);
  assert.throws(() => oaepDecrypt(key, ct, Buffer.alloc(32, 2)), isCode('HANDSHAKE_FAILED'));
});

test('Wycheproof X25519: shared secrets, and all-zero results rejected', () => {
  let equal = 0;
  let zeroRejected = 0;
  for (const { test: t, tcId, result } of wycheproof('x25519_test.json')) {
    const priv = okpPrivateFromRaw('x25519', hex(t, 'private'));
    const shared = hex(t, 'shared');
    if (shared.every((b) => b === 0)) {
      // Small-order peer keys: "acceptable" to compute in Wycheproof, refused by stx (§7.1).
      assert.throws(() => x25519SharedSecret(priv, hex(t, 'public')), isCode('HANDSHAKE_FAILED'), `tcId ${tcId}`);
      zeroRejected++;
    } else {
      // "valid" and non-zero "acceptable" (twist, non-canonical) must give the RFC 7748 result.
      assert.ok(result === 'valid' || result === 'acceptable', `tcId ${tcId}`);
      assert.deepEqual(x25519SharedSecret(priv, hex(t, 'public')), shared, `tcId ${tcId}`);
      equal++;
    }
  }
  assert.equal(zeroRejected, 31);
  assert.equal(equal + zeroRejected, 518);
  const priv = okpPrivateFromRaw('x25519', Buffer.alloc(32, 9));
  assert.throws(() => x25519SharedSecret(priv, Buffer.alloc(31)), isCode('HANDSHAKE_FAILED'), 'short key');
});

test('Wycheproof HKDF-SHA-256', () => {
  let checked = 0;
  for (const { test: t, tcId, result } of wycheproof('hkdf_sha256_test.json')) {
    const [ikm, salt, info] = [hex(t, 'ikm'), hex(t, 'salt'), hex(t, 'info')];
    const size = num(t, 'size');
    checked++;
    if (result === 'valid') {
      assert.deepEqual(hkdfSha256(salt, ikm, info, size), hex(t, 'okm'), `tcId ${tcId}`);
    } else {
      // Output longer than 255 * 32 bytes: a caller error, refused by node:crypto.
      assert.equal(result, 'invalid');
      assert.throws(() => hkdfSha256(salt, ikm, info, size), RangeError, `tcId ${tcId}`);
    }
  }
  assert.equal(checked, 86);
});

test('Wycheproof Ed25519 verification', () => {
  let checked = 0;
  for (const { group, test: t, tcId, result } of wycheproof('ed25519_test.json')) {
    const pk = hex(get(group, 'publicKey'), 'pk');
    checked++;
    assert.equal(ed25519Verify(pk, hex(t, 'msg'), hex(t, 'sig')), result === 'valid', `tcId ${tcId} (${result})`);
  }
  assert.equal(checked, 151);
});

test('RFC 5869 Appendix A (SHA-256 cases)', () => {
  const cases = list(readJson('test', 'vectors', 'rfc5869_hkdf_sha256.json'), 'tests');
  let checked = 0;
  for (const c of cases) {
    const [ikm, salt, info, prk, okm] = [hex(c, 'ikm'), hex(c, 'salt'), hex(c, 'info'), hex(c, 'prk'), hex(c, 'okm')];
    // PRK = HMAC-Hash(salt, IKM) (RFC 5869 §2.2); there is no extract-only wrapper, so node:crypto.
    assert.deepEqual(createHmac('sha256', salt.length === 0 ? Buffer.alloc(32) : salt).update(ikm).digest(), prk);
    assert.deepEqual(hkdfSha256(salt, ikm, info, num(c, 'L')), okm, `tcId ${num(c, 'tcId')}`);
    checked++;
  }
  assert.equal(checked, 3);
});
