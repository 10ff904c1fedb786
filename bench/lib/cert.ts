// A throw-away self-signed certificate for an IP address (127.0.0.1 by default), made at run time
// (node:crypto key, node-forge cert).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import forge from 'node-forge';

import { LOOPBACK } from './net.js';

const RSA_MODULUS_BITS = 2048;
const CERT_VALIDITY_MS = 24 * 60 * 60 * 1000;
const CLOCK_SKEW_MS = 60 * 1000;

interface CertFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

export async function makeSelfSignedCert(dir: string, ip: string = LOOPBACK): Promise<CertFiles> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: RSA_MODULUS_BITS,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  // Positive serial: leading byte below 0x80.
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  const now = Date.now();
  cert.validity.notBefore = new Date(now - CLOCK_SKEW_MS);
  cert.validity.notAfter = new Date(now + CERT_VALIDITY_MS);
  const name = [{ name: 'commonName', value: ip }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    // Its own trust anchor: clients pass it as `ca`.
    { name: 'basicConstraints', cA: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  await writeFile(certPath, forge.pki.certificateToPem(cert));
  await writeFile(keyPath, privateKey, { mode: 0o600 });
  return { certPath, keyPath };
}
