// AES-256-GCM with a 96-bit nonce and a 128-bit tag (§8), as thin wrappers over node:crypto.
// The record layer builds on these; the Wycheproof tests exercise them directly.
import { createCipheriv, createDecipheriv, type DecipherGCM, type KeyObject } from 'node:crypto';
import { CryptoError } from '../proto/errors.js';
import { TAG_BYTES } from '../proto/limits.js';

const AEAD_ALGORITHM = 'aes-256-gcm';
export const AEAD_KEY_BYTES = 32;
export const AEAD_NONCE_BYTES = 12;

function checkKeyAndNonce(key: KeyObject | Buffer, nonce: Buffer): void {
  const keyBytes = Buffer.isBuffer(key) ? key.length : key.symmetricKeySize;
  if (keyBytes !== AEAD_KEY_BYTES) throw new RangeError(`AES-256-GCM key must be ${AEAD_KEY_BYTES} bytes`);
  if (nonce.length !== AEAD_NONCE_BYTES) throw new RangeError(`AES-256-GCM nonce must be ${AEAD_NONCE_BYTES} bytes`);
}

interface Sealed {
  /** Ciphertext, one piece per non-empty plaintext part, in order (no concatenation). */
  readonly ciphertext: Buffer[];
  readonly tag: Buffer;
}

/**
 * Largest piece given to one cipher update(). node:crypto allocates each update's output twice
 * (length + 1, then the exact length, zero-filled) and copies between them; for a 1 MiB piece
 * those buffers miss the CPU caches and the call costs ~4× OpenSSL's own speed, for 32–64 KiB
 * pieces ~1.7× (DESIGN.md, "Where the CPU goes per GiB"). 32 bytes short of 64 KiB: at exactly
 * 64 KiB malloc put the two buffers 16 bytes apart modulo 4 KiB, where this CPU copies slowest
 * (runtime/aligned-memory.ts).
 */
export const GCM_UPDATE_BYTES = 64 * 1024 - 32;

/**
 * Encrypts the concatenation of `parts` without concatenating them: one cipher.update per part,
 * or per GCM_UPDATE_BYTES slice of a longer part.
 */
export function gcmSeal(key: KeyObject | Buffer, nonce: Buffer, aad: Buffer, parts: readonly Buffer[]): Sealed {
  checkKeyAndNonce(key, nonce);
  const cipher = createCipheriv(AEAD_ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad);
  const ciphertext: Buffer[] = [];
  for (const part of parts) {
    for (let at = 0; at < part.length; at += GCM_UPDATE_BYTES) {
      ciphertext.push(cipher.update(part.subarray(at, at + GCM_UPDATE_BYTES)));
    }
  }
  const last = cipher.final();
  if (last.length > 0) ciphertext.push(last);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** Decrypts and authenticates; any failure (wrong tag, key, nonce, aad or length) is DECRYPT_FAILED. */
export function gcmOpen(key: KeyObject | Buffer, nonce: Buffer, aad: Buffer, ciphertext: Buffer, tag: Buffer): Buffer {
  checkKeyAndNonce(key, nonce);
  if (tag.length !== TAG_BYTES) {
    throw new CryptoError('DECRYPT_FAILED', `AES-GCM tag of ${tag.length} bytes, expected ${TAG_BYTES}`);
  }
  const decipher = createDecipheriv(AEAD_ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const plain = decipher.update(ciphertext);
  try {
    decipher.final();
  } catch (err) {
    plain.fill(0);
    throw new CryptoError('DECRYPT_FAILED', 'AES-GCM authentication failed', { cause: err });
  }
  return plain;
}

/**
 * Decryption of one message given in pieces as they arrive: update() per ciphertext piece, then
 * final() with the tag. The plaintext update() returns is unauthenticated until final() returns:
 * callers must hold it back (RecordStream does) and zero it if final() throws.
 */
export class GcmOpenStream {
  readonly #decipher: DecipherGCM;

  constructor(key: KeyObject | Buffer, nonce: Buffer, aad: Buffer) {
    checkKeyAndNonce(key, nonce);
    this.#decipher = createDecipheriv(AEAD_ALGORITHM, key, nonce, { authTagLength: TAG_BYTES });
    this.#decipher.setAAD(aad);
  }

  update(ciphertext: Buffer): Buffer {
    return this.#decipher.update(ciphertext);
  }

  /** Checks the tag; any failure is DECRYPT_FAILED. */
  final(tag: Buffer): void {
    if (tag.length !== TAG_BYTES) {
      throw new CryptoError('DECRYPT_FAILED', `AES-GCM tag of ${tag.length} bytes, expected ${TAG_BYTES}`);
    }
    try {
      this.#decipher.setAuthTag(tag);
      this.#decipher.final();
    } catch (err) {
      throw new CryptoError('DECRYPT_FAILED', 'AES-GCM authentication failed', { cause: err });
    }
  }
}
