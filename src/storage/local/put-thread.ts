// The thread that publishes small files (PUT, spec/PROTOCOL.md §9.11; put-pool.ts starts it). It
// takes a batch of files and does each one's whole job with synchronous calls (a batch that waits
// for a sync lets the next one run meanwhile: put-pool.ts gives it up to two at once): create the
// temporary file, write it, give it its mode and mtime; then fsync every file of the batch at
// once (on the thread pool: concurrent fsyncs share the filesystem's journal commits and disk
// cache flushes, where one after another each cost a flush, ~4 ms here); then check the name's parents (paths.ts, the same checks as for an OPEN), rename or link
// each to its final name and record its SHA-256 if larger than 64 KiB (sums.ts); then fsync the directories on the
// way, once each per batch, at once too (syncDirectories).
// On the main thread the same job took ~10 thread-pool trips of 50–100 µs each per file.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { closeSync, constants, fchmodSync, type BigIntStats, fstatSync, fsync, fsyncSync, futimesSync, linkSync, opendirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { UploadError, StxError, ResourceError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { PARTIAL_FILE_MODE, SMALL_SUM_MAX_BYTES } from './config.js';
import { MAX_PATH_BYTES, newPathCounters, prepareParents, removeCreated, stampOf, type PathCounters, type PreparedPath } from './paths.js';
import { SumRecords } from './sums.js';
import { makeDirectoriesSync } from './entries.js';
import type { BatchReply, DirJob, DirReply, PutBatch, PutFailure, ThreadMessage } from './put-pool.js';
import { jobCount, jobOf, type PutJob } from './put-jobs.js';

const port = parentPort;
if (port === null) throw new Error('put-thread.js runs as a worker thread (put-pool.ts starts it)');

const sumsByDir = new Map<string, SumRecords>();

function sumsOf(dir: string): SumRecords {
  let sums = sumsByDir.get(dir);
  if (sums === undefined) sumsByDir.set(dir, (sums = new SumRecords(dir)));
  return sums;
}

function asStx(err: unknown, what: string, where: string): StxError {
  return err instanceof StxError ? err : toStxError(err, what, where);
}

interface Running {
  readonly job: PutJob;
  /** The file written before it is published: PutBatch.partialsDir/PutJob.temp. */
  readonly tempFile: string;
  /** How messages show it. */
  readonly shownTemp: string;
  /** The batch's buffer, one view for all its files: the file's bytes are [job.at, job.at + job.size). */
  readonly bytes: Uint8Array;
  fd: number;
  /** The file was created with its final mode (no fchmod): checked in publish() unless checkModes() found its batch right. */
  modeAtCreate: boolean;
  /** checkModes() saw the mode the file was created with: publish() need not look at it. */
  modeKnown: boolean;
  published: boolean;
  failure: StxError | null;
  finalPath: string;
}

/**
 * This process's umask, read once from /proc (process.umask() without an argument sets the mask
 * to read it); null where /proc cannot tell. A file whose mode the umask leaves whole is created
 * with it, which saves an fchmod per file; checkModes() and publish() check the mode it got all the same.
 */
const umask: number | null = (() => {
  try {
    const line = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return line?.[1] === undefined ? null : parseInt(line[1], 8);
  } catch {
    return null;
  }
})();

/**
 * Whether the files of a batch created with their final mode got it, known from two of each mode
 * (the first and the last created) instead of an fstat per file: what gives a new file less than
 * the mode asked for is the umask (one per process) or a default ACL of the partials directory
 * (one per directory), not the file; if either changed while the batch was written, the first or
 * the last file of a mode shows it, unless it changed and changed back meanwhile. Where one of
 * them is off, every file of the batch is looked at in publish(), as before (and fixed there).
 */
function checkModes(all: readonly Running[]): void {
  const firstOfMode = new Map<number, Running>();
  const lastOfMode = new Map<number, Running>();
  for (const r of all) {
    if (!r.modeAtCreate || r.failure !== null) continue;
    const mode = r.job.mode & 0o777;
    if (!firstOfMode.has(mode)) firstOfMode.set(mode, r);
    lastOfMode.set(mode, r);
  }
  try {
    for (const samples of [firstOfMode, lastOfMode]) {
      for (const [mode, r] of samples) if ((fstatSync(r.fd).mode & 0o777) !== mode) return;
    }
  } catch {
    return; // not known: publish() looks at each file
  }
  for (const r of all) if (r.modeAtCreate) r.modeKnown = true;
}

