// Raw 32-byte X25519 / Ed25519 keys (the form they take on the wire, §4) to and from KeyObjects.
// Public keys go through JWK (RFC 8037: `x` is the raw key, base64url), which node:crypto maps
// straight to OpenSSL's raw-key calls: an import costs ~10 µs and an export ~1 µs of CPU, where
// the DER SubjectPublicKeyInfo way through OpenSSL 3's decoders costs ~84 and ~67 µs
// (bench/micro/raw-keys.ts). A server handshake imports the client's X25519 share and exports its
// own, and imports the client's Ed25519 identity: ~0.15–0.25 ms of CPU per connection, at a
// thousand clients at once (issue 15). Private keys (local input only) are wrapped in the fixed
// RFC 8410 PKCS#8 prefix.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
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

/**
 * A new X25519 or Ed25519 key pair, its public key raw. The public key comes out of the generation
 * itself (SPKI, whose last 32 bytes are the key), never by exporting the new KeyObject afterwards:
 * in Node 20 the key-generation job left for the garbage collector shares the new key's lock, and a
 * collection that finalizes the job while an export holds that lock (an export allocates under it)
 * makes the job's destructor wait on a lock its own thread holds. The process then hangs for good,
 * timers and signals too (gdb of a stx-recv stopped so: ExportJWKEdKey → GC → ~KeyGenJob →
 * pthread_mutex_lock). A loop of generateKeyPairSync('x25519') and the key's JWK export hangs
 * within 3,000 rounds; this one ran 60,000 with diffieHellman on each key. Importing 32 random bytes
 * instead avoids the job but costs ~480 µs per key (OpenSSL 3's PKCS#8 decoder) against ~60.
 */
export function okpGenerate(curve: OkpCurve): { readonly privateKey: KeyObject; readonly publicKey: Buffer } {
  const { privateKey, publicKey: spki } = generateKeyPairSync(curve as 'x25519', { publicKeyEncoding: { type: 'spki', format: 'der' } }) as unknown as {
    privateKey: KeyObject;
    publicKey: Buffer;
  };
  const prefix = SPKI_PREFIX[curve];
  if (spki.length !== prefix.length + RAW_KEY_BYTES || !spki.subarray(0, prefix.length).equals(prefix)) {
    throw new TypeError(`unexpected ${curve} SPKI from key generation`);
  }
  return { privateKey, publicKey: spki.subarray(prefix.length) };
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
