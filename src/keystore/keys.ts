// Long-term keys on disk: the server's RSA key (§5) and a client's Ed25519 identity (§7.4).
// Private keys are PEM PKCS#8 files of mode 0600 in directories of mode 0700, created
// atomically: written to a temporary file, fsync'd, then linked into place, so a crash or a
// concurrent start never leaves a half-written key or replaces an existing one.
import { generateKeyPair, generateKeyPairSync, createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, basename } from 'node:path';
import { promisify } from 'node:util';
import { checkServerPrivateKey } from '../crypto/oaep.js';
import { errnoOf } from '../proto/errors.js';

const SERVER_KEY_BITS = 3072;

/** Where keys, identities and known hosts live by default: $STX_HOME, else ~/.config/stx. */
export function stxHome(): string {
  return process.env['STX_HOME'] ?? join(homedir(), '.config', 'stx');
}
const PRIVATE_FILE_MODE = 0o600;
const PRIVATE_DIR_MODE = 0o700;

const generateKeyPairAsync = promisify(generateKeyPair);

/**
 * A generated private key, imported from the PKCS#8 its generation wrote (then zeroed): the
 * generated KeyObject itself is never exported (toPem, its public key), which could hang Node 20
 * (raw-keys.ts okpGenerate says how).
 */
function importGenerated(pkcs8: Buffer): KeyObject {
  try {
    return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' });
  } finally {
    pkcs8.fill(0);
  }
}

/** A new RSA server key (§4: 3072 bits by default; importGenerated). */
export async function generateServerKey(bits: number = SERVER_KEY_BITS): Promise<KeyObject> {
  const { privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: bits,
    publicExponent: 0x10001,
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  return importGenerated(privateKey);
}

/** A new Ed25519 client identity (importGenerated). */
export function generateIdentity(): KeyObject {
  const { privateKey } = generateKeyPairSync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'der' }, publicKeyEncoding: { type: 'spki', format: 'der' } });
  return importGenerated(privateKey);
}

function toPem(key: KeyObject): string {
  const pem = key.export({ type: 'pkcs8', format: 'pem' });
  return typeof pem === 'string' ? pem : pem.toString('ascii');
}

/**
 * Writes `pem` (ASCII text: a PEM key, an age identity) to `path` (mode 0600, parent created with
 * 0700, fsync'd, then its directory) unless the file exists; link() never replaces one that appeared meanwhile.
 * Returns false, writing nothing, if it already existed.
 */
export async function createPrivateFile(path: string, pem: string): Promise<boolean> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', PRIVATE_FILE_MODE);
  try {
    await fh.writeFile(pem, 'ascii');
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp);
    throw err;
  }
  await fh.close();
  try {
    await link(tmp, path);
  } catch (err) {
    if (errnoOf(err) === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(tmp);
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
  return true;
}

async function readPrivateKey(path: string): Promise<KeyObject> {
  const pem = await readFile(path, 'ascii');
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new Error(`${path}: not a PEM private key`, { cause: err });
  }
}

/** Loads the server key, or creates and saves a new 3072-bit one if the file is missing. */
export async function loadOrCreateServerKey(path: string): Promise<{ key: KeyObject; created: boolean }> {
  try {
    return { key: await loadServerKey(path), created: false };
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw err;
  }
  const key = await generateServerKey();
  if (await createPrivateFile(path, toPem(key))) return { key, created: true };
  return { key: await loadServerKey(path), created: false };
}

export async function loadServerKey(path: string): Promise<KeyObject> {
  const key = await readPrivateKey(path);
  try {
    checkServerPrivateKey(key);
  } catch (err) {
    throw new Error(`${path}: not a usable server key`, { cause: err });
  }
  return key;
}

/** Saves an identity as PEM PKCS#8 (0600). Refuses to replace an existing file. */
export async function saveIdentity(path: string, key: KeyObject): Promise<void> {
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new TypeError('not an Ed25519 private key');
  if (!(await createPrivateFile(path, toPem(key)))) throw new Error(`${path} already exists; not replacing it`);
}

export async function loadIdentity(path: string): Promise<KeyObject> {
  const key = await readPrivateKey(path);
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${path}: an identity must be an Ed25519 key, this is ${key.asymmetricKeyType ?? 'unknown'}`);
  }
  return key;
}
