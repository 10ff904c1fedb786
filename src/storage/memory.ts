// A storage backend in memory (storage/backend.ts), for fast tests of the policy above it and as
// the second implementation the contract suite (test/storage-contract.ts) keeps the interface
// honest with. Writes go through the same write queue as the local backend, completing on a
// later turn of the event loop as a disk would, so backpressure behaves alike. Durable means
// checkpointed: crash() drops every byte past each partial's last checkpoint, as a power cut
// would drop what was never synced. Re-reads are hashed on the event loop (no file descriptor).

import { ResourceError, UploadError } from '../proto/errors.js';
import type {
  DirEntry,
  FileInfo,
  ListedPartial,
  PartialMeta,
  PartialRecord,
  PartialUpload,
  PositionalReader,
  PublishedFile,
  PublishOptions,
  StorageBackend,
  WriteLimits,
} from './backend.js';
import { isPartialId, RECORD_VERSION } from './backend.js';
import { QueuedPartial } from './queued-partial.js';
import { WriteQueue, type PositionalFile } from './write-queue.js';

interface StoredPartial {
  /** The partial's bytes are data[0, length). */
  data: Buffer;
  length: number;
  /** The last checkpoint's record; undefined before the first. */
  record: PartialRecord | undefined;
  /** When the partial was created: the sweep's age for a partial without a record. */
  readonly touched: number;
  /** Bumped by crash(): handles of an older generation are dead. */
  generation: number;
}

interface StoredFile {
  readonly data: Buffer;
  readonly mode: number;
  readonly mtime: number;
  /** Which publication this is: a new one for every publish (DirEntry.stamp). */
  readonly version: number;
  /** PublishOptions.sha256: kept with this publication, gone with it. */
  readonly sha256: Buffer | undefined;
}

export interface MemoryBackendOptions {
  /** What freeBytes() counts from: stored bytes (partials and files) are taken off it. */
  readonly capacityBytes?: number;
}

function badId(): ResourceError {
  return new ResourceError('INTERNAL', 'a partial id is 64 hex digits');
}

function crashed(): ResourceError {
  return new ResourceError('IO_ERROR', 'the storage crashed');
}

/** Bytes of `data[0, length)` from `position` into `buffer`. */
function readInto(data: Buffer, length: number, buffer: Buffer, position: number): number {
  if (position >= length) return 0;
  return data.copy(buffer, 0, position, Math.min(length, position + buffer.length));
}

export class MemoryBackend implements StorageBackend {
  readonly #partials = new Map<string, StoredPartial>();
  readonly #files = new Map<string, StoredFile>();
  #publications = 0;
  readonly #open = new Set<string>();
  readonly #capacity: number;

  constructor(options: MemoryBackendOptions = {}) {
    this.#capacity = options.capacityBytes ?? Number.MAX_SAFE_INTEGER;
  }

  /**
   * A crash: open partials are lost to their holders (their writes and checkpoints fail with
   * IO_ERROR) and every partial keeps only what its last checkpoint recorded.
   */
  crash(): void {
    this.#open.clear();
    for (const stored of this.#partials.values()) {
      stored.generation++;
      stored.length = Math.min(stored.length, stored.record?.durable ?? 0);
    }
  }

  init(): Promise<void> {
    return Promise.resolve();
  }

