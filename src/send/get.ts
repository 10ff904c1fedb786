// The client's download and listing jobs (spec/PROTOCOL.md §9.9, §9.10, §10): names fetched into a
// local directory over as few connections as it takes, each file resumed from its local partial
// after a lost connection, verified, and published. A NAME is a file or a directory: one listing
// of it as a prefix says which, and gives the files and directories of a tree. A file already
// held locally with the size and SHA-256 the listing gives is not fetched again (skipped,
// "identical"); directories, empty ones too, are made and get their mode and mtime once their
// contents are in. The retry rule is §10's transient
// column, as for uploads; attempts that received bytes count as progress.
import { CommandError, ProtocolError, ResourceError, StxError } from '../proto/errors.js';
import { HANDSHAKE_TIMEOUT_MS } from '../proto/limits.js';
import { getOn } from './commands/get.js';
import { listOn, type Listed } from './commands/list.js';
import { ConnectFailed, type Connection } from './connection.js';
import { dial } from './handshake.js';
import { LocalTree } from './local-files.js';
import type { RetryOptions } from './retry.js';
import type { Unsealing } from './seal.js';
import type { SessionOptions as ReachOptions } from './session.js';

/** Files and directories one run fetches at most (a hostile server could otherwise list without end). */
const MAX_FILES_PER_RUN = 1_000_000;
/** Skipped files listed by name in the result; beyond it they are only counted. */
const MAX_LISTED = 1000;

/** How to reach the server (session.ts) and when to give up on a lost connection (retry.ts). */
export type SessionOptions = ReachOptions & RetryOptions;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One server, over as many connections as it takes; commands run one after another on the current one. */
class Session {
  #conn: Connection | null = null;
  #handshakes = 0;
  /** Counts progress (bytes arrived, a listing slice); an attempt that moved it resets the failure count. */
  #progress = 0;
  reconnects = 0;
  fingerprint = '';

  constructor(private readonly opts: SessionOptions) {}

  /** Something moved on (bytes arrived): the attempt that fails next starts a new count. */
  progressed(): void {
    this.#progress++;
  }

