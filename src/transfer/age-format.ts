// The textual header of an age file (age-encryption.org/v1, c2sp.org/age "Header"): version line,
// recipient stanzas, MAC line; its strict parser; and the two symmetric primitives the format
// uses, HKDF-SHA-256 and ChaCha20-Poly1305, as thin node:crypto wrappers.
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { AgeIntegrityError } from './age-errors.js';

const AGE_VERSION_LINE = 'age-encryption.org/v1';
/** Bytes of the file key (c2sp.org/age "File key"). */
export const AGE_FILE_KEY_BYTES = 16;
/** Bytes of a ChaCha20-Poly1305 key and of every HKDF output in age. */
const AGE_KEY_BYTES = 32;
/** Bytes of a ChaCha20-Poly1305 nonce and tag. */
export const AEAD_NONCE_BYTES = 12;
export const AEAD_TAG_BYTES = 16;
/** Columns of a full stanza body line; a shorter line (maybe empty) ends the body. */
const BODY_COLUMNS = 64;
/** Characters of the base64 MAC (32 bytes, unpadded). */
const MAC_CHARS = 43;
/**
 * Our bound on a header's size while looking for its end (the format has none). 64 KiB holds
 * several hundred X25519 stanzas; past it a file is refused before any stanza costs an X25519.
 */
export const AGE_MAX_HEADER_BYTES = 64 * 1024;

/** One recipient stanza: `-> arg arg…` and its body. */
export interface AgeStanza {
  readonly args: readonly string[];
  readonly body: Buffer;
}

export interface ParsedHeader {
  readonly stanzas: readonly AgeStanza[];
  /** The header bytes the MAC covers: everything up to and including `---`. */
  readonly macInput: Buffer;
  readonly mac: Buffer;
  /** Bytes of the whole header, through the MAC line's line feed. */
  readonly length: number;
}

const B64_CHARS = /^[A-Za-z0-9+/]*$/;
/** An argument is 1*VCHAR (0x21–0x7E). */
const ARGUMENT = /^[\x21-\x7e]+$/;

/** Unpadded standard base64 (RFC 4648 §4 without `=`). */
export function b64encode(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '');
}

/**
 * Strict unpadded base64: only the 64 characters, no `=`, and canonical (RFC 4648 §3.5: unused
 * bits zero), which re-encoding checks. Null when `text` is not that.
 */
export function b64decodeStrict(text: string): Buffer | null {
  if (!B64_CHARS.test(text) || text.length % 4 === 1) return null;
  const bytes = Buffer.from(text, 'base64');
  return b64encode(bytes) === text ? bytes : null;
}

/** HKDF-SHA-256 to 32 bytes (c2sp.org/age "Conventions"). */
export function ageHkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, AGE_KEY_BYTES));
}

/** ChaCha20-Poly1305 (RFC 7539) seal, no associated data: ciphertext ‖ tag. */
export function chachaSeal(key: Buffer | KeyObject, nonce: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/**
 * ChaCha20-Poly1305 seal into `out` at `at` (ciphertext ‖ tag, plaintext + 16 bytes); returns the
 * bytes written. Sealing a file 64 KiB at a time, this is a third of chachaSeal's CPU: no
 * concatenation of the pieces, and none of the chunks into a read's result.
 */
export function chachaSealInto(key: KeyObject, nonce: Buffer, plaintext: Buffer, out: Buffer, at: number): number {
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  const body = cipher.update(plaintext);
  body.copy(out, at);
  cipher.final();
  cipher.getAuthTag().copy(out, at + body.length);
  return body.length + AEAD_TAG_BYTES;
}

/** ChaCha20-Poly1305 open of ciphertext ‖ tag; null when the tag does not verify. */
export function chachaOpen(key: Buffer | KeyObject, nonce: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < AEAD_TAG_BYTES) return null;
  const split = sealed.length - AEAD_TAG_BYTES;
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: AEAD_TAG_BYTES });
  decipher.setAuthTag(sealed.subarray(split));
  const plain = decipher.update(sealed.subarray(0, split));
  try {
    decipher.final();
  } catch {
    plain.fill(0);
    return null;
  }
  return plain;
}

/** HMAC-SHA-256 of the header up to `---`, keyed by HKDF(file key, "", "header"). */
function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  const key = ageHkdf(fileKey, Buffer.alloc(0), 'header');
  try {
    return createHmac('sha256', key).update(macInput).digest();
  } finally {
    key.fill(0);
  }
}

