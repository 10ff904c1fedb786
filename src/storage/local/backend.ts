// The local-disk backend (storage/backend.ts): published files are plain files under the output
// directory, partial uploads and their records live in its reserved directory.
//
// Layout:
//   outDir/.stx/                     0700, reserved (names cannot reach it, §9.3)
//   outDir/.stx/partials/<id>.part   the bytes received so far
//   outDir/.stx/partials/<id>.json   the crash-safe record (record.ts)
//   outDir/.stx/sums/<hh>/<hash>     a published file's SHA-256 for one version of it (sums.ts)
//
// Nothing here follows a symbolic link below the output directory (paths.ts, O_NOFOLLOW).

import { constants, fstatSync, statfsSync, type Dirent } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, mkdir, open, readdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { ResourceError, type StxError } from '../../proto/errors.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';
import { readAtFd } from '../../transfer/file-hash.js';
import type { DirectoriesMade, DirectoryRequest, DirEntry, FileInfo, ListedPartial, PartialMeta, PartialRecord, PartialUpload, PublishedFile, PublishOptions, PutFileRequest, RangedPartial, StorageBackend, WriteLimits } from '../backend.js';
import { keptRanges, LocalRanged } from './ranged.js';
import { isPartialId } from '../backend.js';
import { BUFFERED_PARTIAL_MAX_BYTES, NAME_DIR_MODE, PARTIAL_FILE_MODE, PARTIALS_DIR_NAME, RESERVED_DIR_NAME, SUMS_DIR_NAME } from './config.js';
import { openDirect, type FileIdentity } from './direct-io.js';
import { ensurePrivateDir, fsyncDir, unlinkIfPresent } from './fs-util.js';
import { LocalPartial, type PartialPaths } from './partial.js';
import { checkName, msOf, newPathCounters, resolveExisting, stampOf, type PathCounters } from './paths.js';
import { makeLink, type LinkOptions } from './entries.js';
import { readRecord } from './record.js';
import { SumRecords } from './sums.js';
import { WriteQueue } from '../write-queue.js';
import { putFile, putRequest } from './put.js';
import { putPool, type PutRequest } from './put-pool.js';

/** The partials directory as messages show it (#shown). */
const SHOWN_PARTIALS_DIR = `${RESERVED_DIR_NAME}/${PARTIALS_DIR_NAME}`;

const PARTIAL_FILE = /^([0-9a-f]{64})\.(part|json|json\.tmp|put)$/;
/** The sweep lets the event loop run other work after looking at this many partials (~0.5 ms of record reads here). */
const SWEEP_TURN_EVERY = 64;

export class LocalBackend implements StorageBackend {
  readonly outDir: string;
  readonly #partialsDir: string;
  /** Published files' SHA-256 by name and version (§9.10). */
  readonly #sums: SumRecords;
  /** Partials open right now: a sweep or discard leaves them alone. */
  readonly #open = new Set<string>();
  /** Ids whose files are being deleted; an open of one waits for it. */
  readonly #deleting = new Map<string, Promise<void>>();
  /** Filesystem calls of name checks, directories created and removed (tests, §9.3). */
  readonly pathCounters: PathCounters = newPathCounters();
  /** outDir with its links resolved (init): what a name's directories must resolve under. */
  #realOutDir: string;
  /** Directory fsyncs shared by the files published at the same time (PUT, §9.11). */

  /** `outDir` (created by init if missing) is trusted configuration: it may be reached through links. */
  constructor(outDir: string) {
    this.outDir = path.resolve(outDir);
    this.#partialsDir = path.join(this.outDir, RESERVED_DIR_NAME, PARTIALS_DIR_NAME);
    this.#sums = new SumRecords(path.join(this.outDir, RESERVED_DIR_NAME, SUMS_DIR_NAME));
    this.#realOutDir = this.outDir;
  }

