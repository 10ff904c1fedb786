// The RSA 3072 server key of spec/vectors/handshake.json, for tests that need a server key of the
// default size and should not spend a second or more generating one.
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { VECTORS_DIR } from './paths.js';

/** The vector key as PEM (PKCS#8). */
export function vectorServerKeyPem(): string {
  const doc = JSON.parse(readFileSync(path.join(VECTORS_DIR, 'handshake.json'), 'utf8')) as { vectors: { inputs: { server_rsa_private_pem?: unknown } }[] };
  const pem = doc.vectors[0]?.inputs.server_rsa_private_pem;
  if (typeof pem !== 'string') throw new Error('handshake.json has no server_rsa_private_pem');
  return pem;
}

export function vectorServerKey(): KeyObject {
  return createPrivateKey(vectorServerKeyPem());
}

/** Writes the vector key where a daemon started by startArena finds it (`root`/srv/server_key.pem, 0600 in 0700). */
export function installVectorServerKey(root: string): void {
  const dir = path.join(root, 'srv');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const file = path.join(dir, 'server_key.pem');
  writeFileSync(file, vectorServerKeyPem(), { mode: 0o600 });
  chmodSync(file, 0o600);
}
