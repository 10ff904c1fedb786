// The crypto part of the cost floor (issue 15, "Cost per GiB"): what OpenSSL itself needs per GiB
// for AES-256-GCM (encrypt on the sender, decrypt on the receiver) and SHA-256, from
// `openssl speed` in 1 MiB buffers. openssl speed divides by its own CPU user time (not wall time,
// unless -elapsed), so the figure holds on a busy machine. Added to raw's CPU per side, it is what
// a transfer that encrypts, authenticates and verifies every byte cannot go below.
import { spawn } from 'node:child_process';

const OPENSSL = 'openssl';
const BUFFER_BYTES = 1024 * 1024;
const SECONDS = 1;
/** openssl speed runs SECONDS of wall time per algorithm; this is its bound. */
const TIMEOUT_MS = 30_000;
const GiB = 1024 ** 3;

export interface CryptoFloor {
  readonly aesGcmEncryptSecondsPerGiB: number;
  readonly aesGcmDecryptSecondsPerGiB: number;
  readonly sha256SecondsPerGiB: number;
}

/** Bytes per second from `openssl speed -mr`'s "+F:…:NAME:BYTES_PER_S" line. */
function speed(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(OPENSSL, ['speed', '-mr', ...args, '-bytes', String(BUFFER_BYTES), '-seconds', String(SECONDS)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: TIMEOUT_MS,
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (t: string) => (out += t));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', (code) => {
      const m = /^\+F:\d+:[^:]+:([\d.]+)\s*$/m.exec(out);
      const rate = Number(m?.[1]);
      if (code !== 0 || !(rate > 0)) reject(new Error(`openssl speed ${args.join(' ')} gave no rate (exit ${String(code)})`));
      else resolve(rate);
    });
  });
}

/** One measurement of each, or why it could not be made. */
export async function cryptoFloor(): Promise<CryptoFloor | { readonly unavailable: string }> {
  try {
    const encrypt = await speed(['-evp', 'aes-256-gcm']);
    const decrypt = await speed(['-decrypt', '-evp', 'aes-256-gcm']);
    const sha = await speed(['-evp', 'sha256']);
    return { aesGcmEncryptSecondsPerGiB: GiB / encrypt, aesGcmDecryptSecondsPerGiB: GiB / decrypt, sha256SecondsPerGiB: GiB / sha };
  } catch (err) {
    return { unavailable: err instanceof Error ? err.message : String(err) };
  }
}
