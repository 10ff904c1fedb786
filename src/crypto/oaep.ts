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
