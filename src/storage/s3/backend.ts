// The storage backend on S3 (storage/backend.ts; issue 16), tested against Ceph's RADOS Gateway.
// Layout under the store's prefix:
//   NAME                          a published file; mode, mtime and SHA-256 in its metadata (stx-mode, stx-mtime, stx-sha256)
//   DIR/                          an empty object marking a directory made by MKDIR (mode, mtime)
//   .stx/partials/ID/record       a partial's record and lease (record.ts)
//   .stx/partials/ID/TOKEN-NNNNN-N  the pieces of its segment being filled (segments.ts)
//   .stx/partials/ID/TOKEN-data   the multipart upload its full segments are parts of (one per open)
//   .stx/claims/SHA256(NAME)      held while a publish copies into NAME
// Directories are otherwise implicit: a directory exists while something is below it.
//
// Several daemons may share one store: the partial's state is all in the store, a partial is
// held by one daemon at a time (the lease in its record), and publishing a name takes a claim
// object created with If-None-Match: *, because RGW overwrites on CompleteMultipartUpload
// whatever If-None-Match says: so `no-clobber` holds between daemons too.

import { createHash, randomBytes } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import { ResourceError, UploadError } from '../../proto/errors.js';
import { toStxError } from '../../transfer/io-error.js';
import type {
  DirectoriesMade,
  DirectoryOptions,
  DirectoryRequest,
  DirEntry,
  FileInfo,
  ListedPartial,
  PartialMeta,
  PartialRecord,
  PartialUpload,
  PublishedFile,
  PublishOptions,
  StorageBackend,
  WriteLimits,
} from '../backend.js';
import { isPartialId, RECORD_VERSION, RESERVED_NAME_PREFIX } from '../backend.js';
import { setTimeout as delay } from 'node:timers/promises';
import { COPY_CONCURRENCY, MAX_COPY_OBJECT_BYTES, READ_AHEAD_BYTES, DEFAULT_LEASE_MS, LIST_CONCURRENCY, S3_FREE_BYTES, segmentBytes } from './config.js';
import { mapLimited, Objects, PreconditionFailed, type ObjectInfo } from './objects.js';
import { S3Partial } from './partial.js';
import { parseRecord, partialRecordOf, type S3Record, type Segment, type Upload } from './record.js';
import { SegmentFile } from './segments.js';

export interface S3BackendOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** '' or a key prefix ending in '/'. */
  readonly prefix?: string;
  /** How long a daemon's hold on a partial lasts unless renewed (DEFAULT_LEASE_MS). */
  readonly leaseMs?: number;
  /** Largest published file made by CopyObject (MAX_COPY_OBJECT_BYTES; tests lower it). */
  readonly maxCopyBytes?: number;
}

const STATE = `${RESERVED_NAME_PREFIX}/`;
/** How old a record() read may be for the openPartial after it to use it. */
const REUSE_READ_MS = 2_000;
const PARTIALS = `${STATE}partials/`;
const CLAIMS = `${STATE}claims/`;
const META_MODE = 'stx-mode';
const META_MTIME = 'stx-mtime';
/** The SHA-256 verified at publish (PublishOptions.sha256); an object written again without it has none. */
const META_SHA256 = 'stx-sha256';

function badId(): ResourceError {
  return new ResourceError('INTERNAL', 'a partial id is 64 hex digits');
}

function modeOf(info: ObjectInfo, fallback: number): number {
  const mode = Number(info.metadata[META_MODE]);
  return Number.isSafeInteger(mode) && mode >= 0 && mode <= 0o7777 ? mode : fallback;
}

function sha256Of(info: ObjectInfo): Buffer | undefined {
  const hex = info.metadata[META_SHA256];
  return hex !== undefined && /^[0-9a-f]{64}$/.test(hex) ? Buffer.from(hex, 'hex') : undefined;
}

function mtimeOf(info: ObjectInfo): number {
  const mtime = Number(info.metadata[META_MTIME]);
  return Number.isSafeInteger(mtime) ? mtime : info.lastModified;
}

function stampOf(info: ObjectInfo): string {
  return `${info.etag}:${info.lastModified}:${info.size}`;
}

/** The directories above `name` ('a/b/c' → 'a', 'a/b'). */
function parentsOf(name: string): string[] {
  const parts = name.split('/');
  return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('/'));
}