/** Whether `mac` is the header MAC for `fileKey`, compared in constant time. */
export function headerMacMatches(fileKey: Buffer, header: ParsedHeader): boolean {
  const expected = headerMac(fileKey, header.macInput);
  return expected.length === header.mac.length && timingSafeEqual(expected, header.mac);
}

function encodeStanza(stanza: AgeStanza): string {
  if (stanza.args.length === 0 || !stanza.args.every((a) => ARGUMENT.test(a))) {
    throw new RangeError('an age stanza needs one or more arguments of visible ASCII');
  }
  const body = b64encode(stanza.body);
  let text = `-> ${stanza.args.join(' ')}\n`;
  // Full 64-column lines, then one shorter line, empty when the body is a multiple of 48 bytes.
  for (let at = 0; at <= body.length; at += BODY_COLUMNS) text += `${body.slice(at, at + BODY_COLUMNS)}\n`;
  return text;
}

/** The whole header for these stanzas, MAC line and its line feed included. */
export function encodeHeader(fileKey: Buffer, stanzas: readonly AgeStanza[]): Buffer {
  if (stanzas.length === 0) throw new RangeError('an age header needs at least one stanza');
  const macInput = Buffer.from(`${AGE_VERSION_LINE}\n${stanzas.map(encodeStanza).join('')}---`, 'latin1');
  return Buffer.concat([macInput, Buffer.from(` ${b64encode(headerMac(fileKey, macInput))}\n`, 'latin1')]);
}

/**
 * Where the header in `bytes` ends (just past the MAC line's line feed), or null when `bytes`
 * does not hold a whole one yet. Only the MAC line starts with `-` and a third `-`: stanza lines
 * start with `->` and body lines with base64. A header over AGE_MAX_HEADER_BYTES is refused.
 */
export function headerEnd(bytes: Buffer): number | null {
  const mark = bytes.indexOf('\n---');
  const end = mark < 0 ? -1 : bytes.indexOf(0x0a, mark + 1);
  if (end >= 0 && end < AGE_MAX_HEADER_BYTES) return end + 1;
  if (bytes.length >= AGE_MAX_HEADER_BYTES) {
    throw new AgeIntegrityError('header', `no header end within ${AGE_MAX_HEADER_BYTES} bytes`);
  }
  return null;
}

function bad(why: string): AgeIntegrityError {
  return new AgeIntegrityError('header', why);
}

/** Parses a whole header (`header` ends exactly at the MAC line's line feed, see headerEnd). */
export function parseHeader(header: Buffer): ParsedHeader {
  // latin1 maps each byte to one char, so offsets in the text are offsets in the bytes.
  const lines = header.toString('latin1').split('\n');
  if (lines.pop() !== '') throw bad('the header does not end with a line feed');
  let i = 0;
  const next = (): string => {
    const line = lines[i++];
    if (line === undefined) throw bad('the header ends inside a stanza');
    return line;
  };
  const version = next();
  if (version !== AGE_VERSION_LINE) throw bad(`unsupported version line "${version.slice(0, 40)}"`);
  const stanzas: AgeStanza[] = [];
  let line = next();
  while (line.startsWith('->')) {
    if (!line.startsWith('-> ')) throw bad('a stanza line must start with "-> "');
    const args = line.slice(3).split(' ');
    if (!args.every((a) => ARGUMENT.test(a))) throw bad('a stanza argument is empty or not visible ASCII');
    const parts: string[] = [];
    for (;;) {
      const bodyLine = next();
      if (bodyLine.length > BODY_COLUMNS) throw bad('a stanza body line is longer than 64 columns');
      parts.push(bodyLine);
      if (bodyLine.length < BODY_COLUMNS) break;
    }
    // Each line alone would allow padding-like breaks; the body as a whole must be canonical.
    const body = b64decodeStrict(parts.join(''));
    if (body === null || parts.some((p) => !B64_CHARS.test(p))) throw bad('a stanza body is not canonical base64');
    stanzas.push({ args, body });
    line = next();
  }
  if (stanzas.length === 0) throw bad('the header has no stanza');
  if (!line.startsWith('--- ') || i !== lines.length) throw bad('the header does not end with a MAC line');
  const macText = line.slice(4);
  const mac = macText.length === MAC_CHARS ? b64decodeStrict(macText) : null;
  if (mac === null) throw bad('the header MAC is not 43 characters of canonical base64');
  const macInputLength = header.length - macText.length - 2; // drop " MAC\n"
  return { stanzas, macInput: header.subarray(0, macInputLength), mac, length: header.length };
}