/**
 * Creates the temporary file, new (O_EXCL: never one left by a crash, whatever its mode, or a link
 * a crash left to a published file, which O_TRUNC would have emptied), never through a link.
 */
function createTemp(file: string, mode: number): number {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  try {
    return openSync(file, flags, mode);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err;
  }
  // Left over by a crash (PUT keeps nothing for a resume): only garbage.
  unlinkSync(file);
  return openSync(file, flags, mode);
}

function write(r: Running): void {
  const { job, bytes } = r;
  const mode = job.mode & 0o777;
  r.modeAtCreate = umask !== null && (mode & umask) === 0;
  try {
    r.fd = createTemp(r.tempFile, r.modeAtCreate ? mode : PARTIAL_FILE_MODE);
  } catch (err) {
    r.failure = asStx(err, 'creating', r.shownTemp);
    return;
  }
  try {
    for (let at = 0; at < job.size; ) {
      // A short write goes on where it stopped.
      at += writeSync(r.fd, bytes, job.at + at, job.size - at);
    }
    if (!r.modeAtCreate) fchmodSync(r.fd, mode);
    // Seconds as numbers: no Date per file.
    futimesSync(r.fd, Date.now() / 1000, job.mtime / 1000);
  } catch (err) {
    r.failure = asStx(err, 'writing', r.shownTemp);
  }
}

/** syncfs(2)'s system call number, where the tables are known (perl's syscall() takes the number). */
const SYNCFS_NR: Partial<Record<string, number>> = { x64: 306, arm64: 267, riscv64: 267, loong64: 267 };

/**
 * The two ways to run syncfs(2) from a small process started once per output directory, in it,
 * that syncs for every line it reads and answers 0 or 1 (its first line: ready or none). Perl
 * (Debian's perl-base is an essential package) calls syncfs itself on the directory it holds
 * open; the shell runs `sync -f .`, one process per sync, whose start cost ~3.5 ms of CPU each
 * (134 of them for 10,000 small files). Forking the daemon itself for every sync was not an
 * option: a fork marks its whole heap copy-on-write, and the page faults after each cost more
 * than the sync.
 */
function syncCommands(): [string, string[]][] {
  const nr = SYNCFS_NR[process.arch];
  const perl =
    'opendir(D, ".") or do { print "none\n"; exit 0 }; $| = 1; my $nr = ' +
    String(nr) +
    '; if (syscall($nr, fileno(D)) != 0) { print "none\n"; exit 0 } print "ready\n"; while (<STDIN>) { print syscall($nr, fileno(D)) == 0 ? "0\n" : "1\n" }';
  const sh = 'if sync -f . 2>/dev/null; then echo ready; else echo none; exit 0; fi; while read -r _; do if sync -f .; then echo 0; else echo 1; fi; done';
  const commands: [string, string[]][] = [['/bin/sh', ['-c', sh]]];
  if (nr !== undefined) commands.unshift(['perl', ['-e', perl]]);
  return commands;
}

/** The filesystem syncs of one output directory, through one of syncCommands(). */
class Syncer {
  readonly #proc: ChildProcessByStdio<Writable, Readable, null>;
  readonly #waiting: ((line: string) => void)[] = [];
  #buffered = '';
  #dead = false;
  readonly ready: Promise<boolean>;

  constructor(dir: string, command: [string, string[]]) {
    this.#proc = spawn(command[0], command[1], { cwd: dir, stdio: ['pipe', 'pipe', 'ignore'] });
    this.#proc.unref();
    this.ready = this.#line().then((l) => l === 'ready');
    this.#proc.stdout.setEncoding('utf8').on('data', (d: string) => {
      this.#buffered += d;
      for (let nl = this.#buffered.indexOf('\n'); nl >= 0; nl = this.#buffered.indexOf('\n')) {
        const line = this.#buffered.slice(0, nl);
        this.#buffered = this.#buffered.slice(nl + 1);
        this.#waiting.shift()?.(line);
      }
    });
    const gone = (): void => {
      this.#dead = true;
      for (const w of this.#waiting.splice(0)) w('gone');
    };
    this.#proc.once('exit', gone);
    this.#proc.once('error', gone);
    this.#proc.stdin.on('error', gone);
  }

  #line(): Promise<string> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Lets the shell end (it reads end of file). */
  close(): void {
    this.#proc.stdin.end();
  }

  /** Everything written to the filesystem before this call is durable once it resolves true. */
  async sync(): Promise<boolean> {
    if (this.#dead) return false;
    const answer = this.#line();
    this.#proc.stdin.write('\n');
    return (await answer) === '0';
  }
}

