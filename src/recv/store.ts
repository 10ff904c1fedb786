// The upload store (spec/PROTOCOL.md §9), the policy side: which names may be uploaded, size and
// space limits, one upload per name at a time (locks, takeover), append-only, one partial kept
// per client and name, and the SHA-256 that must match before anything is published. Where the
// bytes rest is a storage backend's (storage/backend.ts; local disk by default). No sockets
// here: the connection layer calls open / write / checkpoint / finish / release.

import path from 'node:path';
import { ResourceError, UploadError } from '../proto/errors.js';
import { MAX_DATA_CHUNK_BYTES, MAX_MODE } from '../proto/limits.js';
import type { DirEntry, PartialRecord, PartialUpload, PublishedFile, StorageBackend } from '../storage/backend.js';
import { LocalBackend } from '../storage/local/backend.js';
import { processUmask } from './process-limits.js';
import { ByteBudget } from '../transfer/budget.js';
import { BodyPool } from '../transfer/body-pool.js';
import { Hasher, type OpenedHash } from '../transfer/hasher.js';
import { toStxError } from '../transfer/io-error.js';
import {
  FREE_SPACE_MARGIN_BYTES,
  LOCK_HANDOVER_TIMEOUT_MS,
  MAX_QUEUED_BYTES_PER_CONNECTION,
  MAX_QUEUED_BYTES_TOTAL,
} from './config.js';
import { validateName } from './names.js';
import { UploadLocks } from './store/locks.js';
import { SameFileCheck } from './store/same-file.js';
import { Upload, type OpenUpload } from './store/upload.js';
import { uploadId } from './store/upload-id.js';

export { Upload, type FinishResult, type OpenUpload } from './store/upload.js';
export { ByteBudget } from '../transfer/budget.js';
export { BodyPool } from '../transfer/body-pool.js';

/** Tuning; every field defaults to its constant in config.ts. */
export interface StoreOptions {
  /** Shared by every connection; one per process. Default: MAX_QUEUED_BYTES_TOTAL. */
  readonly budget?: ByteBudget;
  /** Buffers DATA records are opened into and written from; one per process. */
  readonly bodies?: BodyPool;
  /** Where the bytes rest. Default: the local disk under the store's output directory. */
  readonly backend?: StorageBackend;
  readonly maxQueuedBytesPerConnection?: number;
  readonly maxChunkBytes?: number;
  readonly freeSpaceMarginBytes?: number;
  readonly lockHandoverTimeoutMs?: number;
  /** Permission bits never given to a published file (§4). Default: the process's umask. */
  readonly umask?: number;
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

export class Store {
  readonly outDir: string;
  readonly budget: ByteBudget;
  /** Where connections open long DATA records; the write queues give the buffers back. */
  readonly bodies: BodyPool;
  readonly #backend: StorageBackend;
  readonly #locks: UploadLocks;
  readonly #maxQueuedBytes: number;
  readonly #maxChunkBytes: number;
  readonly #freeSpaceMarginBytes: number;
  readonly #umask: number;
  /** Each upload's SHA-256, on a worker thread (transfer/hasher.ts). */
  readonly #hasher = new Hasher();
  /** The partial upload id held for each client and name (nameKey), from the backend's records. */
  readonly #idByName = new Map<string, string>();
  /** The other way round, so that forgetting an id costs one lookup, not a scan. */
  readonly #nameById = new Map<string, string>();
  #initialised = false;

  /**
   * `outDir` (created by init if missing) is trusted configuration: it may be reached through
   * links. With `options.backend` the bytes go there instead and `outDir` is only a label.
   */
  constructor(outDir: string, options: StoreOptions = {}) {
    this.#backend = options.backend ?? new LocalBackend(outDir);
    this.outDir = path.resolve(outDir);
    this.budget = options.budget ?? new ByteBudget(MAX_QUEUED_BYTES_TOTAL);
    this.bodies = options.bodies ?? new BodyPool();
    this.#locks = new UploadLocks(options.lockHandoverTimeoutMs ?? LOCK_HANDOVER_TIMEOUT_MS);
    this.#maxQueuedBytes = options.maxQueuedBytesPerConnection ?? MAX_QUEUED_BYTES_PER_CONNECTION;
    this.#maxChunkBytes = options.maxChunkBytes ?? MAX_DATA_CHUNK_BYTES;
    this.#freeSpaceMarginBytes = options.freeSpaceMarginBytes ?? FREE_SPACE_MARGIN_BYTES;
    this.#umask = options.umask ?? processUmask();
  }

