// RSA side of the key exchange (spec/PROTOCOL.md §4 `server_key`, §7.1): RSAES-OAEP with
// SHA-256 and MGF1-SHA-256 (RFC 8017), label = H_sh.
import { constants, createPublicKey, privateDecrypt, publicEncrypt, type KeyObject } from 'node:crypto';
import { CryptoError } from '../proto/errors.js';

const MIN_SERVER_KEY_BITS = 2048;
const MAX_SERVER_KEY_BITS = 8192;

/** Throws `make(detail)` unless `key` is an rsaEncryption key of 2048..8192 bits (§4). */
function checkRsaKey(key: KeyObject, make: (detail: string) => Error): void {
  if (key.asymmetricKeyType !== 'rsa') throw make(`server key is ${key.asymmetricKeyType ?? key.type}, not rsaEncryption`);
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (bits === undefined || bits < MIN_SERVER_KEY_BITS || bits > MAX_SERVER_KEY_BITS) {
    throw make(`server key of ${bits ?? '?'} bits is outside ${MIN_SERVER_KEY_BITS}..${MAX_SERVER_KEY_BITS}`);
  }
}

/** Parses SERVER_HELLO.server_key (DER SubjectPublicKeyInfo); anything else is HANDSHAKE_FAILED. */
export function parseServerKey(spkiDer: Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiDer, format: 'der', type: 'spki' });
  } catch (err) {
    throw new CryptoError('HANDSHAKE_FAILED', 'server_key is not a DER SubjectPublicKeyInfo', { cause: err });
  }
  checkRsaKey(key, (detail) => new CryptoError('HANDSHAKE_FAILED', detail));
  return key;
}

/** Checks a local server private key (a configuration error is a plain Error naming the cause). */
export function checkServerPrivateKey(key: KeyObject): void {
  if (key.type !== 'private') throw new TypeError('the server key must be a private key');
  checkRsaKey(key, (detail) => new TypeError(detail));
}

/** serverKeySpki() per key: deriving and exporting it took ~1 ms of each handshake's server CPU. */
const spkiOf = new WeakMap<KeyObject, Buffer>();

/** The DER SubjectPublicKeyInfo sent as server_key (a copy: callers may keep or change it). */
export function serverKeySpki(key: KeyObject): Buffer {
  let der = spkiOf.get(key);
  if (der === undefined) {
    der = createPublicKey(key).export({ type: 'spki', format: 'der' });
    spkiOf.set(key, der);
  }
  return Buffer.from(der);
}

/** RSAES-OAEP-Encrypt(key, plaintext, label) with SHA-256 and MGF1-SHA-256. */
export function oaepEncrypt(publicKey: KeyObject, plaintext: Buffer, label: Buffer): Buffer {
  return publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
    plaintext,
  );
}

/** RSAES-OAEP-Decrypt; every failure is HANDSHAKE_FAILED, with no detail that tells them apart. */
export function oaepDecrypt(privateKey: KeyObject, ciphertext: Buffer, label: Buffer): Buffer {
  try {
    return privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
      ciphertext,
    );
  } catch {
    throw new CryptoError('HANDSHAKE_FAILED', 'RSA-OAEP decryption failed');
  }
}

const OAEP_FAILED = Buffer.alloc(0);

/**
 * RSAES-OAEP-Decrypt of a secret of `fallback.length` bytes, the way TLS servers take an
 * RSA-encrypted premaster secret against Bleichenbacher-style timing (RFC 5246 §7.4.7.1): the
 * caller draws `fallback` at random before decrypting; the result is the plaintext if it decrypted
 * to exactly that many bytes, else the fallback, chosen byte by byte under a mask, so that the same
 * calls follow either way. What is left apart is inside node:crypto: privateDecrypt throws on
 * failure and builds an error object to do so, ~20–50 µs of CPU here against ~100–190 before
 * (bench/micro/oaep-timing.ts). Calling it once more on success, with an input OpenSSL refuses at
 * once, was measured too: it overshot by as much the other way.
 * `decrypted` is for the local log only.
 */
export function oaepDecryptSecret(privateKey: KeyObject, ciphertext: Buffer, label: Buffer, fallback: Buffer): { readonly secret: Buffer; readonly decrypted: boolean } {
  const n = fallback.length;
  let plaintext = OAEP_FAILED;
  // The error node:crypto throws is dropped unread: without a stack to capture it costs ~10 µs
  // less (measured), and nothing else runs until the limit is back.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    plaintext = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label }, ciphertext);
  } catch {
    // The failure is the empty plaintext: its length fails the check below, like a wrong length.
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  const ok = Number(plaintext.length === n);
  const keep = -ok & 0xff;
  const padded = Buffer.alloc(n);
  plaintext.copy(padded, 0, 0, n);
  const secret = Buffer.alloc(n);
  for (let i = 0; i < n; i++) secret[i] = ((padded[i] ?? 0) & keep) | ((fallback[i] ?? 0) & ~keep & 0xff);
  padded.fill(0);
  plaintext.fill(0);
  return { secret, decrypted: ok === 1 };
}