/**
 * Per output directory its syncer, or null where neither command can sync (the caller then
 * fsyncs); a promise while it starts, so that batches running at once share one.
 */
const syncers = new Map<string, Promise<Syncer | null>>();
/** Sync processes kept per thread (a daemon has one output directory; a test process may make many). */
const MAX_SYNCERS = 4;

/**
 * Makes everything written to the filesystem of `dir` durable: one journal commit and one
 * disk-cache flush for the whole batch, where an fsync per file cost a commit and a flush each
 * (~4 ms here) unless many ran at once. False where the system cannot (the caller fsyncs file by
 * file instead); an Error when the sync failed.
 */
async function syncFilesystem(dir: string): Promise<boolean | Error> {
  let starting = syncers.get(dir);
  if (starting === undefined) {
    // The oldest process goes: a request it has still waiting is answered before it reads the end of its input.
    for (const [old, s] of syncers) {
      if (syncers.size < MAX_SYNCERS) break;
      void s.then((p) => p?.close());
      syncers.delete(old);
    }
    starting = startSyncer(dir);
    syncers.set(dir, starting);
  }
  const syncer = await starting;
  if (syncer === null) return false;
  if (await syncer.sync()) return true;
  if (syncers.get(dir) === starting) syncers.delete(dir);
  syncer.close();
  return Object.assign(new Error('sync failed'), { code: 'EIO' });
}

/** The first of syncCommands() that can sync in `dir`, or null (never rejects: it is kept in `syncers`). */
async function startSyncer(dir: string): Promise<Syncer | null> {
  for (const command of syncCommands()) {
    let candidate: Syncer;
    try {
      candidate = new Syncer(dir, command);
    } catch {
      continue; // could not even be spawned: the next command, or file-by-file fsyncs
    }
    if (await candidate.ready) return candidate;
    candidate.close();
  }
  return null;
}

/** fsync of `fd` on the thread pool: the batch's fsyncs run at once and share journal commits. */
function fsyncAsync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

async function sync(r: Running): Promise<void> {
  try {
    // The bytes before the name: a crash never leaves a torn file under its final name.
    await fsyncAsync(r.fd);
  } catch (err) {
    r.failure = asStx(err, 'writing', r.shownTemp);
  }
}

/** Files of a batch in one directory from which on a listing of it replaces their lstats. */
const LIST_MIN_FILES = 4;
/** Entries read per file of the batch in the directory at most: a larger directory is not listed whole. */
const LIST_ENTRIES_PER_FILE = 32;

/**
 * The names in `dir`, if it has at most `limit` entries; null if it has more (or cannot be
 * read): its files are then looked at one by one. One listing (a few system calls) stands for an
 * lstat per file: a name not listed is known to be absent, one listed is looked at as before.
 */
function listNames(dir: string, limit: number, counters: PathCounters): Set<string> | null {
  const names = new Set<string>();
  let d: ReturnType<typeof opendirSync> | undefined;
  try {
    counters.lookups++;
    d = opendirSync(dir, { bufferSize: 128 });
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (names.size >= limit) return null;
      names.add(e.name);
    }
    return names;
  } catch {
    return null;
  } finally {
    try {
      d?.closeSync();
    } catch {
      // Only read.
    }
  }
}

/** What a batch knows of its directories: per parent (a name's directory part), its files and listing. */
interface Listings {
  readonly files: Map<string, number>;
  /** Listed: the names there; null: not listed (too large, or unreadable). */
  readonly names: Map<string, Set<string> | null>;
  /**
   * Parents prepared (checked real, made if missing) by an earlier file of the batch: the path of
   * the directory, as prepareParents gave it. A later file there whose name the listing shows
   * absent needs nothing of prepareParents but its final path (see publish()).
   */
  readonly prepared: Map<string, string>;
}

/**
 * `dir`/`base`, as path.join makes it of a prepared directory and a validated component (neither
 * '', '.', '..' nor holding '/', recv/names.ts), refused as finalPathOf refuses it (PATH_MAX).
 */
function pathIn(dir: string, base: string): string {
  const full = dir.endsWith('/') ? dir + base : `${dir}/${base}`;
  if (full.length >= MAX_PATH_BYTES / 3 && Buffer.byteLength(full, 'utf8') >= MAX_PATH_BYTES) {
    throw new UploadError('BAD_NAME', `name too long for this server: with its output directory the path would exceed ${MAX_PATH_BYTES - 1} bytes`);
  }
  return full;
}

function parentOf(name: string): string {
  const slash = name.lastIndexOf('/');
  return slash < 0 ? '' : name.slice(0, slash);
}