  /** Uploads open right now (one lock each). */
  get openUploads(): number {
    return this.#locks.size;
  }

  /** Prepares the backend (the local one: layout, stray temporary records) and indexes its partials. */
  async init(): Promise<void> {
    await this.#backend.init();
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
    const lock = await this.#locks.acquire(shownName, id, shownName);
    lock.onReleaseRequest = hooks.onTakeover;
    let partial: PartialUpload | undefined;
    let opened: OpenedHash | undefined;
    try {
      const existing = await this.#backend.prepareName(shownName);
      if (policy.appendOnly && existing !== null) {
        // A re-run of the same backup is not an error if the file is the same (§9.5).
        const check = await SameFileCheck.open(this.#backend, id, request, lock, this.#hasher, shownName);
        if (check === null) throw new UploadError('EXISTS', `"${shownName}" already exists`);
        return check;
      }
      await this.#dropOtherVersion(nameKey(principal, name), id);
      const recorded = await this.#backend.record(id);
      const previous = recorded !== undefined && sameIdentity(recorded, request) ? recorded : undefined;
      // Checked before creating anything, so a refused OPEN leaves no file behind.
      await this.#checkFreeSpace(size - (previous?.durable ?? 0));
      const limits = { budget: this.budget, maxQueuedBytes: this.#maxQueuedBytes, maxChunkBytes: this.#maxChunkBytes };
      const meta = { principal, name, size, mtime, mode };
      partial = await this.#backend.openPartial(id, meta, previous, limits);
      const durable = partial.durable;
      const onProgress = hooks.onProgress;
      opened = await this.#hasher.open(partial.prefix, durable, partial.shown, {
        key: id,
        onProgress: onProgress === undefined ? undefined : (done) => onProgress(done, durable),
        signal: hooks.signal,
      });
      // Records this OPEN (its mode, the time) with the durable offset it resumes from.
      await partial.checkpoint();
      const forget = (): void => this.#unindex(id);
      return new Upload({ id, meta, partial, hash: opened.hash, reread: opened.reread, lock, appendOnly: policy.appendOnly, umask: this.#umask, forget });
    } catch (err) {
      opened?.hash.close();
      await partial?.close().catch(() => undefined);
      lock.release();
      throw toStxError(err, 'opening', shownName);
    }
  }

  /** The published file at stored `components` (validated, §9.3) for reading, or null (downloads, §9.8). */
  openFile(components: readonly string[]): Promise<PublishedFile | null> {
    return this.#backend.openFile(components.join('/'));
  }

  /** The files and directories in stored directory `components` ([] is the top), or null (listings, §9.9). */
  readDirectory(components: readonly string[]): Promise<DirEntry[] | null> {
    return this.#backend.readDirectory(components);
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
    return this.#backend.sweep(ttlMs, now, (id) => {
      if (this.#locks.isIdLocked(id)) return false;
      this.#hasher.drop(id);
      this.#unindex(id);
      return true;
    });
  }

  /**
   * The partial of another version of this client's file (it was changed, e.g. touched, since
   * that upload began) can never be resumed: it goes now, not after the partial TTL. Then
   * `id` is the one partial kept for this client and name.
   */
  async #dropOtherVersion(key: string, id: string): Promise<void> {
    const other = this.#idByName.get(key);
    this.#index(key, id);
    if (other === undefined || other === id || this.#locks.isIdLocked(other)) return;
    this.#hasher.drop(other);
    await this.#backend.discard(other);
  }

  /** Builds #idByName from the records; of two versions of one client's file the older goes. */
  async #indexPartials(): Promise<void> {
    const newest = new Map<string, PartialRecord & { id: string }>();
    for (const { id, record } of await this.#backend.partials()) {
      // Only a record that is what its id says counts (ids could be planted).
      if (uploadId(record) !== id) continue;
      const key = nameKey(record.principal, record.name);
      const held = newest.get(key);
      const [keep, drop] = held === undefined || record.updated >= held.updated ? [{ ...record, id }, held] : [held, { ...record, id }];
      newest.set(key, keep);
      if (drop !== undefined) await this.#backend.discard(drop.id);
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

  async #checkFreeSpace(bytesToCome: number): Promise<void> {
    const free = await this.#backend.freeBytes();
    const need = BigInt(bytesToCome) + BigInt(this.#freeSpaceMarginBytes);
    if (free < need) {
      throw new UploadError('NO_SPACE', `not enough free space for ${bytesToCome} more bytes`);
    }
  }
}
