// Authorized client keys (spec/PROTOCOL.md §7.4): one line per key,
//   stx-ed25519 <base64 of the raw 32-byte Ed25519 public key> [comment]
// Blank lines and lines starting with `#` are ignored. Reading the file is the caller's job.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { identityFingerprint } from './fingerprint.js';
import { okpPublicRaw, RAW_KEY_BYTES } from './raw-keys.js';

const AUTHORIZED_KEY_TYPE = 'stx-ed25519';

/** Raw 32-byte Ed25519 public key of an identity (private or public KeyObject, or raw bytes). */
function rawIdentity(key: KeyObject | Buffer): Buffer {
  if (Buffer.isBuffer(key)) {
    if (key.length !== RAW_KEY_BYTES) throw new RangeError(`an Ed25519 public key is ${RAW_KEY_BYTES} bytes`);
    return key;
  }
  return okpPublicRaw('ed25519', key.type === 'private' ? createPublicKey(key) : key);
}

/** The authorized-keys line for an identity. */
export function authorizedKeyLine(key: KeyObject | Buffer, comment?: string): string {
  if (comment !== undefined && /[\r\n]/.test(comment)) throw new RangeError('a comment cannot span lines');
  const line = `${AUTHORIZED_KEY_TYPE} ${rawIdentity(key).toString('base64')}`;
  return comment === undefined || comment.trim() === '' ? line : `${line} ${comment.trim()}`;
}

/**
 * Parses an authorized-keys file into the set of identity fingerprints it allows. A malformed
 * line is an Error naming `source` and the line number: a typo must not silently lock a client out.
 */
export function parseAuthorizedKeys(text: string, source = 'authorized keys'): Set<string> {
  const out = new Set<string>();
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const [type, b64] = line.split(/\s+/);
    const where = `${source}:${i + 1}`;
    if (type !== AUTHORIZED_KEY_TYPE || b64 === undefined) {
      throw new Error(`${where}: expected "${AUTHORIZED_KEY_TYPE} <base64 key> [comment]"`);
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length !== RAW_KEY_BYTES || key.toString('base64') !== b64) {
      throw new Error(`${where}: the key must be the base64 of ${RAW_KEY_BYTES} bytes`);
    }
    out.add(identityFingerprint(key));
  });
  return out;
}
