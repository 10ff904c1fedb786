// Raw X25519 / Ed25519 public keys to and from KeyObjects (src/crypto/raw-keys.ts): the DER
// SubjectPublicKeyInfo way (OpenSSL 3's decoders and encoders) against the JWK way (RFC 8037,
// OpenSSL's raw-key calls). A server handshake does one X25519 import and one export, and one
// Ed25519 import per identified client. Rounds alternate the two ways; CPU µs per call, medians.
// No timing is asserted anywhere.
//
//   node dist/bench/micro/raw-keys.js [--calls N] [--rounds N]
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';

const SPKI_PREFIX = { x25519: Buffer.from('302a300506032b656e032100', 'hex'), ed25519: Buffer.from('302a300506032b6570032100', 'hex') } as const;
const JWK_CURVE = { x25519: 'X25519', ed25519: 'Ed25519' } as const;
type Curve = keyof typeof SPKI_PREFIX;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i < 0 ? NaN : Number(process.argv[i + 1]);
  return Number.isSafeInteger(v) && v > 0 ? v : fallback;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? NaN;
}

/** CPU µs per call of `fn`, over `calls` calls. */
function cpuMicros(calls: number, fn: () => unknown): number {
  const start = process.cpuUsage();
  for (let i = 0; i < calls; i++) fn();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / calls;
}

const calls = arg('--calls', 2000);
const rounds = arg('--rounds', 5);
const rows: { what: string; der: () => unknown; jwk: () => unknown }[] = [];
for (const curve of ['x25519', 'ed25519'] as const satisfies readonly Curve[]) {
  const { publicKey }: { publicKey: KeyObject } = curve === 'x25519' ? generateKeyPairSync('x25519') : generateKeyPairSync('ed25519');
  const raw = publicKey.export({ type: 'spki', format: 'der' }).subarray(SPKI_PREFIX[curve].length);
  rows.push({
    what: `${curve} import`,
    der: () => createPublicKey({ key: Buffer.concat([SPKI_PREFIX[curve], raw]), format: 'der', type: 'spki' }),
    jwk: () => createPublicKey({ key: { kty: 'OKP', crv: JWK_CURVE[curve], x: raw.toString('base64url') }, format: 'jwk' }),
  });
  rows.push({
    what: `${curve} export`,
    der: () => publicKey.export({ type: 'spki', format: 'der' }).subarray(SPKI_PREFIX[curve].length),
    jwk: () => Buffer.from(String(publicKey.export({ format: 'jwk' }).x), 'base64url'),
  });
}
process.stdout.write(`| call | DER µs | JWK µs | JWK ÷ DER |\n| --- | ---: | ---: | ---: |\n`);
for (const row of rows) {
  cpuMicros(calls / 10, row.der);
  cpuMicros(calls / 10, row.jwk);
  const der: number[] = [];
  const jwk: number[] = [];
  for (let r = 0; r < rounds; r++) {
    der.push(cpuMicros(calls, row.der));
    jwk.push(cpuMicros(calls, row.jwk));
  }
  const [d, j] = [median(der), median(jwk)];
  process.stdout.write(`| ${row.what} | ${d.toFixed(1)} | ${j.toFixed(1)} | ${(j / d).toFixed(2)} |\n`);
}
