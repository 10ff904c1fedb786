// Authorized client keys (spec/PROTOCOL.md §7.4): one line per key,
//   [options] stx-ed25519 <base64 of the raw 32-byte Ed25519 public key> [comment]
// where options, as in OpenSSH's authorized_keys, are comma-separated `name` or `name="value"`
// (a `\"` inside the quotes is a quote). Blank lines and lines starting with `#` are ignored.
// This file reads the format only; what an option means is the daemon's policy
// (src/recv/access.ts), which also refuses the options it does not know. Reading the file is the
// caller's job.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { identityFingerprint } from './fingerprint.js';
import { okpPublicRaw, RAW_KEY_BYTES } from './raw-keys.js';

const AUTHORIZED_KEY_TYPE = 'stx-ed25519';

/** One option of a line: `name`, or `name="value"`. */
export interface KeyOption {
  readonly name: string;
  /** The unquoted value, or undefined for a bare `name`. */
  readonly value: string | undefined;
}

/** One key line of the file. */
export interface AuthorizedKey {
  /** The identity's fingerprint (§7.4). */
  readonly fingerprint: string;
  /** Its options, in the order written. */
  readonly options: readonly KeyOption[];
  /** `source:line`, for messages about this line. */
  readonly where: string;
}

/** Raw 32-byte Ed25519 public key of an identity (private or public KeyObject, or raw bytes). */
function rawIdentity(key: KeyObject | Buffer): Buffer {
  if (Buffer.isBuffer(key)) {
    if (key.length !== RAW_KEY_BYTES) throw new RangeError(`an Ed25519 public key is ${RAW_KEY_BYTES} bytes`);
    return key;
  }
  return okpPublicRaw('ed25519', key.type === 'private' ? createPublicKey(key) : key);
}

/** The authorized-keys line for an identity, with `options` (already written as the file wants them) first. */
export function authorizedKeyLine(key: KeyObject | Buffer, comment?: string, options?: string): string {
  if (comment !== undefined && /[\r\n]/.test(comment)) throw new RangeError('a comment cannot span lines');
  if (options !== undefined && /[\r\n]/.test(options)) throw new RangeError('options cannot span lines');
  const keyPart = `${AUTHORIZED_KEY_TYPE} ${rawIdentity(key).toString('base64')}`;
  const line = options === undefined || options === '' ? keyPart : `${options} ${keyPart}`;
  return comment === undefined || comment.trim() === '' ? line : `${line} ${comment.trim()}`;
}

const OPTION_NAME = /^[a-z][a-z0-9-]*$/;
// eslint-disable-next-line no-control-regex -- refusing control characters in values is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * Splits the options at the start of `line` (up to the first space outside quotes), or returns
 * null when the line starts with the key type. Throws a message (without the line's place).
 */
function readOptions(line: string): { options: KeyOption[]; rest: string } | null {
  if (line.startsWith(`${AUTHORIZED_KEY_TYPE} `) || line.startsWith(`${AUTHORIZED_KEY_TYPE}\t`) || line === AUTHORIZED_KEY_TYPE) return null;
  const options: KeyOption[] = [];
  let at = 0;
  for (;;) {
    const name = /^[^=,\s"]*/.exec(line.slice(at))?.[0] ?? '';
    if (!OPTION_NAME.test(name)) throw new Error(`expected an option name or "${AUTHORIZED_KEY_TYPE}", got ${JSON.stringify(line.slice(at, at + 40))}`);
    at += name.length;
    let value: string | undefined;
    if (line[at] === '=') {
      if (line[at + 1] !== '"') throw new Error(`option ${name}: the value must be in double quotes`);
      at += 2;
      let text = '';
      for (;;) {
        const c = line[at];
        if (c === undefined) throw new Error(`option ${name}: no closing quote`);
        if (c === '"') break;
        if (c === '\\' && line[at + 1] === '"') {
          text += '"';
          at += 2;
          continue;
        }
        text += c;
        at++;
      }
      at++; // the closing quote
      if (CONTROL.test(text)) throw new Error(`option ${name}: the value contains a control character`);
      value = text;
    }
    options.push({ name, value });
    const next = line[at];
    if (next === ',') {
      at++;
      continue;
    }
    if (next === ' ' || next === '\t') return { options, rest: line.slice(at).trim() };
    throw new Error(next === undefined ? `options but no key after them` : `option ${name}: unexpected ${JSON.stringify(next)} after it`);
  }
}

/**
 * Parses an authorized-keys file into its key lines, in order. A malformed line (syntax, key, a
 * key listed twice) is an Error naming `source` and the line number: a typo must not silently
 * lock a client out or give it other rights.
 */
export function parseAuthorizedKeyLines(text: string, source = 'authorized keys'): AuthorizedKey[] {
  const out: AuthorizedKey[] = [];
  const seen = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${source}:${i + 1}`;
    let parsed: { options: KeyOption[]; rest: string } | null;
    try {
      parsed = readOptions(line);
    } catch (err) {
      throw new Error(`${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    const [type, b64] = (parsed?.rest ?? line).split(/\s+/);
    if (type !== AUTHORIZED_KEY_TYPE || b64 === undefined) {
      throw new Error(`${where}: expected "[options] ${AUTHORIZED_KEY_TYPE} <base64 key> [comment]"`);
    }
    const key = Buffer.from(b64, 'base64');
    if (key.length !== RAW_KEY_BYTES || key.toString('base64') !== b64) {
      throw new Error(`${where}: the key must be the base64 of ${RAW_KEY_BYTES} bytes`);
    }
    const fingerprint = identityFingerprint(key);
    const earlier = seen.get(fingerprint);
    if (earlier !== undefined) throw new Error(`${where}: this key is listed already at ${earlier} (one line per key, with all its options)`);
    seen.set(fingerprint, where);
    out.push({ fingerprint, options: parsed?.options ?? [], where });
  });
  return out;
}

/** The identity fingerprints an authorized-keys file allows (whatever their options). */
export function parseAuthorizedKeys(text: string, source = 'authorized keys'): Set<string> {
  return new Set(parseAuthorizedKeyLines(text, source).map((k) => k.fingerprint));
}
