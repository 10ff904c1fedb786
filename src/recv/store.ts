// The upload store under the output directory (spec/PROTOCOL.md §9): where partial uploads live
// until verified, how they resume, and who may open what. No sockets here: the connection layer
// calls open / write / checkpoint / finish / release.
//
// Layout:
//   outDir/.stx/                     0700, reserved (names cannot reach it, §9.3)
//   outDir/.stx/partials/<id>.part   the bytes received so far
//   outDir/.stx/partials/<id>.json   the crash-safe record (store/record.ts)

import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { lstat, mkdir, open, readdir, statfs } from 'node:fs/promises';
import path from 'node:path';
import { ResourceError, UploadError } from '../proto/errors.js';
import { MAX_DATA_CHUNK_BYTES, MAX_MODE } from '../proto/limits.js';
import {
  FREE_SPACE_MARGIN_BYTES,
  LOCK_HANDOVER_TIMEOUT_MS,
  MAX_QUEUED_BYTES_PER_CONNECTION,
  MAX_QUEUED_BYTES_TOTAL,
  NAME_DIR_MODE,
  PARTIAL_FILE_MODE,
  RESERVED_DIR_NAME,
} from './config.js';
import { resolveInside, validateName } from './names.js';
import { ensurePrivateDir, fsyncDir, unlinkIfPresent } from './store/fs-util.js';
import { Hasher, type OpenedHash } from '../transfer/hasher.js';
import { errnoOf, toStxError } from '../transfer/io-error.js';
import { UploadLocks } from './store/locks.js';
import { RECORD_VERSION, readRecord, uploadId, writeRecord, type PartialRecord } from './store/record.js';
import { Upload, type OpenUpload, type UploadPaths } from './store/upload.js';
import { SameFileCheck } from './store/same-file.js';
import { WriteQueue } from '../storage/local/write-queue.js';
import { ByteBudget } from '../transfer/budget.js';
import { BodyPool } from '../transfer/body-pool.js';
import { openDirect } from '../storage/local/direct-io.js';

export { Upload, type FinishResult, type OpenUpload } from './store/upload.js';
export { ByteBudget } from '../transfer/budget.js';
export { BodyPool } from '../transfer/body-pool.js';

/** Tuning; every field defaults to its constant in config.ts. */
export interface StoreOptions {
  /** Shared by every connection; one per process. Default: MAX_QUEUED_BYTES_TOTAL. */
  readonly budget?: ByteBudget;
  /** Buffers DATA records are opened into and written from; one per process. */
  readonly bodies?: BodyPool;
  readonly maxQueuedBytesPerConnection?: number;
  readonly maxChunkBytes?: number;
  readonly freeSpaceMarginBytes?: number;
  readonly lockHandoverTimeoutMs?: number;
}

/** The OPEN frame's fields plus who sent it. */
export interface OpenRequest {
  /** "anonymous" or the client's key fingerprint. */
  readonly principal: string;
  readonly name: string;
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  readonly mode: number;
}

export interface OpenPolicy {
  /** Refuse names that already exist (EXISTS, §9.5). */
  readonly appendOnly: boolean;
  /** Largest `size` accepted (TOO_LARGE, §9.5). */
  readonly maxFileBytes?: number | undefined;
}

/** What the connection that sent OPEN wants to hear while the store prepares OPEN_OK. */
export interface OpenHooks {
  /**
   * Another connection with the same upload identity opens this upload (§9.4): the holder
   * should close (and so release the upload). Set from the moment the lock is taken, so a
   * takeover also works while this OPEN is still re-reading the partial.
   */
  readonly onTakeover?: (() => void) | undefined;
  /** Bytes of the partial read back so far, of `total` (PROGRESS, §9.7). */
  readonly onProgress?: ((done: number, total: number) => void) | undefined;
  /** Aborted when the connection went away: a re-read stops and keeps what it read (§9.7). */
  readonly signal?: AbortSignal | undefined;
}

/** Partials are kept for one version per client and name (nameKey): an OPEN of another drops them. */
function nameKey(principal: string, name: string): string {
  return `${principal}\0${name}`;
}

/** A record is only trusted for the identity it was written for (ids could be planted). */
function sameIdentity(record: PartialRecord, request: OpenRequest): boolean {
  return (
    record.principal === request.principal &&
    record.name === request.name &&
    record.size === request.size &&
    record.mtime === request.mtime
  );
}

const PARTIAL_FILE = /^([0-9a-f]{64})\.(part|json|json\.tmp)$/;