function publish(batch: PutBatch, r: Running, counters: PathCounters, checked: Set<string>, listings: Listings): void {
  const { job } = r;
  const parent = parentOf(job.name);
  const listed = listings.names.get(parent);
  const base = job.name.slice(parent.length === 0 ? 0 : parent.length + 1);
  const absent = listed !== undefined && listed !== null && !listed.has(base);
  /** prepareParents made the name's directory for this file: it held nothing else. */
  let madeParent = false;
  try {
    const preparedDir = absent ? listings.prepared.get(parent) : undefined;
    const prepared: PreparedPath =
      preparedDir !== undefined ? { finalPath: pathIn(preparedDir, base), created: [] } : prepareParents(batch.outDir, batch.realOutDir, job.name.split('/'), counters, checked, absent);
    if (preparedDir === undefined) listings.prepared.set(parent, path.dirname(prepared.finalPath));
    madeParent = prepared.created.length > 0 && prepared.created[prepared.created.length - 1] === path.dirname(prepared.finalPath);
    try {
      if (job.how === 'no-clobber') {
        try {
          linkSync(r.tempFile, prepared.finalPath);
        } catch (err) {
          if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'publishing', job.name);
          throw new UploadError('EXISTS', `"${job.name}" already exists`);
        }
      } else {
        try {
          renameSync(r.tempFile, prepared.finalPath);
        } catch (err) {
          throw toStxError(err, 'publishing', job.name);
        }
      }
    } catch (err) {
      removeCreated(prepared.created, counters);
      throw err;
    }
    r.published = true;
    r.finalPath = prepared.finalPath;
  } catch (err) {
    r.failure = asStx(err, 'publishing', job.name);
    return;
  } finally {
    // The directory is real now (or the name failed): its other files of the batch take their
    // absence from one listing, or, where this file's publish made the directory, from that (it
    // held only this file: the first batch into each new directory of a tree lists none).
    if (listed === undefined && (listings.files.get(parent) ?? 0) >= LIST_MIN_FILES) {
      const dir = r.finalPath === '' ? null : path.dirname(r.finalPath);
      const names = madeParent ? new Set([base]) : dir === null ? null : listNames(dir, LIST_ENTRIES_PER_FILE * (listings.files.get(parent) ?? 0), counters);
      listings.names.set(parent, dir === null ? null : names);
    }
  }
  // A small file has no record (its hash is computed when asked, sums.ts): none to write, and
  // none to remove (one an earlier version left names another stamp).
  const recorded = job.size > SMALL_SUM_MAX_BYTES;
  // The SHA-256 to record, a view on the batch's buffer (made only for a file that has a record).
  const sha256 = recorded && job.sha256At >= 0 ? Buffer.from(r.bytes.buffer, job.sha256At, 32) : null;
  // The published inode (still open: the rename changed its ctime): its mode, and its stamp.
  let st: BigIntStats | null = null;
  try {
    const mode = job.mode & 0o777;
    if (sha256 !== null) st = fstatSync(r.fd, { bigint: true });
    // Only the mode is looked at for a file without a record: plain numbers, no BigInts per file.
    const modeNow = st !== null ? Number(st.mode & 0o777n) : r.modeAtCreate && !r.modeKnown ? fstatSync(r.fd).mode & 0o777 : mode;
    if (r.modeAtCreate && modeNow !== mode) {
      // The umask changed since this thread read it: the mode is set here, durably before the
      // answer as the rest is (the batch's second sync may be fsyncs of directories only).
      fchmodSync(r.fd, mode);
      fsyncSync(r.fd);
      if (st !== null) st = fstatSync(r.fd, { bigint: true });
    }
  } catch (err) {
    // A mode not known to be right fails the file (it is sent again); else only the hash is unknown.
    if (r.modeAtCreate) {
      r.failure = asStx(err, 'publishing', job.name);
      return;
    }
    st = null;
  }
  if (!recorded) return;
  // The published file's SHA-256 for its version now, stamped from the published inode itself.
  // Best effort: the file is published whatever happens here, its hash then unknown.
  const sums = sumsOf(batch.sumsDir);
  try {
    if (sha256 === null || st === null) sums.removeSync(job.name);
    else sums.writeSync(job.name, stampOf(st), sha256);
  } catch {
    sums.removeSync(job.name);
  }
}

/**
 * Makes the batch's renames durable: fsyncs, once each, every directory from each published file's
 * parent up to the output directory. That covers a directory this batch made (its entry is in its
 * parent) and one another thread made just before (it existed before our rename, so its entry is
 * in its parent before our fsync of that parent): no file is answered before its whole path is
 * durable, whichever thread made the path. A directory with nothing new costs a quick fsync.
 */
