// age X25519 identities and recipients (c2sp.org/age "The X25519 recipient type"): their Bech32
// text forms (`AGE-SECRET-KEY-1…`, `age1…`), the key file age-keygen writes, and the X25519
// stanza that wraps a file key for one recipient. Bech32 (BIP 173, no length limit in age) comes
// from @scure/base; X25519, HKDF and ChaCha20-Poly1305 from node:crypto.
import { diffieHellman, randomBytes, type KeyObject } from 'node:crypto';
import { bech32 } from '@scure/base';
import { okpGenerate, okpPrivateFromRaw, okpPublicFromRaw, okpPublicRaw, RAW_KEY_BYTES } from '../crypto/raw-keys.js';
import { AgeIntegrityError, AgeKeyError } from './age-errors.js';
import {
  AEAD_NONCE_BYTES,
  AEAD_TAG_BYTES,
  AGE_FILE_KEY_BYTES,
  ageHkdf,
  b64decodeStrict,
  b64encode,
  chachaOpen,
  chachaSeal,
  type AgeStanza,
} from './age-format.js';

const RECIPIENT_HRP = 'age';
const IDENTITY_HRP = 'age-secret-key-';
/** Bech32 strings in age have no length limit; ours are 62 and 74 characters. */
const BECH32_LIMIT = 1024;
const X25519_LABEL = 'age-encryption.org/v1/X25519';
/** The wrap key is used once, so its ChaCha20-Poly1305 nonce is fixed at zero. */
const ZERO_NONCE = Buffer.alloc(AEAD_NONCE_BYTES);

/** An X25519 identity: the private key and its recipient (public key), raw. */
export interface AgeIdentity {
  readonly privateKey: KeyObject;
  readonly recipient: Buffer;
}

function decodeBech32(text: string, hrp: string, what: string): Buffer {
  let decoded: { prefix: string; bytes: Uint8Array };
  try {
    decoded = bech32.decodeToBytes(text, BECH32_LIMIT);
  } catch (err) {
    throw new AgeKeyError('key', `not a valid ${what}: bad Bech32`, { cause: err });
  }
  if (decoded.prefix !== hrp) throw new AgeKeyError('key', `not a valid ${what}: prefix "${decoded.prefix}"`);
  if (decoded.bytes.length !== RAW_KEY_BYTES) {
    throw new AgeKeyError('key', `not a valid ${what}: ${decoded.bytes.length} bytes`);
  }
  return Buffer.from(decoded.bytes);
}

/** `age1…` → the raw 32-byte X25519 public key. */
export function parseAgeRecipient(text: string): Buffer {
  return decodeBech32(text, RECIPIENT_HRP, 'age recipient (age1…)');
}

export function formatAgeRecipient(raw: Buffer): string {
  return bech32.encode(RECIPIENT_HRP, bech32.toWords(raw), BECH32_LIMIT);
}

/** `AGE-SECRET-KEY-1…` → the identity. */
export function parseAgeIdentity(text: string): AgeIdentity {
  const raw = decodeBech32(text, IDENTITY_HRP, 'age identity (AGE-SECRET-KEY-1…)');
  try {
    const privateKey = okpPrivateFromRaw('x25519', raw);
    return { privateKey, recipient: okpPublicRaw('x25519', privateKey) };
  } finally {
    raw.fill(0);
  }
}

function formatAgeIdentity(raw: Buffer): string {
  return bech32.encode(IDENTITY_HRP, bech32.toWords(raw), BECH32_LIMIT).toUpperCase();
}

/** The identities of an age key file: one per line; `#` comments and blank lines skipped. */
export function parseAgeKeyFile(text: string): AgeIdentity[] {
  const ids = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map(parseAgeIdentity);
  if (ids.length === 0) throw new AgeKeyError('key', 'the age key file holds no identity');
  return ids;
}

