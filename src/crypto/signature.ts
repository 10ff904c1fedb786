// Client authentication (spec/PROTOCOL.md §7.4): Ed25519 over
// "stx/1 client signature" ‖ 0x00 ‖ H_ke.
import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { ED25519_SIGNATURE_BYTES, okpPublicFromRaw, okpPublicRaw } from './raw-keys.js';
import { signatureMessage } from './key-schedule.js';

interface ClientSignature {
  /** Raw Ed25519 public key (CLIENT_FINISHED.identity). */
  readonly identity: Buffer;
  readonly signature: Buffer;
}

export function signTranscript(identityKey: KeyObject, transcriptHashKe: Buffer): ClientSignature {
  if (identityKey.type !== 'private' || identityKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('the client identity must be an Ed25519 private key');
  }
  return {
    identity: okpPublicRaw('ed25519', createPublicKey(identityKey)),
    signature: sign(null, signatureMessage(transcriptHashKe), identityKey),
  };
}

/** Ed25519 verification of `signature` on `message` by a raw public key; false for any failure. */
export function ed25519Verify(rawPublicKey: Buffer, message: Buffer, signature: Buffer): boolean {
  if (signature.length !== ED25519_SIGNATURE_BYTES) return false;
  try {
    return verify(null, message, okpPublicFromRaw('ed25519', rawPublicKey, 'AUTH_REFUSED'), signature);
  } catch {
    return false;
  }
}

export function verifyTranscriptSignature(sig: ClientSignature, transcriptHashKe: Buffer): boolean {
  return ed25519Verify(sig.identity, signatureMessage(transcriptHashKe), sig.signature);
}