export class Store {
  readonly outDir: string;
  readonly budget: ByteBudget;
  /** Where connections open long DATA records; the write queues give the buffers back. */
  readonly bodies: BodyPool;
  readonly #partialsDir: string;
  readonly #locks: UploadLocks;
  readonly #maxQueuedBytes: number;
  readonly #maxChunkBytes: number;
  readonly #freeSpaceMarginBytes: number;
  /** Ids whose files a running sweep is deleting; an OPEN of one waits for it. */
  readonly #sweeping = new Map<string, Promise<void>>();
  /** Each upload's SHA-256, on a worker thread (transfer/hasher.ts). */
  readonly #hasher = new Hasher();
  /** The partial upload id held for each client and name (nameKey), from the records on disk. */
  readonly #idByName = new Map<string, string>();
  /** The other way round, so that forgetting an id costs one lookup, not a scan. */
  readonly #nameById = new Map<string, string>();
  #initialised = false;

  /** `outDir` (created by init if missing) is trusted configuration: it may be reached through links. */
  constructor(outDir: string, options: StoreOptions = {}) {
    this.outDir = path.resolve(outDir);
    this.#partialsDir = path.join(this.outDir, RESERVED_DIR_NAME, 'partials');
    this.budget = options.budget ?? new ByteBudget(MAX_QUEUED_BYTES_TOTAL);
    this.bodies = options.bodies ?? new BodyPool();
    this.#locks = new UploadLocks(options.lockHandoverTimeoutMs ?? LOCK_HANDOVER_TIMEOUT_MS);
    this.#maxQueuedBytes = options.maxQueuedBytesPerConnection ?? MAX_QUEUED_BYTES_PER_CONNECTION;
    this.#maxChunkBytes = options.maxChunkBytes ?? MAX_DATA_CHUNK_BYTES;
    this.#freeSpaceMarginBytes = options.freeSpaceMarginBytes ?? FREE_SPACE_MARGIN_BYTES;
  }

  /** Uploads open right now (one lock each). */
  get openUploads(): number {
    return this.#locks.size;
  }

  /** Creates the layout (reserved directories 0700) and removes stray .tmp records. */
  async init(): Promise<void> {
    try {
      await mkdir(this.outDir, { mode: NAME_DIR_MODE });
    } catch (err) {
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating', 'the output directory');
    }
    await this.#ensurePrivateDir(path.join(this.outDir, RESERVED_DIR_NAME), RESERVED_DIR_NAME);
    await this.#ensurePrivateDir(this.#partialsDir, `${RESERVED_DIR_NAME}/partials`);
    for (const entry of await this.#listPartials()) {
      if (entry.endsWith('.tmp')) await this.#remove(entry);
    }
    await this.#indexPartials();
    await this.#hasher.prepare();
    this.#initialised = true;
  }

