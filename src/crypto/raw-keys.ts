// Raw 32-byte X25519 / Ed25519 keys (the form they take on the wire, §4) to and from KeyObjects.
// Public keys go through JWK (RFC 8037: `x` is the raw key, base64url), which node:crypto maps
// straight to OpenSSL's raw-key calls: an import costs ~10 µs and an export ~1 µs of CPU, where
// the DER SubjectPublicKeyInfo way through OpenSSL 3's decoders costs ~84 and ~67 µs
// (bench/micro/raw-keys.ts). A server handshake imports the client's X25519 share and exports its
// own, and imports the client's Ed25519 identity: ~0.15–0.25 ms of CPU per connection, at a
// thousand clients at once (issue 15). Private keys (local input only) are wrapped in the fixed
// RFC 8410 PKCS#8 prefix.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { CryptoError, type ErrorCode } from '../proto/errors.js';

/** Bytes of a raw X25519 or Ed25519 public key, private key (seed) and of an Ed25519 signature. */
export const RAW_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;

type OkpCurve = 'x25519' | 'ed25519';

// RFC 8410 §4 and §7: SEQUENCE { SEQUENCE { OID 1.3.101.110 (X25519) / .112 (Ed25519) }, BIT STRING }.
const SPKI_PREFIX: Readonly<Record<OkpCurve, Buffer>> = {
  x25519: Buffer.from('302a300506032b656e032100', 'hex'),
  ed25519: Buffer.from('302a300506032b6570032100', 'hex'),
};
/** RFC 8037 §2: the JWK `crv` of each curve. */
const JWK_CURVE: Readonly<Record<OkpCurve, string>> = { x25519: 'X25519', ed25519: 'Ed25519' };
// RFC 8410 §7: OneAsymmetricKey v0 with the 32-byte private key as an OCTET STRING in an OCTET STRING.
const PKCS8_PREFIX: Readonly<Record<OkpCurve, Buffer>> = {
  x25519: Buffer.from('302e020100300506032b656e04220420', 'hex'),
  ed25519: Buffer.from('302e020100300506032b657004220420', 'hex'),
};

/** DER SubjectPublicKeyInfo of a raw public key. */
export function okpSpki(curve: OkpCurve, raw: Buffer): Buffer {
  if (raw.length !== RAW_KEY_BYTES) throw new RangeError(`${curve} public key must be ${RAW_KEY_BYTES} bytes`);
  return Buffer.concat([SPKI_PREFIX[curve], raw]);
}

/**
 * Imports a raw public key received from the peer. Any failure is `code` (HANDSHAKE_FAILED for an
 * X25519 share, AUTH_REFUSED for a client identity), never a bare Error.
 */
export function okpPublicFromRaw(curve: OkpCurve, raw: Buffer, code: ErrorCode): KeyObject {
  if (raw.length !== RAW_KEY_BYTES) {
    throw new CryptoError(code, `${curve} public key of ${raw.length} bytes, expected ${RAW_KEY_BYTES}`);
  }
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: JWK_CURVE[curve], x: raw.toString('base64url') }, format: 'jwk' });
  } catch (err) {
    throw new CryptoError(code, `${curve} public key rejected`, { cause: err });
  }
}

/** Imports a raw 32-byte private key (local input: test vectors, stored identities). */
export function okpPrivateFromRaw(curve: OkpCurve, raw: Buffer): KeyObject {
  if (raw.length !== RAW_KEY_BYTES) throw new RangeError(`${curve} private key must be ${RAW_KEY_BYTES} bytes`);
  const der = Buffer.concat([PKCS8_PREFIX[curve], raw]);
  try {
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } finally {
    der.fill(0);
  }
}

/** The raw 32-byte public key of an X25519/Ed25519 KeyObject (public or private). */
export function okpPublicRaw(curve: OkpCurve, key: KeyObject): Buffer {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  if (pub.asymmetricKeyType !== curve) {
    throw new TypeError(`expected an ${curve} key, got ${pub.asymmetricKeyType ?? pub.type}`);
  }
  const jwk = pub.export({ format: 'jwk' });
  const raw = typeof jwk.x === 'string' ? Buffer.from(jwk.x, 'base64url') : Buffer.alloc(0);
  if (jwk.kty !== 'OKP' || jwk.crv !== JWK_CURVE[curve] || raw.length !== RAW_KEY_BYTES) {
    throw new TypeError(`unexpected ${curve} JWK export`);
  }
  return raw;
}