async function syncDirectories(outDir: string, all: readonly Running[]): Promise<void> {
  const dirs = new Map<string, Running[]>();
  for (const r of all) {
    if (r.failure !== null || !r.published) continue;
    const top = path.resolve(outDir);
    for (let d = path.dirname(r.finalPath); d.length >= top.length; d = path.dirname(d)) {
      const list = dirs.get(d);
      if (list === undefined) dirs.set(d, [r]);
      else list.push(r);
      if (d === top || d === path.dirname(d)) break;
    }
  }
  await Promise.all(
    [...dirs].map(async ([dir, files]) => {
      let fd = -1;
      try {
        fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
        await fsyncAsync(fd);
      } catch (err) {
        for (const r of files) r.failure ??= toStxError(err, 'syncing directory of', r.job.name);
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    }),
  );
}

function finish(r: Running): void {
  if (r.fd >= 0) {
    try {
      closeSync(r.fd);
    } catch {
      // Written and synced already, or failed already.
    }
  }
  // After a link (no-clobber) or a failure the temporary file is only garbage.
  if (!r.published || r.job.how === 'no-clobber') {
    try {
      unlinkSync(r.tempFile);
    } catch {
      // Gone already, or never made.
    }
  }
}

async function run(batch: PutBatch): Promise<void> {
  const counters = newPathCounters();
  const bytes = new Uint8Array(batch.buffer);
  const all: Running[] = [];
  for (let i = 0; i < jobCount(batch.jobs); i++) {
    const job = jobOf(batch.jobs, i);
    all.push({
      job,
      // Both names built here from the batch's directory: path.join's result without its
      // normalising per file (the directory is normalised already, the entry is hex digits and '.put').
      tempFile: `${batch.partialsDir}/${job.temp}`,
      shownTemp: `${batch.shownPartialsDir}/${job.temp}`,
      bytes,
      fd: -1,
      modeAtCreate: false,
      modeKnown: false,
      published: false,
      failure: null,
      finalPath: '',
    });
  }
  try {
    for (const r of all) write(r);
    checkModes(all);
    const data = await syncFilesystem(batch.realOutDir);
    if (data instanceof Error) for (const r of all) r.failure ??= asStx(data, 'writing', r.shownTemp);
    else if (!data) await Promise.all(all.filter((r) => r.failure === null).map((r) => sync(r)));
    const checked = new Set<string>();
    const listings: Listings = { files: new Map(), names: new Map(), prepared: new Map() };
    for (const r of all) {
      const parent = parentOf(r.job.name);
      if (r.failure === null) listings.files.set(parent, (listings.files.get(parent) ?? 0) + 1);
    }
    for (const r of all) if (r.failure === null) publish(batch, r, counters, checked, listings);
    const names = all.some((r) => r.published) ? await syncFilesystem(batch.realOutDir) : true;
    if (names instanceof Error) for (const r of all) r.failure ??= asStx(names, 'syncing directory of', r.job.name);
    else if (!names) await syncDirectories(batch.outDir, all);
  } catch (err) {
    // Only a bug gets here: every job not published fails alone.
    for (const r of all) r.failure ??= r.published ? null : new ResourceError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const r of all) finish(r);
  }
  const done: number[] = [];
  const failed: PutFailure[] = [];
  for (const r of all) {
    if (r.failure === null) done.push(r.job.id);
    else failed.push({ id: r.job.id, code: r.failure.code, message: r.failure.message });
  }
  // The buffer goes back for the next batch (put-pool.ts keepBuffer): the views on it are not used again.
  port?.postMessage({ kind: 'batch', seq: batch.seq, done, failed, counters, buffer: batch.buffer } satisfies BatchReply, [batch.buffer]);
}

/** A run of MKDIRs (§9.8): the whole job here, answered at once (entries.ts). */
function makeDirectories(job: DirJob): void {
  let failure: DirReply['failure'] = null;
  const outcome = makeDirectoriesSync(job.outDir, job.entries);
  if (outcome.failure !== null) {
    const stx = asStx(outcome.failure, 'creating directory', job.entries[outcome.made]?.name ?? '');
    failure = { code: stx.code, message: stx.message };
  }
  port?.postMessage({ kind: 'dir', seq: job.seq, made: outcome.made, failure } satisfies DirReply);
}

port.on('message', (message: ThreadMessage) => {
  if (message.kind === 'batch') void run(message);
  else makeDirectories(message);
});