  /**
   * OPEN (§9.1 step 2): checks name and policy, locks the final name, and creates or resumes
   * the partial upload. `upload.offset` is the OPEN_OK offset. Throws UploadError BAD_NAME,
   * TOO_LARGE, BUSY, EXISTS, NO_SPACE, or ResourceError IO_ERROR.
   */
  async open(request: OpenRequest, policy: OpenPolicy, hooks: OpenHooks = {}): Promise<OpenUpload> {
    if (!this.#initialised) throw new ResourceError('INTERNAL', 'Store.open before Store.init');
    const components = validateName(request.name);
    const { size, mtime, mode, principal, name } = request;
    // The frame decoder range-checks these (§2.1, §4); here is only a guard against our own bugs.
    const sizeOk = Number.isSafeInteger(size) && size >= 0;
    const modeOk = Number.isSafeInteger(mode) && mode >= 0 && mode <= MAX_MODE;
    if (!sizeOk || !modeOk || !Number.isSafeInteger(mtime)) {
      throw new ResourceError('INTERNAL', 'OPEN fields out of range');
    }
    if (policy.maxFileBytes !== undefined && size > policy.maxFileBytes) {
      throw new UploadError('TOO_LARGE', `size ${size} is above the limit of ${policy.maxFileBytes} bytes`);
    }
    const id = uploadId({ principal, name, size, mtime });
    const shownName = components.join('/');
    const lock = await this.#locks.acquire(path.join(this.outDir, ...components), id, shownName);
    lock.onReleaseRequest = hooks.onTakeover;
    let fh: FileHandle | undefined;
    let direct: FileHandle | null = null;
    let opened: OpenedHash | undefined;
    try {
      await this.#sweeping.get(id);
      const finalPath = await resolveInside(this.outDir, components);
      if (policy.appendOnly && (await this.#exists(finalPath, shownName))) {
        // A re-run of the same backup is not an error if the file is the same (§9.5).
        const check = await SameFileCheck.open(finalPath, request, lock, this.#hasher, shownName);
        if (check === null) throw new UploadError('EXISTS', `"${shownName}" already exists`);
        return check;
      }
      await this.#dropOtherVersion(nameKey(principal, name), id);
      const paths: UploadPaths = {
        outDir: this.outDir,
        components,
        partialsDir: this.#partialsDir,
        partFile: path.join(this.#partialsDir, `${id}.part`),
        recordFile: path.join(this.#partialsDir, `${id}.json`),
        shown: `${RESERVED_DIR_NAME}/partials/${id}`,
      };
      const recorded = await readRecord(paths.recordFile, `${paths.shown}.json`);
      const previous = recorded !== undefined && sameIdentity(recorded, request) ? recorded : undefined;
      // Checked before creating anything, so a refused OPEN leaves no file behind.
      await this.#checkFreeSpace(size - (previous?.durable ?? 0));
      const flags = constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW;
      fh = await this.#step('opening', `${paths.shown}.part`, () => open(paths.partFile, flags, PARTIAL_FILE_MODE));
      const durable = await this.#trustedPrefix(fh, previous, `${paths.shown}.part`);
      const onProgress = hooks.onProgress;
      opened = await this.#hasher.open(fh, durable, `${paths.shown}.part`, {
        key: id,
        onProgress: onProgress === undefined ? undefined : (done) => onProgress(done, durable),
        signal: hooks.signal,
      });
      const now = Date.now();
      const record: PartialRecord = {
        version: RECORD_VERSION,
        principal,
        name,
        size,
        mtime,
        mode,
        durable,
        created: previous?.created ?? now,
        updated: now,
      };
      await writeRecord(paths.recordFile, this.#partialsDir, record, `${paths.shown}.json`);
      // Aligned chunks bypass the page cache (direct-io.ts); without O_DIRECT, everything uses fh.
      direct = await openDirect(paths.partFile, fh);
      const queue = new WriteQueue(
        fh,
        {
          maxQueuedBytes: this.#maxQueuedBytes,
          maxChunkBytes: this.#maxChunkBytes,
          startOffset: durable,
          direct,
        },
        this.budget,
      );
      const forget = (): void => this.#unindex(id);
      return new Upload({ id, paths, record, fh, direct, queue, hash: opened.hash, reread: opened.reread, lock, appendOnly: policy.appendOnly, forget });
    } catch (err) {
      opened?.hash.close();
      await direct?.close().catch(() => undefined);
      await fh?.close().catch(() => undefined);
      lock.release();
      throw toStxError(err, 'opening', shownName);
    }
  }

  /** Stops the hashing thread (after the last upload closed; one still open fails with INTERNAL). */
  async close(): Promise<void> {
    await this.#hasher.stop();
  }

  /**
   * Deletes partial uploads (and records) not updated within `ttlMs` of `now` and not open.
   * Returns how many uploads were removed.
   */
  async sweep(ttlMs: number, now = Date.now()): Promise<number> {
    const byId = new Map<string, string[]>();
    for (const entry of await this.#listPartials()) {
      const id = PARTIAL_FILE.exec(entry)?.[1];
      if (id === undefined) continue;
      byId.set(id, [...(byId.get(id) ?? []), entry]);
    }
    let removed = 0;
    for (const [id, entries] of byId) {
      if (this.#locks.isIdLocked(id)) continue;
      const updated = await this.#lastUpdate(id, entries);
      // Re-check: the awaits above let an OPEN take the lock meanwhile.
      if (now - updated <= ttlMs || this.#locks.isIdLocked(id) || this.#sweeping.has(id)) continue;
      this.#hasher.drop(id);
      this.#unindex(id);
      const deletion = (async () => {
        for (const entry of entries) await this.#remove(entry);
      })();
      this.#sweeping.set(id, deletion.catch(() => undefined));
      try {
        await deletion;
        removed++;
      } finally {
        this.#sweeping.delete(id);
      }
    }
    if (removed > 0) await this.#step('syncing', `${RESERVED_DIR_NAME}/partials`, () => fsyncDir(this.#partialsDir));
    return removed;
  }

  /**
   * The partial of another version of this client's file (it was changed, e.g. touched, since
   * that upload began) can never be resumed: it goes now, not after the partial TTL. Then
   * `id` is the one partial kept for this client and name.
   */
  async #dropOtherVersion(key: string, id: string): Promise<void> {
    const other = this.#idByName.get(key);
    this.#index(key, id);
    if (other === undefined || other === id || this.#locks.isIdLocked(other) || this.#sweeping.has(other)) return;
    this.#hasher.drop(other);
    for (const suffix of ['.part', '.json']) await this.#remove(`${other}${suffix}`);
  }

  /** Builds #idByName from the records; of two versions of one client's file the older goes. */
  async #indexPartials(): Promise<void> {
    const newest = new Map<string, PartialRecord & { id: string }>();
    for (const entry of await this.#listPartials()) {
      const id = PARTIAL_FILE.exec(entry)?.[1];
      if (id === undefined || !entry.endsWith('.json')) continue;
      const record = await readRecord(path.join(this.#partialsDir, entry), `${RESERVED_DIR_NAME}/partials/${entry}`).catch(() => undefined);
      // Only a record that is what its file name says counts (ids could be planted).
      if (record === undefined || uploadId(record) !== id) continue;
      const key = nameKey(record.principal, record.name);
      const held = newest.get(key);
      const [keep, drop] = held === undefined || record.updated >= held.updated ? [{ ...record, id }, held] : [held, { ...record, id }];
      newest.set(key, keep);
      if (drop !== undefined) for (const suffix of ['.part', '.json']) await this.#remove(`${drop.id}${suffix}`);
    }
    for (const [key, record] of newest) this.#index(key, record.id);
  }

  #index(key: string, id: string): void {
    const previous = this.#idByName.get(key);
    if (previous !== undefined) this.#nameById.delete(previous);
    this.#idByName.set(key, id);
    this.#nameById.set(id, key);
  }

  #unindex(id: string): void {
    const key = this.#nameById.get(id);
    if (key === undefined) return;
    this.#nameById.delete(id);
    if (this.#idByName.get(key) === id) this.#idByName.delete(key);
  }

  async #ensurePrivateDir(dir: string, shown: string): Promise<void> {
    await this.#step('creating', shown, () =>
      ensurePrivateDir(dir, () => new ResourceError('IO_ERROR', `${shown} is not a directory (refusing to follow a link)`)),
    );
  }

  async #listPartials(): Promise<string[]> {
    return this.#step('listing', `${RESERVED_DIR_NAME}/partials`, () => readdir(this.#partialsDir));
  }

  async #remove(entry: string): Promise<void> {
    const file = path.join(this.#partialsDir, entry);
    await this.#step('deleting', `${RESERVED_DIR_NAME}/partials/${entry}`, () => unlinkIfPresent(file));
  }

  async #exists(file: string, shown: string): Promise<boolean> {
    try {
      await lstat(file);
      return true;
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return false;
      throw toStxError(err, 'checking', shown);
    }
  }

  /** Last update of a partial upload: its record's `updated`, else its files' newest mtime. */
  async #lastUpdate(id: string, entries: readonly string[]): Promise<number> {
    const record = await readRecord(path.join(this.#partialsDir, `${id}.json`), `${id}.json`);
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
   * How many leading bytes of the .part file are trusted: the recorded durable offset if the
   * file holds that much, else 0. The file is truncated to it: bytes past the last checkpoint
   * may be torn by a crash (§9.2).
   */
  async #trustedPrefix(fh: FileHandle, previous: PartialRecord | undefined, shown: string): Promise<number> {
    return this.#step('resuming', shown, async () => {
      const { size: fileBytes } = await fh.stat();
      const recorded = previous?.durable ?? 0;
      const durable = recorded <= fileBytes ? recorded : 0;
      if (fileBytes !== durable) await fh.truncate(durable);
      return durable;
    });
  }

  async #checkFreeSpace(bytesToCome: number): Promise<void> {
    const dir = this.#partialsDir;
    const fs = await this.#step('checking free space of', RESERVED_DIR_NAME, () => statfs(dir, { bigint: true }));
    const need = BigInt(bytesToCome) + BigInt(this.#freeSpaceMarginBytes);
    if (fs.bavail * fs.bsize < need) {
      throw new UploadError('NO_SPACE', `not enough free space for ${bytesToCome} more bytes`);
    }
  }

  async #step<T>(what: string, where: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toStxError(err, what, where);
    }
  }
}
