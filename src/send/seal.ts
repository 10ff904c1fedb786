// Sealing on the client (issue 17; README "Sealed backups"; SECURITY.md "Sealed uploads"). stx-send
// --seal/--seal-to: each file is stored as NAME.age, an ordinary age file (age-encryption.org/v1,
// X25519) made from the plaintext as it is sent (transfer/sealed-source.ts); the server's size,
// SHA-256 and listing are the age file's. Nothing on the wire differs from a plain upload.
//
// Resume needs the same ciphertext at every offset, across attempts and client restarts: the file
// key, header and payload nonce of a file being sent are kept in $STX_HOME/sealing/ (mode 0600,
// one file per upload) and removed once the server reports DONE. A kept state is used only for
// the same remote name, path, recipients and plaintext (size, mtime, device, inode and ctime):
// anything else gets a fresh key, so no key ever seals two different plaintexts. The server is
// not part of it (the same file sent to two servers goes as the same age file): a server is
// reached under many addresses (a proxy, a new IP), and resuming must not depend on which.
//
// stx-get --unseal: a fetched NAME.age is decrypted after its SHA-256 checked out and published as
// NAME (Unsealing, below).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, unlink, utimes, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from '../cli/conventions.js';
import { createPrivateFile, stxHome } from '../keystore/index.js';
import {
  AgeKeyError,
  AgeSealer,
  createAgeSealer,
  formatAgeRecipient,
  generateAgeIdentity,
  openAge,
  parseAgeKeyFile,
  parseAgeRecipient,
  type AgeIdentity,
} from '../transfer/age.js';
import { SealedSource, type PlainFile } from '../transfer/sealed-source.js';
import type { DataSource } from '../transfer/source.js';
import type { FileOpener } from './file-opener.js';
import type { LocalTarget, LocalTree } from './local-files.js';

/** What a sealed file's remote name ends in. */
export const SEALED_SUFFIX = '.age';
const STATE_VERSION = 1;
const PRIVATE_DIR_MODE = 0o700;
const PRIVATE_FILE_MODE = 0o600;
/** Recipients a run seals to, at most (each is one X25519 stanza in every file's header). */
export const MAX_RECIPIENTS = 256;
/**
 * Kept states not touched for this long are removed when a run starts sealing: an upload left
 * unfinished that long has lost its partial on the server (whose TTL is 24 h by default), and its
 * file key should not linger. At most STATE_SWEEP_MAX entries are looked at per run.
 */
export const STATE_MAX_AGE_MS = 30 * 24 * 3600 * 1000;
const STATE_SWEEP_MAX = 10_000;
/** Bytes of a recipients or identity file we read, at most. */
const MAX_KEY_FILE_BYTES = 1024 * 1024;

/** The default age identity file of stx-keygen --age. */
export function defaultAgeIdentityFile(): string {
  return path.join(stxHome(), 'age_identity');
}

