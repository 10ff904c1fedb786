// Key fingerprints (spec/PROTOCOL.md §5): "SHA256:" ‖ base64(SHA-256(DER SubjectPublicKeyInfo)),
// standard alphabet, no padding — the form OpenSSH prints.
import { createHash, type KeyObject } from 'node:crypto';
import { okpPublicRaw, okpSpki } from './raw-keys.js';

export function fingerprint(spkiDer: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(spkiDer).digest('base64').replace(/=+$/, '');
}

/**
 * Fingerprint of a client identity (§7.4): its raw 32-byte Ed25519 public key, or the KeyObject
 * (public or private). It is taken over the key's DER SubjectPublicKeyInfo, like the server's,
 * so both kinds of key print the same way. (It therefore differs from what ssh-keygen prints
 * for the same Ed25519 key, which hashes the SSH wire encoding.)
 */
export function identityFingerprint(key: Buffer | KeyObject): string {
  return fingerprint(okpSpki('ed25519', Buffer.isBuffer(key) ? key : okpPublicRaw('ed25519', key)));
}
