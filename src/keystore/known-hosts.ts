// Server trust on the client (spec/PROTOCOL.md §5): a pinned fingerprint, or a known-hosts file
// of `host:port SHA256:…` lines with trust on first use.
import { appendFile, mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CryptoError, errnoOf } from '../proto/errors.js';

const FILE_MODE = 0o600;
const DIR_MODE = 0o700;
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

type KnownHostStatus = 'known' | 'new' | 'pinned';

interface CheckServerKeyOptions {
  /** The known-hosts file (created with mode 0600, its directory 0700, on first use). */
  readonly file: string;
  /** The host:port key, as made by hostPortKey(). */
  readonly hostPort: string;
  /** Fingerprint of the server_key just received (§5). */
  readonly fingerprint: string;
  /** A fingerprint the user pinned; when given, the file is neither read nor written. */
  readonly pinned?: string;
}

/**
 * The key of a server in the file: the host lower-cased, an IPv6 literal in brackets
 * (`[::1]:4433`), so that one server has one spelling.
 */
export function hostPortKey(host: string, port: number): string {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return h.includes(':') ? `[${h}]:${port}` : `${h}:${port}`;
}

interface KnownHostEntry {
  readonly hostPort: string;
  readonly fingerprint: string;
  readonly line: number;
}

/** Parses the file; `#` starts a comment. A malformed line is an error, never skipped: skipping a
 *  damaged entry would turn a known host back into a new one and trust whatever key comes next. */
function parseKnownHosts(text: string, file: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.indexOf('#');
    const line = (hash < 0 ? raw : raw.slice(0, hash)).trim();
    if (line === '') return;
    const fields = line.split(/\s+/);
    const [hostPort, fp] = fields;
    if (fields.length !== 2 || hostPort === undefined || fp === undefined || !FINGERPRINT.test(fp)) {
      throw new Error(`${file}:${i + 1}: expected "host:port SHA256:<fingerprint>"`);
    }
    entries.push({ hostPort, fingerprint: fp, line: i + 1 });
  });
  return entries;
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return null;
    throw err;
  }
}

/**
 * §5: checks the server's fingerprint against the pin, or against the known-hosts file. An
 * unknown host is 'new' and is NOT recorded here: the caller records it with recordServerKey()
 * only once the server has proven it holds the key (SERVER_FINISHED verified), so a responder
 * that merely sends someone's public key cannot get itself pinned. A mismatch is CryptoError
 * SERVER_KEY_MISMATCH whose message names both fingerprints and, for the file, the line to edit.
 */
export async function checkServerKey(options: CheckServerKeyOptions): Promise<{ status: KnownHostStatus }> {
  const { file, hostPort, fingerprint } = options;
  if (!FINGERPRINT.test(fingerprint)) throw new RangeError(`not a fingerprint: ${fingerprint}`);
  if (options.pinned !== undefined) {
    const pinned = options.pinned.trim();
    if (pinned !== fingerprint) {
      throw new CryptoError(
        'SERVER_KEY_MISMATCH',
        `server ${hostPort} presented key ${fingerprint}, but the pinned fingerprint is ${pinned}`,
      );
    }
    return { status: 'pinned' };
  }
  const text = await readIfExists(file);
  const entries = text === null ? [] : parseKnownHosts(text, file).filter((e) => e.hostPort === hostPort);
  if (entries.some((e) => e.fingerprint === fingerprint)) return { status: 'known' };
  const known = entries[0];
  if (known !== undefined) {
    throw new CryptoError(
      'SERVER_KEY_MISMATCH',
      `server ${hostPort} presented key ${fingerprint}, but ${file}:${known.line} records ${known.fingerprint}. ` +
        `This may be an attack. If the server key was replaced on purpose, delete line ${known.line} of ${file} and connect again.`,
    );
  }
  return { status: 'new' };
}

/**
 * Whether the known-hosts file records a key for `hostPort` (§5): a handshake with that host then
 * matches the key or fails, and none records a new one. A file that cannot be read or parsed
 * counts as no (the handshake itself reports it).
 */
export async function isKnownHost(file: string, hostPort: string): Promise<boolean> {
  try {
    const text = await readIfExists(file);
    return text !== null && parseKnownHosts(text, file).some((e) => e.hostPort === hostPort);
  } catch {
    return false;
  }
}

/**
 * The fingerprints the known-hosts file records for `hostPort` (§5), for the tickets of those keys
 * (§7.5); none when the file cannot be read or parsed (the handshake itself reports that).
 */
export async function knownFingerprints(file: string, hostPort: string): Promise<string[]> {
  try {
    const text = await readIfExists(file);
    return text === null ? [] : parseKnownHosts(text, file).filter((e) => e.hostPort === hostPort).map((e) => e.fingerprint);
  } catch {
    return [];
  }
}

/** Trust on first use (§5): appends `hostPort fingerprint` to the file (0600, directory 0700). */
export async function recordServerKey(file: string, hostPort: string, fingerprint: string): Promise<void> {
  if (!FINGERPRINT.test(fingerprint)) throw new RangeError(`not a fingerprint: ${fingerprint}`);
  const text = await readIfExists(file);
  await mkdir(dirname(file), { recursive: true, mode: DIR_MODE });
  const separator = text !== null && text.length > 0 && !text.endsWith('\n') ? '\n' : '';
  await appendFile(file, `${separator}${hostPort} ${fingerprint}\n`, { mode: FILE_MODE });
  const fh = await open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