  /** Creates the layout (reserved directories 0700) and removes stray .tmp records. */
  async init(): Promise<void> {
    try {
      await mkdir(this.outDir, { mode: NAME_DIR_MODE });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating', 'the output directory');
    }
    this.#realOutDir = await this.#step('resolving', 'the output directory', () => realpath(this.outDir));
    await this.#ensurePrivateDir(path.join(this.outDir, RESERVED_DIR_NAME), RESERVED_DIR_NAME);
    await this.#ensurePrivateDir(this.#partialsDir, `${RESERVED_DIR_NAME}/${PARTIALS_DIR_NAME}`);
    await this.#ensurePrivateDir(path.join(this.outDir, RESERVED_DIR_NAME, SUMS_DIR_NAME), `${RESERVED_DIR_NAME}/${SUMS_DIR_NAME}`);
    for (const entry of await this.#listPartials()) {
      // A PUT's file is never resumed (§9.11): one left by a crash is garbage.
      if (entry.endsWith('.tmp') || entry.endsWith('.put')) await this.#remove(entry);
    }
  }

  async partials(): Promise<ListedPartial[]> {
    const listed: ListedPartial[] = [];
    for (const entry of await this.#listPartials()) {
      const id = PARTIAL_FILE.exec(entry)?.[1];
      if (id === undefined || !entry.endsWith('.json')) continue;
      let record: PartialRecord | undefined;
      try {
        record = readRecord(path.join(this.#partialsDir, entry), this.#shown(entry));
      } catch {
        continue; // unreadable: not listed
      }
      if (record !== undefined) listed.push({ id, record });
    }
    return listed;
  }

  async record(id: string): Promise<PartialRecord | undefined> {
    this.#checkId(id);
    await this.#deleting.get(id);
    return readRecord(path.join(this.#partialsDir, `${id}.json`), this.#shown(`${id}.json`));
  }

  async openPartial(id: string, meta: PartialMeta, resume: PartialRecord | undefined, limits: WriteLimits): Promise<PartialUpload> {
    this.#checkId(id);
    if (this.#open.has(id)) throw new ResourceError('INTERNAL', `partial ${id} is open already`);
    await this.#deleting.get(id);
    const paths: PartialPaths = {
      outDir: this.outDir,
      realOutDir: this.#realOutDir,
      counters: this.pathCounters,
      partialsDir: this.#partialsDir,
      partFile: path.join(this.#partialsDir, `${id}.part`),
      recordFile: path.join(this.#partialsDir, `${id}.json`),
      shown: this.#shown(id),
      sums: this.#sums,
    };
    let fh: FileHandle | undefined;
    let direct: FileHandle | null = null;
    this.#open.add(id);
    try {
      const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
      fh = await this.#step('opening', `${paths.shown}.part`, () => open(paths.partFile, flags, PARTIAL_FILE_MODE));
      const { durable, file } = await this.#trustedPrefix(fh, resume, `${paths.shown}.part`);
      // Aligned chunks bypass the page cache (direct-io.ts); without O_DIRECT, everything uses fh.
      direct = meta.size <= BUFFERED_PARTIAL_MAX_BYTES ? null : await openDirect(paths.partFile, fh, file);
      const queue = new WriteQueue(
        fh,
        { maxQueuedBytes: limits.maxQueuedBytes, maxChunkBytes: limits.maxChunkBytes, startOffset: durable, direct },
        limits.budget,
      );
      const created = resume?.created ?? Date.now();
      // An open is no progress: the partial keeps aging from its last durable byte (§9.2).
      const updated = resume?.updated ?? created;
      return new LocalPartial({ id, paths, meta, durable, created, updated, fh, direct, queue, onClose: () => this.#open.delete(id), resumed: resume !== undefined });
    } catch (err) {
      await direct?.close().catch(() => undefined);
      await fh?.close().catch(() => undefined);
      this.#open.delete(id);
      throw err;
    }
  }

  /** A ranged upload's partial (§9.13, ranged.ts): the ranges it still holds are kept, anything else goes. */
  async openRanged(id: string, meta: PartialMeta, resume: PartialRecord | undefined): Promise<RangedPartial> {
    this.#checkId(id);
    if (this.#open.has(id)) throw new ResourceError('INTERNAL', `partial ${id} is open already`);
    await this.#deleting.get(id);
    const shown = this.#shown(id);
    this.#open.add(id);
    let fh: FileHandle | undefined;
    try {
      const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
      fh = await this.#step('opening', `${shown}.part`, () => open(path.join(this.#partialsDir, `${id}.part`), flags, PARTIAL_FILE_MODE));
      const opened = fh;
      const ranges = await this.#step('resuming', `${shown}.part`, async () => {
        const kept = keptRanges(resume, (await opened.stat()).size);
        if (kept.length === 0) await opened.truncate(0);
        return kept;
      });
      const parts = { fh, meta, resume: ranges.length === 0 ? undefined : resume, partialsDir: this.#partialsDir, recordFile: path.join(this.#partialsDir, `${id}.json`), shown, onClose: () => this.#open.delete(id) };
      return new LocalRanged(parts, ranges);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      this.#open.delete(id);
      throw err;
    }
  }

  async discard(id: string): Promise<void> {
    this.#checkId(id);
    if (this.#open.has(id)) throw new ResourceError('INTERNAL', `partial ${id} is open`);
    await this.#delete(id, [`${id}.part`, `${id}.json`]);
  }

  async sweep(ttlMs: number, now: number, claim: (id: string) => boolean): Promise<number> {
    const byId = new Map<string, string[]>();
    for (const entry of await this.#listPartials()) {
      const id = PARTIAL_FILE.exec(entry)?.[1];
      if (id === undefined) continue;
      byId.set(id, [...(byId.get(id) ?? []), entry]);
    }
    let removed = 0;
    let looked = 0;
    for (const [id, entries] of byId) {
      // Records are read synchronously, and how many partials there are is up to the clients
      // (their bytes are bounded, not their count): the event loop gets a turn every so often.
      if (++looked % SWEEP_TURN_EVERY === 0) await new Promise((resolve) => setImmediate(resolve));
      if (this.#open.has(id)) continue;
      const updated = await this.#lastUpdate(id, entries);
      // Re-check: the awaits above let an open take it meanwhile.
      if (now - updated <= ttlMs || this.#open.has(id) || this.#deleting.has(id) || !claim(id)) continue;
      await this.#delete(id, entries);
      removed++;
    }
    if (removed > 0) await this.#step('syncing', `${RESERVED_DIR_NAME}/${PARTIALS_DIR_NAME}`, () => fsyncDir(this.#partialsDir));
    return removed;
  }

  /** A whole file at once (PUT, §9.11): written, synced and published under `name` (put.ts). */
  putFile(id: string, name: string, chunks: readonly Buffer[], options: PublishOptions): Promise<void> {
    try {
      this.#checkId(id);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const paths = {
      outDir: this.outDir,
      realOutDir: this.#realOutDir,
      counters: this.pathCounters,
      partialsDir: this.#partialsDir,
      shownPartialsDir: SHOWN_PARTIALS_DIR,
      temp: `${id}.put`,
      sums: this.#sums,
    };
    return putFile(paths, name, chunks, options);
  }

  /** Many whole files at once (PUT_PACK, §9.11 step 8): as putFile each, in one trip to the publishing thread (put.ts). */
  putFiles(files: readonly PutFileRequest[]): Promise<(StxError | null)[]> {
    const failures: (StxError | null)[] = [];
    const requests: PutRequest[] = [];
    const places: number[] = [];
    for (let i = 0; i < files.length; i++) {
      const file = files[i];
      if (file === undefined) continue;
      try {
        this.#checkId(file.id);
      } catch (err) {
        failures[i] = toStxError(err, 'storing', file.name);
        continue;
      }
      failures[i] = null;
      places.push(i);
      requests.push(putRequest(`${file.id}.put`, file.name, file.chunks, file.options));
    }
    const target = {
      outDir: this.outDir,
      realOutDir: this.#realOutDir,
      sumsDir: this.#sums.dir,
      counters: this.pathCounters,
      partialsDir: this.#partialsDir,
      shownPartialsDir: SHOWN_PARTIALS_DIR,
    };
    return putPool.runMany(requests, target).then((outcomes) => {
      for (let k = 0; k < places.length; k++) failures[places[k] ?? 0] = outcomes[k] ?? null;
      return failures;
    });
  }

  makeDirectories(entries: readonly DirectoryRequest[]): Promise<DirectoriesMade> {
    return putPool.makeDirectories(this.outDir, entries);
  }

  async makeLink(name: string, target: string, options: LinkOptions): Promise<void> {
    await makeLink(this.outDir, name, target, options);
    // A file the link replaced takes its recorded hash along.
    this.#sums.removeSync(name);
  }

  /** Creates nothing: a name's directories are made when its file is published (§9.3). */
  prepareName(name: string): Promise<FileInfo | null> {
    try {
      const { existing } = checkName(this.outDir, this.#realOutDir, name.split('/'), this.pathCounters);
      return Promise.resolve(existing === null ? null : { name, size: existing.size, mtime: existing.mtimeMs });
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  async openFile(name: string): Promise<PublishedFile | null> {
    const file = await resolveExisting(this.outDir, name.split('/'));
    if (file === null) return null;
    let fh: FileHandle;
    try {
      fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      // ELOOP: the name itself is a symbolic link, which is no published file.
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ELOOP' || errnoOf(err) === 'ENOTDIR') return null;
      throw toStxError(err, 'opening', name);
    }
    try {
      const st = await fh.stat({ bigint: true });
      if (st.isFile()) {
        const handle = fh;
        const stamp = stampOf(st);
        return {
          size: Number(st.size),
          mtime: msOf(st.mtimeNs),
          mode: Number(st.mode) & 0o7777,
          stamp,
          sha256: await this.#sums.read(name, stamp, handle.fd),
          currentStamp: async () => stampOf(await handle.stat({ bigint: true })),
          fd: handle.fd,
          readAt: readAtFd(handle.fd),
          close: () => handle.close().catch(() => undefined),
        };
      }
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw toStxError(err, 'checking', name);
    }
    await fh.close().catch(() => undefined);
    return null;
  }

  async readDirectory(dir: readonly string[]): Promise<DirEntry[] | null> {
    const shown = dir.length === 0 ? 'the output directory' : dir.join('/');
    const at = dir.length === 0 ? this.outDir : await resolveExisting(this.outDir, dir);
    if (at === null) return null;
    let entries: Dirent[];
    try {
      // lstat first: readdir would follow a link at the last component.
      if (dir.length > 0 && !(await lstat(at)).isDirectory()) return null;
      entries = await readdir(at, { withFileTypes: true });
    } catch (err) {
      if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return null;
      throw toStxError(err, 'listing', shown);
    }
    const out: DirEntry[] = [];
    for (const entry of entries) {
      if (dir.length === 0 && entry.name === RESERVED_DIR_NAME) continue;
      if (!entry.isFile() && !entry.isDirectory()) continue;
      const st = await lstat(path.join(at, entry.name), { bigint: true }).catch(() => null);
      // Gone meanwhile, or replaced by something else: not listed.
      if (st === null || !(st.isFile() || st.isDirectory())) continue;
      const stamp = st.isFile() ? stampOf(st) : '';
      out.push({
        name: entry.name,
        kind: st.isFile() ? 'file' : 'directory',
        size: st.isFile() ? Number(st.size) : 0,
        mtime: msOf(st.mtimeNs),
        mode: Number(st.mode) & 0o7777,
        stamp,
        sha256: st.isFile() ? await this.#sums.read([...dir, entry.name].join('/'), stamp, path.join(at, entry.name)) : undefined,
      });
    }
    return out;
  }

  async list(): Promise<FileInfo[]> {
    const files: FileInfo[] = [];
    // Depth-first over real directories only; links and special files are not published files.
    const stack: string[] = [''];
    for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
      const entries = await this.#step('listing', dir === '' ? 'the output directory' : dir, () =>
        readdir(path.join(this.outDir, dir), { withFileTypes: true }),
      );
      for (const entry of entries) {
        const name = dir === '' ? entry.name : `${dir}/${entry.name}`;
        if (dir === '' && entry.name === RESERVED_DIR_NAME) continue;
        if (entry.isDirectory()) stack.push(name);
        else if (entry.isFile()) {
          const st = await lstat(path.join(this.outDir, name)).catch(() => null);
          if (st?.isFile() === true) files.push({ name, size: st.size, mtime: st.mtimeMs });
        }
      }
    }
    return files;
  }

  freeBytes(): Promise<bigint> {
    // One fast call, made here rather than as a trip to the thread pool (paths.ts says why).
    try {
      const fs = statfsSync(this.#partialsDir, { bigint: true });
      return Promise.resolve(fs.bavail * fs.bsize);
    } catch (err) {
      return Promise.reject(toStxError(err, 'checking free space of', RESERVED_DIR_NAME));
    }
  }

  /** Deletes `entries` of partial `id`; a second delete of the same id joins the first. */
  async #delete(id: string, entries: readonly string[]): Promise<void> {
    const running = this.#deleting.get(id);
    if (running !== undefined) return running;
    const deletion = (async () => {
      for (const entry of entries) await this.#remove(entry);
    })();
    this.#deleting.set(id, deletion.catch(() => undefined));
    try {
      await deletion;
    } finally {
      this.#deleting.delete(id);
    }
  }

  #checkId(id: string): void {
    if (!isPartialId(id)) throw new ResourceError('INTERNAL', 'a partial id is 64 hex digits');
  }

  #shown(entry: string): string {
    return `${SHOWN_PARTIALS_DIR}/${entry}`;
  }

  async #ensurePrivateDir(dir: string, shown: string): Promise<void> {
    await this.#step('creating', shown, () =>
      ensurePrivateDir(dir, () => new ResourceError('IO_ERROR', `${shown} is not a directory (refusing to follow a link)`)),
    );
  }

  async #listPartials(): Promise<string[]> {
    return this.#step('listing', `${RESERVED_DIR_NAME}/${PARTIALS_DIR_NAME}`, () => readdir(this.#partialsDir));
  }

  async #remove(entry: string): Promise<void> {
    const file = path.join(this.#partialsDir, entry);
    await this.#step('deleting', this.#shown(entry), () => unlinkIfPresent(file));
  }

  /** Last update of a partial upload: its record's `updated`, else its files' newest mtime. */
  async #lastUpdate(id: string, entries: readonly string[]): Promise<number> {
    const record = readRecord(path.join(this.#partialsDir, `${id}.json`), `${id}.json`);
    if (record !== undefined) return record.updated;
    let newest = 0;
    for (const entry of entries) {
      try {
        newest = Math.max(newest, (await lstat(path.join(this.#partialsDir, entry))).mtimeMs);
      } catch (err) {
        if (errnoOf(err) !== 'ENOENT') throw toStxError(err, 'checking', entry);
      }
    }
    return newest;
  }

  /**
   * How many leading bytes of the .part file are trusted: the resumed record's durable offset if
   * the file holds that much, else 0. The file is cut to it: bytes past the last checkpoint may
   * be torn by a crash (§9.2).
   */
  async #trustedPrefix(fh: FileHandle, resume: PartialRecord | undefined, shown: string): Promise<{ durable: number; file: FileIdentity }> {
    return this.#step('resuming', shown, async () => {
      const { size: fileBytes, dev, ino } = fstatSync(fh.fd);
      const recorded = resume?.durable ?? 0;
      const durable = recorded <= fileBytes ? recorded : 0;
      if (fileBytes !== durable) await fh.truncate(durable);
      return { durable, file: { dev, ino } };
    });
  }

  async #step<T>(what: string, where: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStxError(err, what, where);
    }
  }
}
