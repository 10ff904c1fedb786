// The upload store (spec/PROTOCOL.md §9), the policy side: which names may be uploaded, size and
// space limits, one upload per name at a time (locks, takeover), append-only, one partial kept
// per client and name, and the SHA-256 that must match before anything is published. Where the
// bytes rest is a storage backend's (storage/backend.ts; local disk by default). No sockets
// here: the connection layer calls open / write / checkpoint / finish / release.

import { createHash, hash, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import { CommandError, ResourceError, UploadError, type StxError } from '../proto/errors.js';
import { MAX_DATA_CHUNK_BYTES, MAX_MODE, MAX_SAFE_UINT } from '../proto/limits.js';
import type { DirectoryRequest, DirEntry, PartialMeta, PartialRecord, PartialUpload, PublishedFile, PublishOptions, PutFileRequest, StorageBackend } from '../storage/backend.js';
import { LocalBackend } from '../storage/local/backend.js';
import { processUmask } from './process-limits.js';
import { ByteBudget } from '../transfer/budget.js';
import { BodyPool, type LeaseAccount } from '../transfer/body-pool.js';
import { Hasher, type OpenedHash } from '../transfer/hasher.js';
import { toStxError } from '../transfer/io-error.js';
import {
  DEFAULT_MAX_PARTIAL_FREE_FRACTION,
  FREE_SPACE_MARGIN_BYTES,
  LOCK_HANDOVER_TIMEOUT_MS,
  MAX_PUT_JOBS_RUNNING,
  MAX_QUEUED_BYTES_PER_CONNECTION,
  MAX_QUEUED_BYTES_TOTAL,
  MAX_READ_BACK_WAIT_MS,
  MAX_READ_BACKS_WAITING,
  MAX_STREAMS_PER_CLIENT,
  MIN_DEFAULT_MAX_PARTIAL_BYTES,
  READ_BACK_BURST_BYTES,
  READ_BACK_BYTES_PER_SECOND,
} from './config.js';
import { accountOf } from './store/account.js';
import { PartialQuota } from './store/partial-quota.js';
import { ReadBackGate, type ReadBackLimits } from './store/read-back.js';
import { validateName } from './names.js';
import { storedName, type Namespace } from './namespace.js';
import { validateLinkTarget } from './link-target.js';
import { UploadLocks, type UploadLock } from './store/locks.js';
import { SameFileCheck } from './store/same-file.js';
import { identicalFile } from './store/identical.js';
import { Upload, type FinishResult, type OpenUpload } from './store/upload.js';
import { Slots } from './store/slots.js';
import { uploadId } from './store/upload-id.js';
import { checkRangeBounds, RangedUpload, type RangeClaim } from './store/ranges.js';

export { Upload, type FinishResult, type OpenUpload } from './store/upload.js';

/** How long a free-space figure serves PUTs and OPENs before it is asked again (#checkFreeSpaceForPut, #checkFreeSpaceForOpen). */
const FREE_SPACE_CACHE_MS = 250;
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
  /**
   * Bytes one client's partial uploads may reserve (§9.5, --max-partial-bytes). Default: the
   * larger of MIN_DEFAULT_MAX_PARTIAL_BYTES and a quarter of the free space at init.
   */
  readonly maxPartialBytes?: number | undefined;
  /** What each client may have read back (§9.7); defaults: READ_BACK_* in config.ts. */
  readonly readBack?: Partial<ReadBackLimits>;
}

/** The OPEN frame's fields plus who sent it. */
export interface OpenRequest {
  /** "anonymous" or the client's key fingerprint. */
  readonly principal: string;
  /** The client's source address: what an anonymous client is charged as (store/account.ts). */
  readonly source?: string | undefined;
  readonly name: string;
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  readonly mode: number;
  /** OPEN's `stream` id: a stream of unknown length (§9.8); `size` is then meaningless. */
  readonly stream?: Buffer | undefined;
  /** OPEN's `sha256`: the client skips the upload if the server holds these bytes (§9.1). */
  readonly sha256?: Buffer | undefined;
}

/** One file of a pack for putMany (PUT_PACK, §9.11 step 8): its PUT's fields, bytes and END's SHA-256. */
export interface PutItem {
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly chunks: readonly Buffer[];
  readonly sha256: Buffer;
}

