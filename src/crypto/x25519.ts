// Ephemeral X25519 (RFC 7748) for the handshake (spec/PROTOCOL.md §4 `x25519`, §7.1).
import { diffieHellman, type KeyObject } from 'node:crypto';
import { CryptoError } from '../proto/errors.js';
import { okpGenerate, okpPrivateFromRaw, okpPublicFromRaw, okpPublicRaw } from './raw-keys.js';

export interface X25519KeyPair {
  readonly privateKey: KeyObject;
  /** Raw 32-byte public key, as sent in CLIENT_HELLO / SERVER_HELLO. */
  readonly publicKey: Buffer;
}

/** A fresh key pair (one per handshake, §4), or the given private key (test vectors). */
export function x25519KeyPair(privateKey?: KeyObject | Buffer): X25519KeyPair {
  // A new key's public half comes with it: exporting it could hang Node 20 (raw-keys.ts okpGenerate).
  if (privateKey === undefined) return okpGenerate('x25519');
  const key = Buffer.isBuffer(privateKey) ? okpPrivateFromRaw('x25519', privateKey) : privateKey;
  return { privateKey: key, publicKey: okpPublicRaw('x25519', key) };
}

/**
 * dh = X25519(own_private, peer_x25519) (§7.1). A peer key that cannot be used, or an all-zero
 * result (a small-order peer key; OpenSSL already refuses it), is HANDSHAKE_FAILED.
 */
export function x25519SharedSecret(privateKey: KeyObject, peerPublic: Buffer): Buffer {
  const publicKey = okpPublicFromRaw('x25519', peerPublic, 'HANDSHAKE_FAILED');
  let dh: Buffer;
  try {
    dh = diffieHellman({ privateKey, publicKey });
  } catch (err) {
    throw new CryptoError('HANDSHAKE_FAILED', 'X25519 with the peer key failed (small-order key?)', { cause: err });
  }
  let acc = 0;
  for (const b of dh) acc |= b;
  if (acc === 0) throw new CryptoError('HANDSHAKE_FAILED', 'X25519 shared secret is all zero (small-order peer key)');
  return dh;
}