  partials(): Promise<ListedPartial[]> {
    const listed: ListedPartial[] = [];
    for (const [id, stored] of this.#partials) if (stored.record !== undefined) listed.push({ id, record: stored.record });
    return Promise.resolve(listed);
  }

  record(id: string): Promise<PartialRecord | undefined> {
    if (!isPartialId(id)) return Promise.reject(badId());
    return Promise.resolve(this.#partials.get(id)?.record);
  }

  openPartial(id: string, meta: PartialMeta, resume: PartialRecord | undefined, limits: WriteLimits): Promise<PartialUpload> {
    if (!isPartialId(id)) return Promise.reject(badId());
    if (this.#open.has(id)) return Promise.reject(new ResourceError('INTERNAL', `partial ${id} is open already`));
    const now = Date.now();
    let stored = this.#partials.get(id);
    if (stored === undefined) {
      stored = { data: Buffer.alloc(0), length: 0, record: undefined, touched: now, generation: 0 };
      this.#partials.set(id, stored);
    }
    const recorded = resume?.durable ?? 0;
    const durable = recorded <= stored.length ? recorded : 0;
    stored.length = durable;
    this.#open.add(id);
    const created = resume?.created ?? now;
    // An open is no progress: the partial keeps aging from its last durable byte (§9.2).
    const record: PartialRecord = { version: RECORD_VERSION, ...meta, durable, created, updated: resume?.updated ?? created };
    const partial = new MemoryPartial(id, stored, record, limits, {
      publish: (name, data, options) => this.#publish(id, name, data, options),
      remove: () => this.#partials.delete(id),
      closed: () => this.#open.delete(id),
    });
    return Promise.resolve(partial);
  }

  discard(id: string): Promise<void> {
    if (!isPartialId(id)) return Promise.reject(badId());
    if (this.#open.has(id)) return Promise.reject(new ResourceError('INTERNAL', `partial ${id} is open`));
    this.#partials.delete(id);
    return Promise.resolve();
  }

  sweep(ttlMs: number, now: number, claim: (id: string) => boolean): Promise<number> {
    let removed = 0;
    for (const [id, stored] of [...this.#partials]) {
      const updated = stored.record?.updated ?? stored.touched;
      if (this.#open.has(id) || now - updated <= ttlMs || !claim(id)) continue;
      this.#partials.delete(id);
      removed++;
    }
    return Promise.resolve(removed);
  }

  prepareName(name: string): Promise<FileInfo | null> {
    const refused = this.#refusal(name);
    if (refused !== undefined) return Promise.reject(refused);
    const file = this.#files.get(name);
    return Promise.resolve(file === undefined ? null : { name, size: file.data.length, mtime: file.mtime });
  }

  openFile(name: string): Promise<PublishedFile | null> {
    const file = this.#files.get(name);
    if (file === undefined) return Promise.resolve(null);
    // Like an open file descriptor: a later replace does not change what this reads.
    const { data } = file;
    let open = true;
    const stamp = String(file.version);
    return Promise.resolve({
      size: data.length,
      mtime: file.mtime,
      mode: file.mode,
      stamp,
      sha256: file.sha256,
      // A publish replaces the whole buffer; what this reads never changes.
      currentStamp: () => Promise.resolve(stamp),
      readAt: (buffer: Buffer, position: number) =>
        open ? Promise.resolve(readInto(data, data.length, buffer, position)) : Promise.reject(new ResourceError('IO_ERROR', `"${name}" is closed`)),
      close: () => {
        open = false;
        return Promise.resolve();
      },
    });
  }

  readDirectory(dir: readonly string[]): Promise<DirEntry[] | null> {
    const prefix = dir.length === 0 ? '' : `${dir.join('/')}/`;
    if (dir.length > 0 && this.#files.has(dir.join('/'))) return Promise.resolve(null);
    const entries = new Map<string, DirEntry>();
    for (const [name, file] of this.#files) {
      if (!name.startsWith(prefix)) continue;
      const [first, ...rest] = name.slice(prefix.length).split('/');
      if (first === undefined) continue;
      entries.set(
        first,
        rest.length > 0
          ? { name: first, kind: 'directory', size: 0, mtime: 0, mode: 0o755, stamp: '' }
          : { name: first, kind: 'file', size: file.data.length, mtime: file.mtime, mode: file.mode, stamp: String(file.version), sha256: file.sha256 },
      );
    }
    // A directory exists here only while a file is under it.
    return Promise.resolve(dir.length > 0 && entries.size === 0 ? null : [...entries.values()]);
  }

  list(): Promise<FileInfo[]> {
    return Promise.resolve([...this.#files].map(([name, file]) => ({ name, size: file.data.length, mtime: file.mtime })));
  }

  freeBytes(): Promise<bigint> {
    let used = 0;
    for (const stored of this.#partials.values()) used += stored.length;
    for (const file of this.#files.values()) used += file.data.length;
    return Promise.resolve(BigInt(Math.max(0, this.#capacity - used)));
  }

  #publish(id: string, name: string, data: Buffer, options: PublishOptions): void {
    const refused = this.#refusal(name);
    if (refused !== undefined) throw refused;
    if (options.how === 'no-clobber' && this.#files.has(name)) throw new UploadError('EXISTS', `"${name}" already exists`);
    const sha256 = options.sha256 === undefined ? undefined : Buffer.from(options.sha256);
    this.#files.set(name, { data, mode: options.mode & 0o777, mtime: options.mtime, version: ++this.#publications, sha256 });
    this.#partials.delete(id);
  }

  /** BAD_NAME where the local backend would find a file on the path or a directory at the name. */
  #refusal(name: string): UploadError | undefined {
    const components = name.split('/');
    for (let i = 1; i < components.length; i++) {
      const parent = components.slice(0, i).join('/');
      if (this.#files.has(parent)) return new UploadError('BAD_NAME', `"${parent}" exists and is not a directory`);
    }
    const below = `${name}/`;
    for (const other of this.#files.keys()) {
      if (other.startsWith(below)) return new UploadError('BAD_NAME', `"${name}" exists and is not a regular file`);
    }
    return undefined;
  }
}

/** The partial's bytes as the write queue's file: writes land on a later turn, as on a disk. */
class MemoryFile implements PositionalFile {
  constructor(
    private readonly stored: StoredPartial,
    private readonly generation: number,
  ) {}

  async writev(buffers: Buffer[], position: number): Promise<{ bytesWritten: number }> {
    await new Promise((resolve) => setImmediate(resolve));
    const stored = this.stored;
    if (stored.generation !== this.generation) throw crashed();
    let bytes = 0;
    for (const b of buffers) bytes += b.length;
    const end = position + bytes;
    if (end > stored.data.length) {
      const grown = Buffer.alloc(Math.max(end, Math.min(2 * stored.data.length, Number.MAX_SAFE_INTEGER)));
      stored.data.copy(grown, 0, 0, stored.length);
      stored.data = grown;
    }
    let at = position;
    for (const b of buffers) at += b.copy(stored.data, at);
    stored.length = Math.max(stored.length, end);
    return { bytesWritten: bytes };
  }

  datasync(): Promise<void> {
    return this.stored.generation === this.generation ? Promise.resolve() : Promise.reject(crashed());
  }
}

interface MemoryPartialHooks {
  /** Publishes `data` as `name` (throws EXISTS, BAD_NAME) and forgets the partial. */
  readonly publish: (name: string, data: Buffer, options: PublishOptions) => void;
  readonly remove: () => void;
  readonly closed: () => void;
}

class MemoryPartial extends QueuedPartial implements PartialUpload {
  readonly prefix: PositionalReader;
  readonly #stored: StoredPartial;
  readonly #generation: number;
  readonly #hooks: MemoryPartialHooks;
  #recorded = false;
  #closed = false;

  constructor(
    readonly id: string,
    stored: StoredPartial,
    record: PartialRecord,
    limits: WriteLimits,
    hooks: MemoryPartialHooks,
  ) {
    const file = new MemoryFile(stored, stored.generation);
    super(new WriteQueue(file, { maxQueuedBytes: limits.maxQueuedBytes, maxChunkBytes: limits.maxChunkBytes, startOffset: record.durable }, limits.budget), record);
    this.#stored = stored;
    this.#generation = stored.generation;
    this.#hooks = hooks;
    this.prefix = { readAt: (buffer, position) => Promise.resolve(readInto(stored.data, stored.length, buffer, position)) };
  }

  get shown(): string {
    return `memory:${this.id}`;
  }
  async checkpoint(): Promise<number> {
    const durable = await this.queue.sync();
    this.#assertAlive();
    if (durable !== this.record.durable || !this.#recorded) {
      const updated = durable !== this.record.durable ? Date.now() : this.record.updated;
      this.record = { ...this.record, durable, updated };
      this.#stored.record = this.record;
      this.#recorded = true;
    }
    return durable;
  }

  async endWrites(): Promise<void> {
    await this.queue.close();
  }

  async publish(name: string, options: PublishOptions): Promise<void> {
    try {
      await this.queue.close();
      this.#assertAlive();
      const stored = this.#stored;
      this.#hooks.publish(name, Buffer.from(stored.data.subarray(0, stored.length)), options);
    } finally {
      await this.close();
    }
  }

  async discard(): Promise<void> {
    await this.close();
    if (this.#stored.generation === this.#generation) this.#hooks.remove();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.queue.close();
    if (this.#stored.generation === this.#generation) this.#hooks.closed();
  }

  #assertAlive(): void {
    if (this.#stored.generation !== this.#generation) throw crashed();
  }
}