export interface OpenPolicy {
  /** Refuse names that already exist (EXISTS, §9.5). */
  readonly appendOnly: boolean;
  /** Largest `size` accepted (TOO_LARGE, §9.5). */
  readonly maxFileBytes?: number | undefined;
  /** The stored directory the client's names live under (namespace.ts, §7.4); default: the whole directory. */
  readonly namespace?: Namespace | undefined;
  /** False for a client that may not upload (its key's no-upload, §7.4); default true. */
  readonly upload?: boolean | undefined;
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
  /** The connection's memory account: charged with what the partial holds beyond its queue (WriteLimits.memory). */
  readonly memory?: LeaseAccount | undefined;
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
  readonly #maxPartialBytes: number | undefined;
  /** Disk reserved by partials, per client (§9.5); set up by init. */
  #quota = new PartialQuota(0);
  /** Read-backs charged to the client that asks (§9.7). */
  readonly #readBacks: ReadBackGate;
  /** The free space last asked for PUTs or OPENs, less what PUTs took since, and when. */
  #freeCache: { at: number; free: bigint } | null = null;
  /** The free-space question being asked now, if any. */
  #freeAsking: Promise<void> | null = null;
  /** PUT jobs running at once, daemon-wide (§9.11). */
  readonly #putSlots = new Slots(MAX_PUT_JOBS_RUNNING);
  #initialised = false;
  /** Ranged uploads with a claim open (§9.13), by upload id; the promise while one is being opened. */
  readonly #ranged = new Map<string, Promise<RangedUpload>>();
  /** Ranges being sent per client (its account), across uploads (§9.13). */
  readonly #streamsByAccount = new Map<string, number>();
  readonly #lockHandoverTimeoutMs: number;

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
    this.#lockHandoverTimeoutMs = options.lockHandoverTimeoutMs ?? LOCK_HANDOVER_TIMEOUT_MS;
    this.#maxQueuedBytes = options.maxQueuedBytesPerConnection ?? MAX_QUEUED_BYTES_PER_CONNECTION;
    this.#maxChunkBytes = options.maxChunkBytes ?? MAX_DATA_CHUNK_BYTES;
    this.#freeSpaceMarginBytes = options.freeSpaceMarginBytes ?? FREE_SPACE_MARGIN_BYTES;
    this.#umask = options.umask ?? processUmask();
    this.#maxPartialBytes = options.maxPartialBytes;
    this.#readBacks = new ReadBackGate({
      bytesPerSecond: options.readBack?.bytesPerSecond ?? READ_BACK_BYTES_PER_SECOND,
      burstBytes: options.readBack?.burstBytes ?? READ_BACK_BURST_BYTES,
      maxWaiting: options.readBack?.maxWaiting ?? MAX_READ_BACKS_WAITING,
      maxWaitMs: options.readBack?.maxWaitMs ?? MAX_READ_BACK_WAIT_MS,
    });
  }

  /** Bytes read back so far for `principal` connecting from `source` (§9.7). */
  readBackBytesCharged(principal: string, source?: string): number {
    return this.#readBacks.chargedTo(accountOf(principal, source));
  }

  /** The per-client limit on partials' reserved bytes in force (after init). */
  get maxPartialBytes(): number {
    return this.#quota.limit;
  }

  /** Bytes reserved by the partials of `principal` connecting from `source` (§9.5). */
  partialBytesHeld(principal: string, source?: string): number {
    return this.#quota.heldBy(accountOf(principal, source));
  }

  /** Uploads open right now (one lock each). */
  get openUploads(): number {
    return this.#locks.size;
  }

  /** Prepares the backend (the local one: layout, stray temporary records) and indexes its partials. */
  async init(): Promise<void> {
    await this.#backend.init();
    this.#quota = new PartialQuota(this.#maxPartialBytes ?? (await this.#defaultMaxPartialBytes()));
    await this.#indexPartials();
    await this.#hasher.prepare();
    this.#initialised = true;
  }

  /**
   * OPEN (§9.1 step 2): checks name and policy, locks the final name, and creates or resumes
   * the partial upload. `upload.offset` is the OPEN_OK offset. Throws UploadError BAD_NAME,
   * TOO_LARGE, BUSY, EXISTS, NO_SPACE, or ResourceError IO_ERROR.
   */
  async open(asked: OpenRequest, policy: OpenPolicy, hooks: OpenHooks = {}): Promise<OpenUpload> {
    if (!this.#initialised) throw new ResourceError('INTERNAL', 'Store.open before Store.init');
    // From here on the name is the stored one, in the client's namespace (§7.4): the upload
    // identity, its lock, its partial and where it is published.
    const components = storedName(policy.namespace ?? [], asked.name);
    // A stream's size is unknown (§9.8): its partial is kept as one of the largest size allowed,
    // so DATA is bounded by the quota and the record (durable ≤ size) stays valid.
    const stream = asked.stream;
    const inSpace = { ...asked, name: components.join('/') };
    const request = stream === undefined ? inSpace : { ...inSpace, size: policy.maxFileBytes ?? MAX_SAFE_UINT };
    const { size, mtime, mode, principal, name } = request;
    const account = accountOf(principal, request.source);
    // The frame decoder range-checks these (§2.1, §4); here is only a guard against our own bugs.
    const sizeOk = Number.isSafeInteger(size) && size >= 0;
    const modeOk = Number.isSafeInteger(mode) && mode >= 0 && mode <= MAX_MODE;
    if (!sizeOk || !modeOk || !Number.isSafeInteger(mtime)) {
      throw new ResourceError('INTERNAL', 'OPEN fields out of range');
    }
    if (policy.maxFileBytes !== undefined && size > policy.maxFileBytes) {
      throw new UploadError('TOO_LARGE', `size ${size} is above the limit of ${policy.maxFileBytes} bytes`);
    }
    const id = uploadId({ principal, name, size, mtime, stream });
    const shownName = components.join('/');
    const lock = await this.#locks.acquire(shownName, id, shownName);
    lock.onReleaseRequest = hooks.onTakeover;
    let partial: PartialUpload | undefined;
    let opened: OpenedHash | undefined;
    let unreserve: (() => void) | undefined;
    try {
      const existing = await this.#backend.prepareName(shownName);
      // The client holds what is stored already (§9.1 "Identical files"): DONE at once, nothing written.
      const sha256 = asked.sha256;
      if (existing !== null && stream === undefined && sha256 !== undefined) {
        const same = await identicalFile(this.#backend, shownName, { name, size, mtime, mode, sha256 }, this.#umask);
        if (same !== null) {
          lock.release();
          return same;
        }
      }
      if (policy.appendOnly && existing !== null && stream !== undefined) {
        throw new UploadError('EXISTS', `"${shownName}" already exists (a stream cannot be a re-send, §9.8)`);
      }
      if (policy.appendOnly && existing !== null) {
        // A re-run of the same backup is not an error if the file is the same (§9.5).
        const readBack = { gate: this.#readBacks, account };
        const check = await SameFileCheck.open(this.#backend, id, request, lock, this.#hasher, shownName, readBack);
        if (check === null) throw new UploadError('EXISTS', `"${shownName}" already exists`);
        return check;
      }
      await this.#dropOtherVersion(nameKey(principal, name), id);
      const recorded = await this.#backend.record(id);
      const previous = recorded !== undefined && sameIdentity(recorded, request) ? recorded : undefined;
      // Checked before creating anything, so a refused OPEN leaves no file behind.
      await this.#checkFreeSpaceForOpen(stream === undefined ? size - (previous?.durable ?? 0) : 0);
      // The partial reserves its whole size for this client until published, discarded or swept;
      // a stream's size is unknown (§9.8): it reserves what it holds when opened.
      unreserve = this.#quota.reserve(id, account, stream === undefined ? size : (previous?.durable ?? 0));
      // A resume without the parked hash reads its durable prefix back: in this client's turn (§9.7).
      // The OPEN that publishes a ranged upload reads back what its ranges sent (§9.13): that is the
      // upload's own hashing, done once, not a read-back charged to the client.
      const ranged = previous?.ranges !== undefined;
      const foreseen = previous === undefined || ranged ? 0 : Math.max(0, previous.durable - this.#hasher.parkedLength(id));
      const turn = foreseen > 0 ? await this.#readBacks.acquire(account, hooks.signal) : undefined;
      const limits = { budget: this.budget, maxQueuedBytes: this.#maxQueuedBytes, maxChunkBytes: this.#maxChunkBytes, memory: hooks.memory };
      const meta = { principal, name, size, mtime, mode, account };
      let done = 0;
      try {
        partial = await this.#backend.openPartial(id, meta, previous, limits);
        const durable = partial.durable;
        const onProgress = hooks.onProgress;
        opened = await this.#hasher.open(partial.prefix, durable, partial.shown, {
          key: id,
          onProgress: (bytes) => {
            done = bytes;
            onProgress?.(bytes, durable);
          },
          signal: hooks.signal,
          size: stream === undefined ? size : undefined,
        });
        if (turn !== undefined) turn.charge(opened.reread);
        else if (opened.reread > 0 && !ranged) this.#readBacks.chargeUnforeseen(account, opened.reread);
      } catch (err) {
        turn?.charge(done);
        throw err;
      } finally {
        turn?.release();
      }
      // Records this OPEN (its mode, the account, the time) with the durable offset it resumes
      // from. A new partial with no record on disk waits for its first checkpoint (issue 15):
      // until then it holds no durable byte, and a crash leaves a .part with no record, as a
      // crash between creating the .part and writing the record always could: resumed from 0,
      // else swept by its mtime (§9.2). That spares a small upload two fsyncs and seven calls.
      if (recorded !== undefined) await partial.checkpoint();
      const forget = (): void => {
        this.#unindex(id);
        this.#quota.release(id);
      };
      return new Upload({ id, meta, partial, hash: opened.hash, reread: opened.reread, lock, appendOnly: policy.appendOnly, umask: this.#umask, forget, stream: stream !== undefined });
    } catch (err) {
      opened?.hash.close();
      await partial?.close().catch(() => undefined);
      unreserve?.();
      lock.release();
      throw toStxError(err, 'opening', shownName);
    }
  }

  /**
   * RANGE (§9.13): claims bytes [start, end) of the ranged upload with OPEN's identity, opening it
   * (name, policy, space, lock, partial) if no other connection has it open. `claim.offset` is
   * RANGE_OK's. Throws BAD_NAME, TOO_LARGE, EXISTS, NO_SPACE, BUSY, BAD_RANGE, TOO_MANY_STREAMS,
   * NOT_ALLOWED (a backend without ranged partials), IO_ERROR.
   */
  async claimRange(asked: OpenRequest, start: number, end: number, policy: OpenPolicy, onTakeover: () => void): Promise<RangeClaim> {
    if (!this.#initialised) throw new ResourceError('INTERNAL', 'Store.claimRange before Store.init');
    const components = storedName(policy.namespace ?? [], asked.name);
    const name = components.join('/');
    const request = { ...asked, name, stream: undefined };
    const { size, mtime, principal } = request;
    if (policy.maxFileBytes !== undefined && size > policy.maxFileBytes) {
      throw new UploadError('TOO_LARGE', `size ${size} is above the limit of ${policy.maxFileBytes} bytes`);
    }
    checkRangeBounds(start, end, size);
    const account = accountOf(principal, request.source);
    const streams = this.#streamsByAccount.get(account) ?? 0;
    if (streams >= MAX_STREAMS_PER_CLIENT) {
      throw new ResourceError('TOO_MANY_STREAMS', `this client sends ${streams} ranges already (at most ${MAX_STREAMS_PER_CLIENT})`);
    }
    this.#streamsByAccount.set(account, streams + 1);
    try {
      const id = uploadId({ principal, name, size, mtime, stream: undefined });
      for (let attempt = 0; ; attempt++) {
        let opening = this.#ranged.get(id);
        if (opening === undefined) {
          opening = this.#openRanged(id, request, account, policy);
          this.#ranged.set(id, opening);
          opening.catch(() => {
            if (this.#ranged.get(id) === opening) this.#ranged.delete(id);
          });
        }
        const upload = await opening;
        // It closed (its last claim let go) between our lookup and now: open it again, once.
        if (upload.closed && attempt === 0) {
          await upload.idle;
          continue;
        }
        const claim = await upload.claim(start, end, onTakeover);
        void claim.released.then(() => this.#streamDone(account));
        return claim;
      }
    } catch (err) {
      this.#streamDone(account);
      throw toStxError(err, 'opening', name);
    }
  }

  #streamDone(account: string): void {
    const n = (this.#streamsByAccount.get(account) ?? 1) - 1;
    if (n > 0) this.#streamsByAccount.set(account, n);
    else this.#streamsByAccount.delete(account);
  }

  async #openRanged(id: string, request: OpenRequest, account: string, policy: OpenPolicy): Promise<RangedUpload> {
    const openRanged = this.#backend.openRanged?.bind(this.#backend);
    if (openRanged === undefined) throw new CommandError('NOT_ALLOWED', 'this server stores no ranged uploads (its storage writes in order only)');
    const { name, size, mtime, mode, principal } = request;
    const lock = await this.#locks.acquire(name, id, name);
    // Until the upload is set up, a same-identity OPEN waits for the lock instead of BUSY.
    lock.onReleaseRequest = () => undefined;
    let unreserve: (() => void) | undefined;
    try {
      const existing = await this.#backend.prepareName(name);
      if (policy.appendOnly && existing !== null) throw new UploadError('EXISTS', `"${name}" already exists (a ranged upload is no re-send, §9.13)`);
      await this.#dropOtherVersion(nameKey(principal, name), id);
      const recorded = await this.#backend.record(id);
      const previous = recorded !== undefined && sameIdentity(recorded, request) ? recorded : undefined;
      await this.#checkFreeSpace(size - (previous?.durable ?? 0));
      unreserve = this.#quota.reserve(id, account, size);
      const meta = { principal, name, size, mtime, mode, account };
      const file = await openRanged(id, meta, previous);
      const upload = new RangedUpload({
        id,
        meta,
        file,
        lock,
        budget: this.budget,
        handoverTimeoutMs: this.#lockHandoverTimeoutMs,
        hasher: this.#hasher,
        onIdle: () => this.#ranged.delete(id),
      });
      return upload;
    } catch (err) {
      unreserve?.();
      lock.release();
      throw err;
    }
  }

  /**
   * PUT (§9.11): the whole file `chunks` with END's `sha256`, checked and published durably under
   * its name in one go; nothing is kept for a resume. Many run at once (MAX_PUT_JOBS_RUNNING in
   * all). Throws what OPEN and END would: BAD_NAME, TOO_LARGE, BUSY, EXISTS, NO_SPACE,
   * INTEGRITY_FAILED, IO_ERROR.
   */
  async put(asked: OpenRequest, chunks: readonly Buffer[], sha256: Buffer, policy: OpenPolicy): Promise<FinishResult> {
    if (!this.#initialised) throw new ResourceError('INTERNAL', 'Store.put before Store.init');
    // The fast paths below (a free slot, a free name, no partial to drop, a fresh free-space
    // figure) take no turn of the microtask queue: a tree of small files asks for them per file.
    if (!this.#putSlots.tryAcquire()) await this.#putSlots.acquire();
    try {
      // The stored name, in the client's namespace (§7.4), as for an OPEN.
      if (policy.upload === false) throw new CommandError('NOT_ALLOWED', 'this client may not upload (its key says no-upload)');
      const { size, mtime, mode, principal } = asked;
      const { shownName, digest, id } = checkedPut(principal, asked.name, size, mtime, chunks, sha256, policy);
      const lock = this.#locks.tryAcquire(shownName, id) ?? (await this.#locks.acquire(shownName, id, shownName));
      // A PUT ends by itself within moments: a same-identity newcomer waits for it (§9.4).
      lock.onReleaseRequest = () => undefined;
      try {
        // The path is checked again when the file is published; only append-only needs it now.
        const existing = policy.appendOnly ? await this.#backend.prepareName(shownName) : null;
        if (existing !== null) {
          // A re-sent file is no error if it is the same (§9.5); nothing is written either way.
          if (existing.size !== size || !(await this.#sameContent(shownName, digest))) throw new UploadError('EXISTS', `"${shownName}" already exists`);
          return { name: shownName, size, sha256: digest, unchanged: true };
        }
        // A partial of this client's file left by an OPEN is superseded by the whole file.
        if (this.#idByName.size > 0) await this.#dropPartialOf(nameKey(principal, shownName));
        const asking = this.#checkFreeSpaceForPut(size);
        if (asking !== null) await asking;
        const options = { mode: mode & 0o777 & ~this.#umask, mtime, how: policy.appendOnly ? ('no-clobber' as const) : ('replace' as const), sha256: digest };
        if (this.#backend.putFile !== undefined) await this.#backend.putFile(id, shownName, chunks, options);
        else await this.#putThroughPartial(id, { principal, name: shownName, size, mtime, mode, account: accountOf(principal, asked.source) }, chunks, options);
        return { name: shownName, size, sha256: digest, unchanged: false };
      } finally {
        lock.release();
      }
    } catch (err) {
      throw toStxError(err, 'storing', asked.name);
    } finally {
      this.#putSlots.release();
    }
  }

  /**
   * PUT_PACK (§9.11 step 8): the files of a pack, each as put() would store it, with its own
   * outcome (a FinishResult, or its typed error: the file alone failed); never rejects. Where a
   * file takes put()'s fast path (a free slot and name, nothing to drop, a fresh free-space
   * figure, a backend with putFiles) its checks run here at once and every such file goes to the
   * backend in one call; the rest go through put() one by one.
   */
  async putMany(principal: string, source: string | undefined, files: readonly PutItem[], policy: OpenPolicy): Promise<(FinishResult | StxError)[]> {
    if (!this.#initialised) throw new ResourceError('INTERNAL', 'Store.putMany before Store.init');
    const outcomes: (FinishResult | StxError)[] = new Array<FinishResult | StxError>(files.length);
    const slow: Promise<void>[] = [];
    const alone = (i: number, file: PutItem): void => {
      const asked = { principal, source, name: file.name, size: file.size, mtime: file.mtime, mode: file.mode };
      slow.push(
        this.put(asked, file.chunks, file.sha256, policy).then(
          (result) => void (outcomes[i] = result),
          (err: unknown) => void (outcomes[i] = toStxError(err, 'storing', file.name)),
        ),
      );
    };
    const putFiles = this.#backend.putFiles?.bind(this.#backend);
    if (putFiles === undefined || policy.upload === false || policy.appendOnly) {
      for (let i = 0; i < files.length; i++) {
        const file = files[i];
        if (file !== undefined) alone(i, file);
      }
      await Promise.all(slow);
      return outcomes;
    }
    // One free-space question for the pack when the figure is stale, not one per file.
    if (this.#freeCache === null || Date.now() - this.#freeCache.at > FREE_SPACE_CACHE_MS) await this.#askFreeSpaceForPut(0).catch(() => undefined);
    const requests: PutFileRequest[] = [];
    const held: { readonly i: number; readonly lock: UploadLock; readonly name: string; readonly size: number; readonly digest: Buffer }[] = [];
    const umask = this.#umask;
    for (let i = 0; i < files.length; i++) {
      const file = files[i];
      if (file === undefined) continue;
      const cache = this.#freeCache;
      if (this.#idByName.size > 0 || cache === null || Date.now() - cache.at > FREE_SPACE_CACHE_MS || !this.#putSlots.tryAcquire()) {
        alone(i, file);
        continue;
      }
      let lock: UploadLock | null = null;
      try {
        const { size, mtime, mode } = file;
        const { shownName, digest, id } = checkedPut(principal, file.name, size, mtime, file.chunks, file.sha256, policy);
        lock = this.#locks.tryAcquire(shownName, id);
        if (lock === null) {
          // Held: put() waits for a same-identity holder or refuses (BUSY).
          this.#putSlots.release();
          alone(i, file);
          continue;
        }
        lock.onReleaseRequest = () => undefined;
        this.#takeFreeSpace(cache, size);
        held.push({ i, lock, name: shownName, size, digest });
        requests.push({ id, name: shownName, chunks: file.chunks, options: { mode: mode & 0o777 & ~umask, mtime, how: 'replace', sha256: digest } });
      } catch (err) {
        lock?.release();
        this.#putSlots.release();
        outcomes[i] = toStxError(err, 'storing', file.name);
      }
    }
    if (requests.length > 0) {
      const failures = await putFiles(requests).catch((err: unknown) => requests.map(() => toStxError(err, 'storing', 'a pack')));
      for (let k = 0; k < held.length; k++) {
        const h = held[k];
        if (h === undefined) continue;
        h.lock.release();
        this.#putSlots.release();
        const failure = failures[k];
        outcomes[h.i] = failure === null || failure === undefined ? { name: h.name, size: h.size, sha256: h.digest, unchanged: false } : toStxError(failure, 'storing', h.name);
      }
    }
    await Promise.all(slow);
    return outcomes;
  }

  /** Whether the published file `name` has SHA-256 `digest` (an append-only re-send, §9.5). */
  async #sameContent(name: string, digest: Buffer): Promise<boolean> {
    const file = await this.#backend.openFile(name);
    if (file === null) return false;
    try {
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(Math.min(file.size, MAX_DATA_CHUNK_BYTES));
      for (let at = 0; at < file.size; ) {
        const n = await file.readAt(buffer.subarray(0, Math.min(file.size - at, buffer.length)), at);
        if (n === 0) return false;
        hash.update(buffer.subarray(0, n));
        at += n;
      }
      return timingSafeEqual(hash.digest(), digest);
    } finally {
      await file.close();
    }
  }

  /** PUT on a backend without putFile: a partial written whole, then published. */
  async #putThroughPartial(id: string, meta: PartialMeta, chunks: readonly Buffer[], options: PublishOptions): Promise<void> {
    const limits = { budget: this.budget, maxQueuedBytes: this.#maxQueuedBytes, maxChunkBytes: this.#maxChunkBytes };
    const partial = await this.#backend.openPartial(id, meta, undefined, limits);
    try {
      let at = 0;
      for (const chunk of chunks) {
        partial.write(at, chunk);
        at += chunk.length;
        await partial.drained();
      }
      await partial.endWrites();
      if (partial.failure !== undefined) throw partial.failure;
      await partial.publish(meta.name, options);
    } catch (err) {
      await partial.discard().catch(() => undefined);
      throw err;
    }
  }

  /** Drops the partial this client holds for a name, unless an upload has it open. */
  async #dropPartialOf(key: string): Promise<void> {
    const other = this.#idByName.get(key);
    if (other === undefined || this.#locks.isIdLocked(other)) return;
    this.#hasher.drop(other);
    this.#quota.release(other);
    this.#unindex(other);
    await this.#backend.discard(other);
  }

  /**
   * MKDIRs (§9.8), a run of them (revision 1.14): each name checked (§9.3), the directory and
   * its parents created, given `mode` (less the umask, no setuid/setgid/sticky) and `mtime`; on
   * an append-only server an existing directory stays as it is. Carried out in order up to the
   * first refused, the run's directory syncs shared. `made` holds the stored names of those done
   * (durable), `failure` the next one's error (BAD_NAME, EXISTS, IO_ERROR), null if none was refused.
   */
  async makeDirectories(
    entries: readonly { readonly name: string; readonly mode: number; readonly mtime: number }[],
    policy: OpenPolicy,
  ): Promise<{ readonly made: readonly string[]; readonly failure: StxError | null }> {
    // The names up to the first refused one (BAD_NAME): those are carried out.
    const run: DirectoryRequest[] = [];
    let refused: StxError | null = null;
    for (const e of entries) {
      try {
        run.push({ name: storedName(policy.namespace ?? [], e.name).join('/'), options: { mode: e.mode & 0o777 & ~this.#umask, mtime: e.mtime, keepExisting: policy.appendOnly } });
      } catch (err) {
        refused = toStxError(err, 'creating directory', e.name);
        break;
      }
    }
    if (run.length === 0) return { made: [], failure: refused };
    const names = run.map((r) => r.name);
    const make = this.#backend.makeDirectories?.bind(this.#backend);
    if (make === undefined) return { made: [], failure: new ResourceError('IO_ERROR', 'this storage has no directories') };
    const outcome = await make(run).catch((failure: unknown) => ({ made: 0, failure }));
    const failure = outcome.failure === null ? refused : toStxError(outcome.failure, 'creating directory', names[outcome.made] ?? '');
    return { made: names.slice(0, outcome.made), failure };
  }

  /** SYMLINK (§9.8): checks the name and the target, then creates the link. Throws BAD_NAME, EXISTS, IO_ERROR. */
  async makeLink(name: string, target: string, mtime: number, policy: OpenPolicy): Promise<string> {
    // The target may climb only within the client's namespace: it is checked against the client's name (§7.4).
    validateLinkTarget(validateName(name), target);
    const shown = storedName(policy.namespace ?? [], name).join('/');
    const make = this.#backend.makeLink?.bind(this.#backend);
    if (make === undefined) throw new ResourceError('IO_ERROR', 'this storage has no links');
    await make(shown, target, { mtime, noClobber: policy.appendOnly }).catch((err: unknown) => {
      throw toStxError(err, 'creating link', shown);
    });
    return shown;
  }

  /** The published file at stored `components` (validated, §9.3) for reading, or null (downloads, §9.9). */
  openFile(components: readonly string[]): Promise<PublishedFile | null> {
    return this.#backend.openFile(components.join('/'));
  }

  /** The files and directories in stored directory `components` ([] is the top), or null (listings, §9.10). */
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
      this.#quota.release(id);
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
    this.#quota.release(other);
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
    for (const [key, record] of newest) {
      this.#index(key, record.id);
      // What the daemon had reserved before it stopped, whatever the limit is now (§9.5).
      this.#quota.restore(record.id, record.account ?? record.principal, record.size);
    }
  }

  /** The larger of MIN_DEFAULT_MAX_PARTIAL_BYTES and a quarter of the space free now (§9.5). */
  async #defaultMaxPartialBytes(): Promise<number> {
    const free = Number(await this.#backend.freeBytes());
    return Math.max(MIN_DEFAULT_MAX_PARTIAL_BYTES, Math.floor(Math.min(free, Number.MAX_SAFE_INTEGER) * DEFAULT_MAX_PARTIAL_FREE_FRACTION));
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

  /**
   * #checkFreeSpace for a PUT: the free space is asked at most every FREE_SPACE_CACHE_MS, less
   * what the PUTs since then took (a statfs per small file cost more than writing it).
   */
  /**
   * NO_SPACE unless `bytesToCome` fit in the free space last asked (at most FREE_SPACE_CACHE_MS
   * ago); null when that is known at once, else a promise (the figure is asked for first).
   */
  #checkFreeSpaceForPut(bytesToCome: number): Promise<void> | null {
    if (this.#freeCache === null || Date.now() - this.#freeCache.at > FREE_SPACE_CACHE_MS) return this.#askFreeSpaceForPut(bytesToCome);
    this.#takeFreeSpace(this.#freeCache, bytesToCome);
    return null;
  }

  /**
   * #checkFreeSpace for an OPEN: the free space PUTs keep (at most FREE_SPACE_CACHE_MS old) when it
   * shows room enough, else asked again: an OPEN is refused only on a figure asked for it, and
   * takes nothing from the figure, as it took nothing from statfs's. A thousand clients' OPENs at
   * once made a statfs each (issue 15).
   */
  async #checkFreeSpaceForOpen(bytesToCome: number): Promise<void> {
    const cache = this.#freeCache;
    if (cache !== null && Date.now() - cache.at <= FREE_SPACE_CACHE_MS && cache.free >= this.#freeSpaceNeeded(bytesToCome)) return;
    await this.#checkFreeSpace(bytesToCome);
  }

  async #askFreeSpaceForPut(bytesToCome: number): Promise<void> {
    const now = Date.now();
    // One question at a time: the PUTs that come meanwhile wait for its answer (they each
    // asked again, ~1 statfs per 2.6 files of 2,000).
    this.#freeAsking ??= this.#backend
      .freeBytes()
      .then((free) => {
        this.#freeCache = { at: now, free };
      })
      .finally(() => (this.#freeAsking = null));
    await this.#freeAsking;
    // Dropped meanwhile (another PUT found too little): ask for this one alone.
    if (this.#freeCache === null) return this.#checkFreeSpace(bytesToCome);
    this.#takeFreeSpace(this.#freeCache, bytesToCome);
  }

  #takeFreeSpace(cache: { free: bigint }, bytesToCome: number): void {
    if (cache.free < this.#freeSpaceNeeded(bytesToCome)) {
      this.#freeCache = null;
      throw new UploadError('NO_SPACE', `not enough free space for ${bytesToCome} more bytes`);
    }
    cache.free -= BigInt(bytesToCome);
  }

  /** Asks the free space, keeps the figure for PUTs and OPENs (the newest one), and refuses NO_SPACE if it is short. */
  async #checkFreeSpace(bytesToCome: number): Promise<void> {
    const at = Date.now();
    const free = await this.#backend.freeBytes();
    if (this.#freeCache === null || this.#freeCache.at <= at) this.#freeCache = { at, free };
    if (free < this.#freeSpaceNeeded(bytesToCome)) {
      throw new UploadError('NO_SPACE', `not enough free space for ${bytesToCome} more bytes`);
    }
  }

  #freeSpaceNeeded(bytesToCome: number): bigint {
    return BigInt(bytesToCome) + BigInt(this.#freeSpaceMarginBytes);
  }
}

/** SHA-256 of the concatenation of `chunks`: one call for a single chunk (a PUT_INLINE's file). */
function sha256Of(chunks: readonly Buffer[]): Buffer {
  const [only] = chunks;
  if (chunks.length === 1 && only !== undefined) return hash('sha256', only, 'buffer');
  const h = createHash('sha256');
  for (const chunk of chunks) h.update(chunk);
  return h.digest();
}

/**
 * A PUT's checks before anything is stored (§9.11): its name in the client's namespace (§7.4),
 * --max-file-size, and its bytes against END's SHA-256; the stored name, the digest and the
 * upload's id. Without a namespace the stored name is the name itself, once valid.
 */
function checkedPut(principal: string, name: string, size: number, mtime: number, chunks: readonly Buffer[], sha256: Buffer, policy: OpenPolicy): { shownName: string; digest: Buffer; id: string } {
  const space = policy.namespace ?? [];
  let shownName = name;
  if (space.length === 0) validateName(name);
  else shownName = storedName(space, name).join('/');
  if (policy.maxFileBytes !== undefined && size > policy.maxFileBytes) {
    throw new UploadError('TOO_LARGE', `size ${size} is above the limit of ${policy.maxFileBytes} bytes`);
  }
  const digest = sha256Of(chunks);
  if (sha256.length !== digest.length || !timingSafeEqual(digest, sha256)) {
    throw new UploadError('INTEGRITY_FAILED', `SHA-256 of "${shownName}" differs from END's`);
  }
  return { shownName, digest, id: uploadId({ principal, name: shownName, size, mtime, stream: undefined }) };
}