  /** Runs `fn` on a Ready connection, reconnecting and running it again after a transient failure. */
  async run<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    let failures = 0;
    let failingSince = 0;
    for (;;) {
      const before = this.#progress;
      try {
        return await fn(await this.#connection());
      } catch (err) {
        this.#conn?.close(err);
        this.#conn = null;
        if (!(err instanceof StxError && err.transient)) throw err;
        if (err instanceof ConnectFailed && this.#handshakes === 0) throw err;
        const now = Date.now();
        failures = this.#progress > before ? 1 : failures + 1;
        if (failures === 1) failingSince = now;
        const opts = this.opts;
        const withinTime = opts.retryForMs !== undefined && now - failingSince < opts.retryForMs;
        const reason = err.message;
        if (failures > opts.retries && !withinTime) {
          throw new ResourceError('TIMEOUT', `gave up after ${failures} attempts without progress: ${reason}`, { cause: err });
        }
        const base = Math.min((opts.backoffMs ?? 250) * 2 ** (failures - 1), opts.maxBackoffMs ?? 10_000);
        const wait = Math.round(base / 2 + (Math.random() * base) / 2);
        opts.onEvent?.(`${reason}; reconnecting in ${(wait / 1000).toFixed(1)} s`);
        await sleep(wait);
        this.reconnects++;
      }
    }
  }

  close(): void {
    this.#conn?.close();
    this.#conn = null;
  }

  async #connection(): Promise<Connection> {
    if (this.#conn !== null && this.#conn.state === 'Ready') return this.#conn;
    this.#conn?.close();
    const handshakeMs = this.opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    const { connection, fingerprint } = await dial({ ...this.opts, connectTimeoutMs: this.opts.connectTimeoutMs ?? handshakeMs, handshakeTimeoutMs: handshakeMs });
    this.#handshakes++;
    this.fingerprint = fingerprint;
    this.#conn = connection;
    return connection;
  }
}

/**
 * Every file at or under `prefix` ('' for all), slice by slice (§9.10), each handed to `onEntry`
 * in listing order. A slice that fails is asked for again from where the last one ended.
 */
async function listEach(session: Session, prefix: string, onEntry: (entry: Listed) => void): Promise<number> {
  let after: string | undefined;
  let count = 0;
  for (;;) {
    const slice = await session.run(async (conn) => {
      const got: Listed[] = [];
      const s = await listOn(conn, prefix, after, (e) => {
        if (count + got.length >= MAX_FILES_PER_RUN) throw new ResourceError('TOO_LARGE', `the server lists more than ${MAX_FILES_PER_RUN} files`);
        got.push(e);
      });
      return { got, next: s.next };
    });
    for (const e of slice.got) onEntry(e);
    count += slice.got.length;
    session.progressed();
    if (slice.next === undefined) return count;
    // A server that asks for more and sends nothing would keep us here for ever.
    if (slice.got.length === 0 || (after !== undefined && slice.next <= after)) {
      throw new ProtocolError('MALFORMED_FRAME', 'the server asked for another listing without going on');
    }
    after = slice.next;
  }
}

export interface ListOptions extends SessionOptions {
  readonly prefix: string;
  readonly onEntry: (entry: Listed) => void;
}

export async function listRemote(opts: ListOptions): Promise<{ readonly count: number; readonly fingerprint: string }> {
  const session = new Session(opts);
  try {
    const count = await listEach(session, opts.prefix, opts.onEntry);
    return { count, fingerprint: session.fingerprint };
  } finally {
    session.close();
  }
}

export interface FetchOptions extends SessionOptions {
  /** Remote names: files, or directories whose whole tree is fetched. */
  readonly names: readonly string[];
  /** The local directory everything lands under. */
  readonly to: string;
  readonly onFile?: ((file: FetchedFile) => void) | undefined;
  /** A file not fetched: the local copy is identical (size and SHA-256 from the listing). */
  readonly onSkip?: ((file: SkippedFile) => void) | undefined;
  readonly onProgress?: ((name: string, received: number, size: number) => void) | undefined;
  /** --unseal: NAME.age files are opened once verified and published as NAME (seal.ts). */
  readonly unseal?: Unsealing | undefined;
}

export interface FetchedFile {
  readonly name: string;
  /** Where it landed, relative to the local directory. */
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly resumed_from: number;
  /** The plaintext's size, for a file opened with --unseal (`bytes` and `sha256` are the age file's). */
  readonly unsealed_bytes?: number;
}

export interface SkippedFile {
  readonly name: string;
  readonly path: string;
  readonly reason: 'identical';
}

export interface FetchResult {
  readonly files: FetchedFile[];
  /** Directories made or given their mode and mtime. */
  readonly directories: number;
  /** Files not fetched (the first MAX_LISTED), and how many. */
  readonly skipped: SkippedFile[];
  readonly skipped_count: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly reconnects: number;
  readonly server_fingerprint: string;
}

/** A remote file or directory to fetch, and the local name it lands under. */
type Planned = Listed & { readonly remote: string; readonly local: string };

/**
 * The remote files and directories each NAME stands for, with the local name each lands under: a
 * file by its own last component, a directory and its contents under the directory's last
 * component (as cp -r).
 */
async function plan(session: Session, names: readonly string[]): Promise<Planned[]> {
  const planned: Planned[] = [];
  for (const raw of names) {
    const name = raw.replace(/\/+$/, '').normalize('NFC');
    if (name === '') throw new CommandError('NOT_FOUND', 'an empty name names nothing; use --list to see what the server holds');
    const parentLength = name.lastIndexOf('/') + 1;
    const before = planned.length;
    await listEach(session, name, (e) => {
      // Only what the prefix asked for: a server sending other names is not followed.
      if (e.name !== name && !e.name.startsWith(`${name}/`)) throw new ProtocolError('MALFORMED_FRAME', 'the server listed a name outside the prefix asked for');
      planned.push({ ...e, remote: e.name, local: e.name.slice(parentLength) });
      if (planned.length > MAX_FILES_PER_RUN) throw new ResourceError('TOO_LARGE', `more than ${MAX_FILES_PER_RUN} files to fetch`);
    });
    if (planned.length === before) throw new CommandError('NOT_FOUND', `no file or directory "${name}" on the server`);
  }
  return planned;
}

export async function fetchRemote(opts: FetchOptions): Promise<FetchResult> {
  const started = Date.now();
  const session = new Session(opts);
  const tree = new LocalTree(opts.to);
  const files: FetchedFile[] = [];
  const skipped: SkippedFile[] = [];
  let skippedCount = 0;
  const directories: { readonly path: string; readonly entry: Planned }[] = [];
  let bytes = 0;
  try {
    for (const entry of await plan(session, opts.names)) {
      const { remote } = entry;
      if (entry.kind === 'directory') {
        // Made now (an empty one has nothing else to make it); its mode and mtime once its contents are in.
        directories.push({ path: await tree.directory(entry.local), entry });
        continue;
      }
      // A sealed file opened with --unseal lands under its plaintext name (and is never skipped as
      // identical: the listing's SHA-256 is the age file's).
      const unseal = opts.unseal?.applies(remote) === true ? opts.unseal : undefined;
      const local = unseal?.localName(entry.local, remote) ?? entry.local;
      const target = await tree.target(local);
      // Same size and SHA-256 as the server's: nothing to fetch (§9.10; an mtime is no proof).
      if (entry.sha256 !== undefined && (await tree.holdsIdentical(target, entry.size, entry.sha256, entry.mode, entry.mtime))) {
        const skip = { name: remote, path: local, reason: 'identical' } as const;
        skippedCount++;
        if (skipped.length < MAX_LISTED) skipped.push(skip);
        opts.onSkip?.(skip);
        continue;
      }
      let fromScratch = false;
      for (;;) {
        const resume = fromScratch ? null : await tree.resumable(target, remote);
        try {
          const fetched = await session.run(async (conn) => {
            // Each attempt goes on from what the partial holds now.
            const now = fromScratch ? null : await tree.resumable(target, remote);
            fromScratch = false;
            let size = 0;
            return getOn(
              conn,
              { name: remote, resume: now ?? undefined, openPartial: (version, keep) => tree.openPartial(target, remote, version, keep) },
              {
                received: (received) => {
                  session.progressed();
                  opts.onProgress?.(local, received, size);
                },
                located: (total, offset) => {
                  size = total;
                  opts.onProgress?.(local, offset, size);
                },
              },
            );
          });
          const plain = unseal === undefined ? undefined : await unseal.publish(tree, target, fetched.fh, fetched.mode, fetched.mtime);
          if (unseal === undefined) await tree.publish(target, fetched.fh, fetched.mode, fetched.mtime);
          const file = {
            name: remote,
            path: local,
            bytes: fetched.size,
            sha256: fetched.sha256.toString('hex'),
            resumed_from: fetched.from,
            ...(plain === undefined ? {} : { unsealed_bytes: plain }),
          };
          files.push(file);
          bytes += fetched.size - fetched.from;
          opts.onFile?.(file);
          break;
        } catch (err) {
          // A resumed prefix that does not verify may be what is wrong: once, fetch the whole file.
          if (err instanceof StxError && err.code === 'INTEGRITY_FAILED' && resume !== null && resume.bytes > 0) {
            await tree.discard(target);
            opts.onEvent?.(`${local}: the resumed download did not verify; fetching it whole`);
            fromScratch = true;
            continue;
          }
          throw err;
        }
      }
    }
    // Deepest first (the reverse of listing order): a directory's mtime after everything in it.
    for (const { path, entry } of directories.reverse()) await tree.setDirectory(path, entry.local, entry.mode, entry.mtime);
    return {
      files,
      directories: directories.length,
      skipped,
      skipped_count: skippedCount,
      bytes,
      seconds: (Date.now() - started) / 1000,
      reconnects: session.reconnects,
      server_fingerprint: session.fingerprint,
    };
  } finally {
    session.close();
  }
}