export interface GeneratedAgeIdentity {
  /** `AGE-SECRET-KEY-1…` */
  readonly identity: string;
  /** `age1…` */
  readonly recipient: string;
  /** What age-keygen writes: `# created:`, `# public key:`, the identity; save it mode 0600. */
  readonly keyFile: string;
}

/** A fresh identity (32 CSPRNG bytes) in age-keygen's key-file format. */
export function generateAgeIdentity(now: Date = new Date()): GeneratedAgeIdentity {
  const raw = randomBytes(RAW_KEY_BYTES);
  try {
    const identity = formatAgeIdentity(raw);
    const recipient = formatAgeRecipient(okpPublicRaw('x25519', okpPrivateFromRaw('x25519', raw)));
    const created = now.toISOString().replace(/\.\d+Z$/, 'Z');
    return { identity, recipient, keyFile: `# created: ${created}\n# public key: ${recipient}\n${identity}\n` };
  } finally {
    raw.fill(0);
  }
}

function wrapKey(shared: Buffer, share: Buffer, recipient: Buffer): Buffer {
  return ageHkdf(shared, Buffer.concat([share, recipient]), X25519_LABEL);
}

function isAllZero(bytes: Buffer): boolean {
  let acc = 0;
  for (const b of bytes) acc |= b;
  return acc === 0;
}

/** `-> X25519 <ephemeral share>` with the file key wrapped for `recipient` (raw public key). */
export function wrapX25519(fileKey: Buffer, recipient: Buffer): AgeStanza {
  const { privateKey: ephemeral, publicKey: share } = okpGenerate('x25519');
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey: ephemeral, publicKey: okpPublicFromRaw('x25519', recipient, 'LOCAL_FILE') });
  } catch (err) {
    throw new AgeKeyError('key', 'the age recipient is not a usable X25519 key', { cause: err });
  }
  if (isAllZero(shared)) throw new AgeKeyError('key', 'the age recipient is a low-order X25519 point');
  const key = wrapKey(shared, share, recipient);
  shared.fill(0);
  try {
    return { args: ['X25519', b64encode(share)], body: chachaSeal(key, ZERO_NONCE, fileKey) };
  } finally {
    key.fill(0);
  }
}

/**
 * The file key from the first X25519 stanza `identity` opens, or null when none does. Stanzas
 * of other types are ignored; an X25519 stanza that is malformed (argument count, share, body
 * length) or whose shared secret is all zero fails the header, as c2sp.org/age requires.
 */
export function unwrapX25519(stanzas: readonly AgeStanza[], identity: AgeIdentity): Buffer | null {
  for (const stanza of stanzas) {
    if (stanza.args[0] !== 'X25519') continue;
    const shareText = stanza.args[1];
    if (stanza.args.length !== 2 || shareText === undefined) {
      throw new AgeIntegrityError('header', 'an X25519 stanza must have exactly two arguments');
    }
    const share = b64decodeStrict(shareText);
    if (share?.length !== RAW_KEY_BYTES) {
      throw new AgeIntegrityError('header', 'an X25519 share is not 32 bytes of canonical base64');
    }
    // Checked before decrypting, against partitioning oracles (c2sp.org/age).
    if (stanza.body.length !== AGE_FILE_KEY_BYTES + AEAD_TAG_BYTES) {
      throw new AgeIntegrityError('header', 'an X25519 stanza body is not 32 bytes');
    }
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: identity.privateKey, publicKey: okpPublicFromRaw('x25519', share, 'INTEGRITY_FAILED') });
    } catch (err) {
      throw new AgeIntegrityError('header', 'an X25519 share is not a usable point', { cause: err });
    }
    if (isAllZero(shared)) throw new AgeIntegrityError('header', 'an X25519 shared secret is all zero');
    const key = wrapKey(shared, share, identity.recipient);
    shared.fill(0);
    const fileKey = chachaOpen(key, ZERO_NONCE, stanza.body);
    key.fill(0);
    if (fileKey !== null) return fileKey;
  }
  return null;
}