/** `age1…` in its canonical (lower-case) form; AgeKeyError (LOCAL_FILE) if it is not one. */
function canonicalRecipient(text: string, where: string): string {
  if (/^ssh-|^AGE-SECRET-KEY-/i.test(text)) {
    throw new AgeKeyError('key', `${where}: only age X25519 recipients (age1…) can be sealed to${text.startsWith('AGE-') ? '; this is an identity (a secret key): give its public key' : ''}`);
  }
  try {
    return formatAgeRecipient(parseAgeRecipient(text));
  } catch (err) {
    throw new AgeKeyError('key', `${where}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

async function readKeyFile(file: string): Promise<string> {
  const fh = await open(file, 'r').catch((err: unknown) => {
    throw new AgeKeyError('key', `cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  });
  try {
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw new AgeKeyError('key', `${file} is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * The recipients of --seal (each `age1…`) and --seal-to FILE (one per line; blank lines and `#`
 * comments skipped, as age's recipients files), canonical, without repeats, in the order given.
 */
export async function sealRecipients(given: readonly string[], files: readonly string[]): Promise<string[]> {
  // A malformed --seal is a usage error (exit 2), like a malformed --fingerprint; a bad file's line is LOCAL_FILE.
  const all = given.map((r) => {
    try {
      return canonicalRecipient(r.trim(), `--seal ${JSON.stringify(r.slice(0, 80))}`);
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
  });
  for (const file of files) {
    const lines = (await readKeyFile(file)).split('\n');
    let found = 0;
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      all.push(canonicalRecipient(line, `${file}:${i + 1}`));
      found++;
    });
    if (found === 0) throw new AgeKeyError('key', `${file} holds no recipient`);
  }
  const unique = [...new Set(all)];
  if (unique.length > MAX_RECIPIENTS) throw new AgeKeyError('key', `more than ${MAX_RECIPIENTS} recipients`);
  return unique;
}

/** What is kept to resume one sealed upload (see the file comment). */
interface SealState {
  readonly version: typeof STATE_VERSION;
  readonly name: string;
  readonly path: string;
  readonly size: number;
  readonly mtime: number;
  readonly change: string;
  readonly recipients: readonly string[];
  readonly header: string;
  readonly nonce: string;
  readonly file_key: string;
}

function parseState(text: string): SealState | null {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  const strings = ['name', 'path', 'change', 'header', 'nonce', 'file_key'] as const;
  if (r['version'] !== STATE_VERSION || !strings.every((k) => typeof r[k] === 'string')) return null;
  if (![r['size'], r['mtime']].every((n) => Number.isSafeInteger(n))) return null;
  const recipients = r['recipients'];
  if (!Array.isArray(recipients) || !recipients.every((x) => typeof x === 'string')) return null;
  return v as SealState;
}

/** Seals every file it opens for the same recipients, keeping what a resume needs (see the file comment). */
export class Sealing implements FileOpener {
  readonly #kept = new Map<DataSource, string>();
  #swept: Promise<void> | null = null;

  constructor(
    readonly recipients: readonly string[],
    readonly stateDir: string = path.join(stxHome(), 'sealing'),
  ) {
    if (recipients.length === 0) throw new AgeKeyError('key', 'sealing needs at least one age recipient');
  }

  name(remote: string): string {
    return `${remote}${SEALED_SUFFIX}`;
  }

  async open(local: string, stored: string): Promise<DataSource> {
    this.#swept ??= sweepStates(this.stateDir, Date.now() - STATE_MAX_AGE_MS);
    await this.#swept;
    let kept = '';
    const source = await SealedSource.open(local, async (plain) => {
      const got = await this.#sealerFor(plain, stored);
      kept = got.file;
      return got.sealer;
    });
    this.#kept.set(source, kept);
    return source;
  }

  async done(source: DataSource): Promise<void> {
    const file = this.#kept.get(source);
    this.#kept.delete(source);
    // A state that cannot be removed is harmless: it is reused only for this very plaintext,
    // which it seals to the same bytes; it must not fail an upload the server has confirmed.
    if (file !== undefined) await unlink(file).catch(() => undefined);
  }

  /** The kept sealer for this upload if there is one for exactly this plaintext, else a new one, kept first. */
  async #sealerFor(plain: PlainFile, name: string): Promise<{ sealer: AgeSealer; file: string }> {
    const abs = path.resolve(plain.path);
    const id = createHash('sha256').update(JSON.stringify([name, abs])).digest('hex');
    const file = path.join(this.stateDir, `${id}.json`);
    const want = { name, path: abs, size: plain.identity.size, mtime: plain.identity.mtime, change: plain.change, recipients: this.recipients };
    const kept = await readFile(file, 'utf8').then(parseState, () => null);
    if (kept !== null && sameUpload(kept, want)) {
      try {
        const key = Buffer.from(kept.file_key, 'base64');
        const sealer = new AgeSealer(Buffer.from(kept.header, 'base64'), key, Buffer.from(kept.nonce, 'base64'), plain.identity.size);
        key.fill(0);
        // In use again: the sweep counts 30 days from here.
        const now = new Date();
        await utimes(file, now, now).catch(() => undefined);
        return { sealer, file };
      } catch {
        // A state that does not hold together (edited, truncated): a fresh key below replaces it.
      }
    }
    const { sealer, fileKey } = createAgeSealer(this.recipients, plain.identity.size);
    const state: SealState = {
      version: STATE_VERSION,
      ...want,
      recipients: [...this.recipients],
      header: sealer.header.toString('base64'),
      nonce: sealer.nonce.toString('base64'),
      file_key: fileKey.toString('base64'),
    };
    fileKey.fill(0);
    await writePrivate(file, JSON.stringify(state));
    return { sealer, file };
  }
}

/** Removes the kept states in `dir` last written before `before` (ms); errors are ignored, the sweep is housekeeping. */
async function sweepStates(dir: string, before: number): Promise<void> {
  const names = await readdir(dir).catch(() => []);
  for (const name of names.slice(0, STATE_SWEEP_MAX)) {
    if (!name.endsWith('.json')) continue;
    const file = path.join(dir, name);
    const st = await stat(file).catch(() => null);
    if (st !== null && st.mtimeMs < before) await unlink(file).catch(() => undefined);
  }
}

function sameUpload(kept: SealState, want: Omit<SealState, 'version' | 'header' | 'nonce' | 'file_key'>): boolean {
  return (
    kept.name === want.name &&
    kept.path === want.path &&
    kept.size === want.size &&
    kept.mtime === want.mtime &&
    kept.change === want.change &&
    kept.recipients.length === want.recipients.length &&
    kept.recipients.every((r, i) => r === want.recipients[i])
  );
}

/**
 * Writes `text` to `file` (mode 0600, its directory created 0700) through a temporary file and a
 * rename. Not fsync'd: a state lost in a crash of this machine costs one failed resume (the
 * server's partial does not verify and is dropped, exit 7), then the next run starts over.
 */
async function writePrivate(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, PRIVATE_FILE_MODE);
  try {
    await fh.writeFile(text, 'utf8');
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/**
 * stx-keygen --age: the age identity in `file` (created mode 0600 in the age-keygen format if it
 * does not exist, never replaced). Returns its recipient and whether it was created.
 */
export async function ageKeygen(file: string): Promise<{ readonly recipient: string; readonly created: boolean }> {
  const made = generateAgeIdentity();
  if (await createPrivateFile(file, made.keyFile)) return { recipient: made.recipient, created: true };
  const [existing] = await loadAgeIdentities([file]);
  if (existing === undefined) throw new AgeKeyError('key', `${file} holds no age identity`);
  return { recipient: formatAgeRecipient(existing.recipient), created: false };
}

/** The identities of age key files (age-keygen's or stx-keygen --age's format); AgeKeyError naming the file. */
export async function loadAgeIdentities(files: readonly string[]): Promise<AgeIdentity[]> {
  const all: AgeIdentity[] = [];
  for (const file of files) {
    const text = await readKeyFile(file);
    try {
      all.push(...parseAgeKeyFile(text));
    } catch (err) {
      throw new AgeKeyError('key', `${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
  return all;
}

/** The plaintext of an open file, from its start, a piece at a time. */
async function* fileBytes(fh: FileHandle): AsyncGenerator<Buffer, void, undefined> {
  const piece = 1024 * 1024;
  for (let at = 0; ; ) {
    const buf = Buffer.allocUnsafe(piece);
    const { bytesRead } = await fh.read(buf, 0, piece, at);
    if (bytesRead === 0) return;
    at += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

/** stx-get --unseal: fetched NAME.age files are opened with these identities and published as NAME. */
export class Unsealing {
  constructor(private readonly identities: readonly AgeIdentity[]) {
    if (identities.length === 0) throw new AgeKeyError('key', 'unsealing needs at least one age identity');
  }

  /** Whether a remote file is one to open: its name ends in .age (and has more before it). */
  applies(remote: string): boolean {
    return remote.endsWith(SEALED_SUFFIX) && !remote.endsWith(`/${SEALED_SUFFIX}`) && remote !== SEALED_SUFFIX;
  }

  /** Where a fetched file lands locally: NAME for NAME.age, else the name as it is. */
  localName(local: string, remote: string): string {
    return this.applies(remote) ? local.slice(0, -SEALED_SUFFIX.length) : local;
  }

  /**
   * Opens the verified age file in `fh` (the partial of `target`, whose SHA-256 checked out) into
   * a new file beside it, a verified 64 KiB chunk at a time, then publishes that as `tree`
   * publishes any download (fsync, mode, mtime, rename, directory fsync). On any failure nothing
   * is published and the partial is dropped. Returns the plaintext's size.
   */
  async publish(tree: LocalTree, target: LocalTarget, fh: FileHandle, mode: number, mtime: number): Promise<number> {
    const tmp = `${target.partPath}.plain`;
    await unlink(tmp).catch(() => undefined);
    let out: FileHandle | null = null;
    let published = false;
    try {
      out = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, PRIVATE_FILE_MODE);
      const opened = await openAge(this.identities, fileBytes(fh));
      let size = 0;
      for await (const chunk of opened.plaintext) {
        for (let done = 0; done < chunk.length; ) done += (await out.write(chunk, done, chunk.length - done, size + done)).bytesWritten;
        size += chunk.length;
      }
      await fh.close();
      // The plaintext takes the partial's place, then goes out the way every download does.
      await rename(tmp, target.partPath);
      published = true;
      await tree.publish(target, out, mode, mtime);
      return size;
    } finally {
      if (!published) {
        await out?.close();
        await fh.close().catch(() => undefined);
        await unlink(tmp).catch(() => undefined);
        await tree.discard(target);
      }
    }
  }
}