export class S3Backend implements StorageBackend {
  readonly objects: Objects;
  readonly #leaseMs: number;
  readonly #maxCopyBytes: number;
  readonly #open = new Set<string>();
  /** The last record() read per id, for the openPartial that follows it; oldest first (bounded: see record()). */
  readonly #lastRead = new Map<string, { got: { record: S3Record; etag: string } | undefined; at: number }>();

  constructor(options: S3BackendOptions) {
    this.objects = new Objects(options.client, options.bucket, options.prefix ?? '');
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.#maxCopyBytes = options.maxCopyBytes ?? MAX_COPY_OBJECT_BYTES;
  }

  async init(): Promise<void> {
    await this.objects.checkBucket();
  }

  async partials(): Promise<ListedPartial[]> {
    const { folders } = await this.objects.list(PARTIALS, '/');
    const ids = folders.map((f) => f.slice(PARTIALS.length, -1)).filter(isPartialId);
    const records = await mapLimited(ids, LIST_CONCURRENCY, (id) => this.#readRecord(id));
    const listed: ListedPartial[] = [];
    for (const [i, got] of records.entries()) if (got !== undefined) listed.push({ id: ids[i] ?? '', record: partialRecordOf(got.record) });
    return listed;
  }

  async record(id: string): Promise<PartialRecord | undefined> {
    if (!isPartialId(id)) throw badId();
    const got = await this.#readRecord(id);
    // An OPEN asks for the record, then opens the partial: the open uses this read. Reads older
    // than REUSE_READ_MS are dropped here (an OPEN refused after record() opens nothing).
    const now = Date.now();
    for (const [key, read] of this.#lastRead) {
      if (now - read.at < REUSE_READ_MS) break;
      this.#lastRead.delete(key);
    }
    this.#lastRead.delete(id);
    this.#lastRead.set(id, { got, at: now });
    return got === undefined ? undefined : partialRecordOf(got.record);
  }

  async openPartial(id: string, meta: PartialMeta, resume: PartialRecord | undefined, limits: WriteLimits): Promise<PartialUpload> {
    if (!isPartialId(id)) throw badId();
    if (this.#open.has(id)) throw new ResourceError('INTERNAL', `partial ${id} is open already`);
    this.#open.add(id);
    try {
      const folder = `${PARTIALS}${id}/`;
      const recordKey = `${folder}record`;
      const token = randomBytes(6).toString('hex');
      // The record() read just before, if any (a stale one only fails the conditional write below).
      const recent = this.#lastRead.get(id);
      this.#lastRead.delete(id);
      let stored = recent !== undefined && Date.now() - recent.at < REUSE_READ_MS ? recent.got : await this.#readRecord(id);
      const fresh = stored === undefined;
      const now = Date.now();
      if (stored !== undefined) {
        if (stored.record.holder !== '' && stored.record.leaseUntil > now) throw heldElsewhere(meta.name);
        // Take the hold: one write, conditional on the version just read (two daemons racing
        // for it: one write succeeds).
        const held: S3Record = { ...stored.record, holder: token, leaseUntil: now + this.#leaseMs };
        try {
          const etag = await this.objects.put(recordKey, Buffer.from(JSON.stringify(held)), { ifMatch: stored.etag });
          stored = { record: held, etag };
        } catch (err) {
          if (err instanceof PreconditionFailed) throw heldElsewhere(meta.name);
          throw err;
        }
      }
      // What is kept: the resumed offset if the store holds that much (else nothing), as full
      // segments plus a tail read back into memory.
      let keep = resume !== undefined && stored !== undefined && resume.durable <= stored.record.durable ? resume.durable : 0;
      const size = keep > 0 && stored !== undefined ? stored.record.segmentBytes : segmentBytes(meta.size);
      const full: Segment[] = [];
      let tail: { bytes: Buffer; pieces: Segment[] } | undefined;
      let sealed = false;
      if (keep > 0 && stored !== undefined) {
        let needed: Segment[] = [];
        for (let at = 0, i = 0; at < keep && i < stored.record.segments.length; i++) {
          const s = stored.record.segments[i] as Segment;
          needed.push(s);
          at += s.length;
        }
        // Parts of the earlier open's upload cannot be read back: it is completed, so that they
        // are stretches of one object (this open starts an upload of its own).
        if (needed.some((s) => s.part !== undefined)) {
          const readable = await this.#seal(folder, stored.record.upload, needed);
          sealed = readable.length === needed.length;
          needed = readable;
          let held = 0;
          for (const s of needed) held += s.length;
          keep = Math.min(keep, held);
        }
        let at = 0;
        for (const s of needed) {
          if (at + size > keep || s.length !== size) break;
          full.push(s);
          at += size;
        }
        // The segment being filled: its kept bytes back into memory, from its pieces (or from a
        // full segment the kept offset cuts).
        const pieces: Segment[] = [];
        const parts: Buffer[] = [];
        for (const s of needed.slice(full.length)) {
          if (at >= keep) break;
          const take = Math.min(s.length, keep - at);
          const from = s.from ?? 0;
          parts.push(await this.objects.getRange(folder + s.key, from, from + take));
          pieces.push(from === 0 ? { key: s.key, length: take } : { key: s.key, length: take, from });
          at += take;
        }
        if (at > full.length * size) tail = { bytes: Buffer.concat(parts), pieces };
      }
      // An earlier open's upload kept nothing of: dropped (best effort; else the sweep drops it).
      const earlier = stored?.record.upload;
      if (earlier !== undefined && !sealed) await this.objects.abortUpload(folder + earlier.key, earlier.id).catch(() => undefined);
      const file = new SegmentFile(this.objects, folder, token, size, meta.size, full, tail, limits.memory);
      const created = resume?.created ?? now;
      const record: PartialRecord = { version: RECORD_VERSION, ...meta, durable: keep, created, updated: resume?.updated ?? created };
      return new S3Partial({
        id,
        objects: this.objects,
        recordKey,
        token,
        leaseMs: this.#leaseMs,
        file,
        segmentBytes: size,
        record,
        stored,
        limits,
        hooks: {
          publish: (contents, name, options) => this.#publish(folder, contents, name, options),
          // A partial this open created holds only what it wrote: no listing needed to delete it.
          remove: (published) => (published && fresh ? this.#removeKnown(id, file.written()) : this.#remove(id, !published)),
          closed: () => this.#open.delete(id),
        },
      });
    } catch (err) {
      this.#open.delete(id);
      throw err;
    }
  }

  async discard(id: string): Promise<void> {
    if (!isPartialId(id)) throw badId();
    if (this.#open.has(id)) throw new ResourceError('INTERNAL', `partial ${id} is open`);
    await this.#remove(id);
  }

  async sweep(ttlMs: number, now: number, claim: (id: string) => boolean): Promise<number> {
    const { keys } = await this.objects.list(PARTIALS);
    const newest = new Map<string, number>();
    // Unfinished multipart uploads too: a partial whose daemon died before its record named one.
    const uploads = await this.objects.listUploads(PARTIALS);
    for (const k of [...keys.map((k) => ({ key: k.key, at: k.lastModified })), ...uploads.map((u) => ({ key: u.key, at: u.initiated }))]) {
      const id = k.key.slice(PARTIALS.length, PARTIALS.length + 64);
      if (isPartialId(id)) newest.set(id, Math.max(newest.get(id) ?? 0, k.at));
    }
    let removed = 0;
    for (const [id, touched] of newest) {
      if (this.#open.has(id)) continue;
      const got = await this.#readRecord(id);
      if (got !== undefined && got.record.holder !== '' && got.record.leaseUntil > Date.now()) continue;
      const updated = got?.record.updated ?? touched;
      if (now - updated <= ttlMs || !claim(id)) continue;
      await this.#remove(id);
      removed++;
    }
    return removed;
  }

  async prepareName(name: string): Promise<FileInfo | null> {
    await this.#checkPath(name);
    const info = await this.objects.head(name);
    return info === null ? null : { name, size: info.size, mtime: mtimeOf(info) };
  }

  async openFile(name: string): Promise<PublishedFile | null> {
    const info = await this.objects.head(name);
    if (info === null) return null;
    const objects = this.objects;
    const stamp = stampOf(info);
    let open = true;
    // Reads are sequential (a download, a re-hash): one GET fetches READ_AHEAD_BYTES for the next ones.
    let ahead: { from: number; bytes: Buffer } = { from: 0, bytes: Buffer.alloc(0) };
    return {
      size: info.size,
      mtime: mtimeOf(info),
      mode: modeOf(info, 0o644),
      stamp,
      sha256: sha256Of(info),
      currentStamp: async () => {
        const now = await objects.head(name);
        return now === null ? '' : stampOf(now);
      },
      // Ranged reads of the version opened: a replaced object fails them rather than mixing versions.
      readAt: async (buffer: Buffer, position: number) => {
        if (!open) throw new ResourceError('IO_ERROR', `"${name}" is closed`);
        const end = Math.min(info.size, position + buffer.length);
        if (position >= end) return 0;
        try {
          if (position < ahead.from || end > ahead.from + ahead.bytes.length) {
            ahead = { from: position, bytes: await objects.getRange(name, position, Math.min(info.size, position + Math.max(READ_AHEAD_BYTES, end - position)), info.etag) };
          }
          return ahead.bytes.copy(buffer, 0, position - ahead.from, end - ahead.from);
        } catch (err) {
          if (err instanceof PreconditionFailed) throw new ResourceError('IO_ERROR', `"${name}" was replaced while being read`);
          throw err;
        }
      },
      close: () => {
        open = false;
        ahead = { from: 0, bytes: Buffer.alloc(0) };
        return Promise.resolve();
      },
    };
  }

  async readDirectory(dir: readonly string[]): Promise<DirEntry[] | null> {
    const under = dir.length === 0 ? '' : `${dir.join('/')}/`;
    if (dir.length > 0 && (await this.objects.head(dir.join('/'))) !== null) return null;
    const { keys, folders } = await this.objects.list(under, '/');
    if (dir.length > 0 && keys.length === 0 && folders.length === 0) return null;
    const files = keys.filter((k) => k.key !== under && !k.key.endsWith('/'));
    const dirs = folders.filter((f) => f !== STATE);
    const fileEntries = await mapLimited(files, LIST_CONCURRENCY, async (k): Promise<DirEntry | undefined> => {
      const info = await this.objects.head(k.key);
      if (info === null) return undefined;
      return { name: k.key.slice(under.length), kind: 'file', size: info.size, mtime: mtimeOf(info), mode: modeOf(info, 0o644), stamp: stampOf(info), sha256: sha256Of(info) };
    });
    const dirEntries = await mapLimited(dirs, LIST_CONCURRENCY, async (f): Promise<DirEntry> => {
      const marker = await this.objects.head(f);
      return { name: f.slice(under.length, -1), kind: 'directory', size: 0, mtime: marker === null ? 0 : mtimeOf(marker), mode: marker === null ? 0o755 : modeOf(marker, 0o755), stamp: '' };
    });
    return [...fileEntries.filter((e): e is DirEntry => e !== undefined), ...dirEntries];
  }

  async list(): Promise<FileInfo[]> {
    const { keys } = await this.objects.list('');
    const files = keys.filter((k) => !k.key.startsWith(STATE) && !k.key.endsWith('/'));
    const infos = await mapLimited(files, LIST_CONCURRENCY, async (k) => {
      const info = await this.objects.head(k.key);
      return info === null ? undefined : { name: k.key, size: info.size, mtime: mtimeOf(info) };
    });
    return infos.filter((i): i is FileInfo => i !== undefined);
  }

  freeBytes(): Promise<bigint> {
    return Promise.resolve(S3_FREE_BYTES);
  }

  /** MKDIRs one at a time, up to the first refused (objects have no directory to sync). */
  async makeDirectories(entries: readonly DirectoryRequest[]): Promise<DirectoriesMade> {
    for (const [i, { name, options }] of entries.entries()) {
      try {
        await this.#makeDirectory(name, options);
      } catch (err) {
        return { made: i, failure: toStxError(err, 'creating directory', name) };
      }
    }
    return { made: entries.length, failure: null };
  }

  async #makeDirectory(name: string, options: DirectoryOptions): Promise<void> {
    await this.#checkParents(name);
    if ((await this.objects.head(name)) !== null) throw new UploadError('EXISTS', `"${name}" exists and is not a directory`);
    for (const parent of parentsOf(name)) {
      if ((await this.objects.head(`${parent}/`)) === null) await this.objects.put(`${parent}/`, Buffer.alloc(0), { metadata: { [META_MODE]: String(0o755), [META_MTIME]: String(Date.now()) } });
    }
    if (options.keepExisting && (await this.objects.head(`${name}/`)) !== null) return;
    await this.objects.put(`${name}/`, Buffer.alloc(0), { metadata: { [META_MODE]: String(options.mode & 0o777), [META_MTIME]: String(options.mtime) } });
  }

  /** BAD_NAME if a file is on `name`'s path or `name` is a directory. */
  async #checkPath(name: string): Promise<void> {
    await this.#checkParents(name);
    const below = await this.objects.list(`${name}/`, undefined, 1);
    if (below.keys.length > 0) throw new UploadError('BAD_NAME', `"${name}" exists and is not a regular file`);
  }

  async #checkParents(name: string): Promise<void> {
    const parents = parentsOf(name);
    const found = await mapLimited(parents, LIST_CONCURRENCY, (p) => this.objects.head(p));
    const file = parents.find((_, i) => found[i] !== null);
    if (file !== undefined) throw new UploadError('BAD_NAME', `"${file}" exists and is not a directory`);
  }

  /**
   * Completes `upload` (an earlier open's), so that the parts of it among `segments` become
   * stretches of its object, readable; returns `segments` so, or, if that cannot be done (the
   * upload is gone, a part is not the one recorded), the segments before its first part.
   */
  async #seal(folder: string, upload: Upload | undefined, segments: readonly Segment[]): Promise<Segment[]> {
    const first = segments.findIndex((s) => s.part !== undefined);
    const before = segments.slice(0, first < 0 ? segments.length : first);
    if (upload === undefined) return before;
    try {
      const listed = await this.objects.listParts(folder + upload.key, upload.id);
      if (listed === null) return before;
      const offsets = new Map<number, { etag: string; from: number; size: number }>();
      let from = 0;
      for (const p of listed) {
        offsets.set(p.part, { etag: p.etag, from, size: p.size });
        from += p.size;
      }
      const readable: Segment[] = [];
      for (const s of segments) {
        if (s.part === undefined) {
          readable.push(s);
          continue;
        }
        const got = offsets.get(s.part);
        if (got === undefined || got.etag !== s.etag || got.size !== s.length) return before;
        readable.push({ key: upload.key, length: s.length, from: got.from });
      }
      // Every part it holds (RGW refuses to complete with fewer): those beyond are not read.
      await this.objects.completeUpload(folder + upload.key, upload.id, listed);
      return readable;
    } catch {
      return before;
    }
  }

  /** Publishes the partial's segments and rest as `name` under the name's claim (so publishes of one name take turns across daemons). */
  async #publish(folder: string, contents: { upload: Upload | undefined; full: Segment[]; rest: Buffer }, name: string, options: PublishOptions): Promise<void> {
    const claim = `${CLAIMS}${createHash('sha256').update(name).digest('hex')}`;
    await this.#claim(claim, name);
    // Renewed while the copy runs, like a lease: a daemon that dies holding it holds it one lease at most.
    const renewal = setInterval(() => void this.objects.put(claim, this.#claimBody(name)).catch(() => undefined), Math.max(1, Math.floor(this.#leaseMs / 3)));
    renewal.unref();
    try {
      await this.#checkPath(name);
      if (options.how === 'no-clobber' && (await this.objects.head(name)) !== null) throw new UploadError('EXISTS', `"${name}" already exists`);
      const base = { [META_MODE]: String(options.mode & 0o777), [META_MTIME]: String(options.mtime) };
      // The hash lives in the object's own metadata: replaced with the object, never stale.
      const metadata = options.sha256 === undefined ? base : { ...base, [META_SHA256]: options.sha256.toString('hex') };
      const { upload, full, rest } = contents;
      if (full.length === 0) {
        await this.objects.put(name, rest, { metadata });
        return;
      }
      if (upload === undefined) throw new ResourceError('INTERNAL', 'a partial with full segments has no upload');
      const target = folder + upload.key;
      // Segments kept from an earlier open are copied in as parts (the store copies them); this
      // open's are its parts already. Then the rest, the upload completed, and its object copied
      // to the name with the metadata (RGW shares the data: no bytes are copied).
      const parts = await mapLimited(full, COPY_CONCURRENCY, async (s, i) => {
        if (s.part !== undefined && s.etag !== undefined) return { part: s.part, etag: s.etag };
        const from = s.from ?? 0;
        return { part: i + 1, etag: await this.objects.copyPart(target, upload.id, i + 1, folder + s.key, from, from + s.length) };
      });
      if (rest.length > 0) parts.push({ part: full.length + 1, etag: await this.objects.uploadPart(target, upload.id, full.length + 1, rest) });
      await this.objects.completeUpload(target, upload.id, parts);
      let size = rest.length;
      for (const s of full) size += s.length;
      if (size <= this.#maxCopyBytes) {
        await this.objects.copy(name, target, metadata);
      } else {
        // Past CopyObject's limit: a multipart copy of its ranges (the store copies the bytes).
        const copyId = await this.objects.createUpload(name, metadata);
        try {
          // Ranges of one segment each (at most MAX_PARTS of them, each at most 5 GiB).
          const step = full[0]?.length ?? size;
          const ranges = Array.from({ length: Math.ceil(size / step) }, (_, i) => i * step);
          const copied = await mapLimited(ranges, COPY_CONCURRENCY, async (from, i) => ({
            part: i + 1,
            etag: await this.objects.copyPart(name, copyId, i + 1, target, from, Math.min(size, from + step)),
          }));
          await this.objects.completeUpload(name, copyId, copied);
        } catch (err) {
          await this.objects.abortUpload(name, copyId).catch(() => undefined);
          throw err;
        }
      }
    } finally {
      clearInterval(renewal);
      await this.objects.delete(claim).catch(() => undefined);
    }
  }

  #claimBody(name: string): Buffer {
    return Buffer.from(JSON.stringify({ name, until: Date.now() + this.#leaseMs }));
  }

  /**
   * Takes the name's claim, waiting for another daemon's publish of it to end: at most two
   * leases, since a claim not renewed for one lease is a dead daemon's.
   */
  async #claim(claim: string, name: string): Promise<void> {
    const deadline = Date.now() + 2 * this.#leaseMs;
    for (let attempt = 0, wait = 20; attempt < 1_000; attempt++, wait = Math.min(500, wait * 2)) {
      try {
        await this.objects.put(claim, this.#claimBody(name), { ifNoneMatch: true });
        return;
      } catch (err) {
        if (!(err instanceof PreconditionFailed)) throw err;
      }
      const held = await this.objects.get(claim);
      const until = held === null ? 0 : claimUntil(held.body);
      // A dead daemon's claim: drop it (only that version) and try again (of racing daemons one put wins).
      if (held !== null && until < Date.now()) await this.objects.deleteIf(claim, held.etag);
      else if (Date.now() + wait > deadline) break;
      else await delay(wait);
    }
    throw new UploadError('BUSY', `"${name}" is being published by another server of this store`);
  }

  /** Deletes partial `id`'s record, then `keys` (below its folder): all it holds. */
  async #removeKnown(id: string, keys: readonly string[]): Promise<void> {
    const folder = `${PARTIALS}${id}/`;
    await this.objects.delete(`${folder}record`);
    await mapLimited(keys, LIST_CONCURRENCY, (k) => this.objects.delete(folder + k));
  }

  /**
   * Deletes partial `id`'s objects, its record first (so it is never resumed half deleted), and
   * with `uploads` its unfinished multipart uploads (a published partial completed its own).
   */
  async #remove(id: string, uploads = true): Promise<void> {
    const folder = `${PARTIALS}${id}/`;
    await this.objects.delete(`${folder}record`);
    const { keys } = await this.objects.list(folder);
    await mapLimited(keys, LIST_CONCURRENCY, (k) => this.objects.delete(k.key));
    if (uploads) await mapLimited(await this.objects.listUploads(folder), LIST_CONCURRENCY, (u) => this.objects.abortUpload(u.key, u.id));
  }

  async #readRecord(id: string): Promise<{ record: S3Record; etag: string } | undefined> {
    const got = await this.objects.get(`${PARTIALS}${id}/record`);
    if (got === null) return undefined;
    const record = parseRecord(got.body.toString('utf8'));
    return record === undefined ? undefined : { record, etag: got.etag };
  }
}

/** Until when a claim object's holder holds it (0 for one that is not a claim we wrote). */
function claimUntil(body: Buffer): number {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    const until = typeof value === 'object' && value !== null && 'until' in value ? value.until : 0;
    return typeof until === 'number' ? until : 0;
  } catch {
    return 0;
  }
}

/** Another daemon holds the partial (its lease is fresh): the client retries (§9.4). */
function heldElsewhere(name: string): ResourceError {
  return new ResourceError('HELD_ELSEWHERE', `"${name}" is being uploaded through another server of this store; retry shortly`);
}
