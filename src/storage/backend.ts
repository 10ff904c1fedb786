// Where uploaded bytes rest (STYLE.md "Storage behind an interface"; in the spirit of tus's
// DataStore): partial uploads by id with a durable offset and a record, their publication under a
// final name, and the published files. The policy above it (src/recv/store.ts: names, limits,
// locks, append-only, integrity, one version per client and name) is the same for every backend;
// test/storage-contract.ts is the contract every backend passes.
//
// Durability is the one promise that matters for resume (§9.2): bytes written but not yet
// checkpointed may be lost by a crash; checkpointed bytes and their record may not. A backend
// never hands back, after a crash or a close, more bytes of a partial than its last checkpoint
// recorded.

import type { StxError } from '../proto/errors.js';
import type { LeaseAccount } from '../transfer/body-pool.js';
import type { ByteBudget } from '../transfer/budget.js';
import type { ReadAt } from '../transfer/file-hash.js';

/**
 * Spec §9.3 reserves names whose components start with this for the server itself: the policy
 * refuses them, and a backend may keep its own state under it (the local one does, `.stx/`).
 */
export const RESERVED_NAME_PREFIX = '.stx';

/** What OPEN said about the file, kept with its partial (§9.2). */
export interface PartialMeta {
  /** "anonymous" or the client's key fingerprint. */
  readonly principal: string;
  readonly name: string;
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  readonly mode: number;
  /**
   * Who the disk the partial holds is charged to (--max-partial-bytes, §9.5): the client's
   * fingerprint, or "anonymous@" and its source address. Absent in records of earlier versions:
   * then the principal.
   */
  readonly account?: string | undefined;
}

/** A partial's record as a backend keeps it: its meta, durable offset and times. */
export interface PartialRecord extends PartialMeta {
  readonly version: number;
  /** Leading bytes of the partial that are durable. */
  readonly durable: number;
  /** Milliseconds since the Unix epoch. */
  readonly created: number;
  /**
   * When the durable offset last advanced (or the partial was created): what the sweep ages
   * partials by (§9.2). An open, or a checkpoint that made nothing new durable, leaves it.
   */
  readonly updated: number;
  /**
   * A ranged upload's ranges (§9.13), each with its own durable end; `durable` is then the
   * prefix from 0 that the ranges cover durably. Absent for an upload sent in order.
   */
  readonly ranges?: readonly RangeRecord[] | undefined;
}

/** One range of a ranged upload (§9.13): bytes [start, durable) of [start, end) are durable. */
export interface RangeRecord {
  readonly start: number;
  readonly end: number;
  readonly durable: number;
}

/** The bytes [0, p) that `ranges` cover durably: the longest such prefix (sorted by start or not). */
export function durablePrefix(ranges: readonly RangeRecord[]): number {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let prefix = 0;
  for (const r of sorted) {
    if (r.start > prefix) break;
    prefix = Math.max(prefix, r.durable);
    if (r.durable < r.end) break;
  }
  return prefix;
}

/**
 * A ranged upload's partial (§9.13), shared by the connections that carry its ranges: writes at
 * any offset, and a record of every range's durable end. The policy (recv/store/ranges.ts) says
 * which offsets each connection may write; one open per id at a time (the caller's lock).
 */
export interface RangedPartial {
  readonly shown: string;
  /** The ranges of the resumed record that the partial still holds (none when it started over). */
  readonly ranges: readonly RangeRecord[];
  /** Positional reads of the partial, for hashing its durable prefix while the ranges arrive; absent where the backend gives none. */
  readonly prefix?: PositionalReader | undefined;
  /** Writes `data` at `offset`; not durable until the next record(). */
  writeAt(offset: number, data: Buffer): Promise<void>;
  /**
   * Makes every write so far durable, then records `ranges` (and their durable prefix) crash-safely.
   * `sync` false: no write needs to be (the record only adds ranges with nothing durable in them).
   */
  record(ranges: readonly RangeRecord[], sync?: boolean): Promise<void>;
  /** Closes the file; the partial stays as its last record left it. Idempotent. */
  close(): Promise<void>;
}

/** The only record version there is. */
export const RECORD_VERSION = 1;

/** A partial id: 64 lowercase hex digits (the policy's uploadId). Backends refuse anything else. */
export function isPartialId(id: string): boolean {
  return /^[0-9a-f]{64}$/.test(id);
}

/** Bounds of one partial's write queue (the connection's and the process's). */
export interface WriteLimits {
  /** Shared by every partial of the process (MAX_QUEUED_BYTES_TOTAL). */
  readonly budget: ByteBudget;
  /** Bytes one partial may have queued (MAX_QUEUED_BYTES_PER_CONNECTION). */
  readonly maxQueuedBytes: number;
  /** Largest chunk a caller writes (MAX_DATA_CHUNK_BYTES). */
  readonly maxChunkBytes: number;
  /**
   * Charged with memory the partial holds beyond its queue (the S3 backend's segment being
   * filled): the connection's share of the memory budget (--max-memory), which stops reading the
   * connections that hold the most once it is reached.
   */
  readonly memory?: LeaseAccount | undefined;
}

/**
 * Positional reads of stored bytes (a partial's durable prefix, a published file), for hashing.
 * `fd`, when there is one, is an open file descriptor: the hashing thread reads it directly
 * instead of the event loop reading through `readAt` (transfer/hasher.ts).
 */
export interface PositionalReader {
  readonly readAt: ReadAt;
  readonly fd?: number | undefined;
}

/** A published file: its name ('/'-separated, as published), size in bytes and mtime (ms). */
export interface FileInfo {
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
}

/** A published file open for reading. Close it; reads after close fail. */
export interface PublishedFile extends PositionalReader {
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /** Permission bits (at most 0o7777). */
  readonly mode: number;
  /** The file's version when opened: see DirEntry.stamp. */
  readonly stamp: string;
  /** The SHA-256 recorded at publish for this version (PublishOptions.sha256), if any. */
  readonly sha256?: Buffer | undefined;
  /** The open file's version now: another value than `stamp` means it was changed in place. */
  currentStamp(): Promise<string>;
  close(): Promise<void>;
}

/**
 * One entry of a directory of published files (readDirectory): a regular file or a directory,
 * never a link or anything else.
 */
export interface DirEntry {
  /** One name component. */
  readonly name: string;
  readonly kind: 'file' | 'directory';
  /** Bytes (0 for a directory). */
  readonly size: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /** Permission bits (at most 0o7777). */
  readonly mode: number;
  /**
   * Opaque; changes whenever the file's content may have changed (local disk: device, inode,
   * size, mtime and ctime in nanoseconds), so that a SHA-256 learnt for one stamp is never shown
   * for another version.
   */
  readonly stamp: string;
  /**
   * A file's SHA-256 as recorded at its publish (PublishOptions.sha256), only while the file is
   * still that version (its stamp); absent when unknown. Never computed by reading a file larger
   * than 64 KiB (the local backend computes a smaller one's from its bytes, spec §9.10).
   */
  readonly sha256?: Buffer | undefined;
}

/** One file of putFiles: putFile's arguments. */
export interface PutFileRequest {
  readonly id: string;
  readonly name: string;
  readonly chunks: readonly Buffer[];
  readonly options: PublishOptions;
}

export interface PublishOptions {
  /** Permission bits (at most 0o777; anything above is dropped). */
  readonly mode: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /**
   * 'replace' swaps the new file in over whatever file has the name, atomically (readers see the
   * old file or the new one); 'no-clobber' publishes only if the name is free, atomically, else
   * UploadError EXISTS and the partial stays as it was.
   */
  readonly how: 'replace' | 'no-clobber';
  /**
   * The SHA-256 of the published bytes, as the policy verified it (§9.1 step 6). The backend keeps
   * it with this version of the file, durably enough to outlive a restart of the daemon (local disk:
   * a side record in the reserved directory, local/sums.ts; an object store would keep it in the
   * object's metadata), and gives it back in DirEntry.sha256 and PublishedFile.sha256 only while
   * the file is that version: never for a file replaced or changed in place since. A publish
   * without it leaves the file's hash unknown. Losing it (a crash) only makes it unknown.
   */
  readonly sha256?: Buffer | undefined;
}

/**
 * One open partial upload, held by one connection. Writes go in at increasing offsets, from
 * `durable` on. Nothing here is shared: the policy holds a lock per id.
 */
export interface PartialUpload {
  readonly id: string;
  /** The partial's name in messages (`.stx/partials/<id>.part` on disk). */
  readonly shown: string;
  /**
   * The durable offset last recorded: at open, where writing resumes (bytes past the resumed
   * record's offset were dropped); then what the last checkpoint returned.
   */
  readonly durable: number;
  /** Reads the partial's bytes; [0, durable) is what a resume re-hashes (§9.7). */
  readonly prefix: PositionalReader;
  /** True from a write that returned true until the queue drains. */
  readonly paused: boolean;
  /** The first write or sync error; once set, nothing more is written or made durable. */
  readonly failure: StxError | undefined;
  /**
   * Queues `data` for position `offset`, which must be where the last write ended (BAD_OFFSET
   * otherwise; the first at `durable`), and returns whether the caller should pause until
   * drained(): the partial's queue or the shared budget lacks room for another full chunk. The
   * backend keeps `data` until written: `onWritten` runs once it no longer needs it (also when
   * dropped after a failure). Throws the stored failure.
   */
  write(offset: number, data: Buffer, onWritten?: () => void): boolean;
  /** Resolves once the caller may write again (at once if not paused); never rejects. */
  drained(): Promise<void>;
  /**
   * Makes every byte written so far durable, then records the durable offset crash-safely with
   * the partial's meta, and returns it. After a crash the partial resumes from this offset or a
   * later checkpoint's, never less. The first checkpoint after open records even when nothing
   * was written (it writes the record for this open's meta). Rejects with `failure`.
   */
  checkpoint(): Promise<number>;
  /** Refuses further writes and waits for those queued; never rejects (see `failure`). */
  endWrites(): Promise<void>;
  /**
   * Publishes the partial's bytes (all of them: call after endWrites) under `name` with mode
   * and mtime, durably, creating the name's missing directories, and removes the partial and its
   * record; the partial is closed whatever happens. On EXISTS ('no-clobber'), BAD_NAME (the name
   * cannot be published: a link or a non-directory on its path) or IO_ERROR nothing is published,
   * the directories this publish created are removed again (if still empty), and the partial is
   * kept.
   */
  publish(name: string, options: PublishOptions): Promise<void>;
  /** Closes and deletes the partial and its record. */
  discard(): Promise<void>;
  /** Lets queued writes finish and closes; the partial stays as its last checkpoint left it. Idempotent. */
  close(): Promise<void>;
}

/** A partial's id and record, as listed by partials(). */
export interface ListedPartial {
  readonly id: string;
  readonly record: PartialRecord;
}

/** How a MKDIR makes its directory. */
export interface DirectoryOptions {
  /** Permission bits to apply (umask already taken off). */
  readonly mode: number;
  /** Milliseconds since the Unix epoch. */
  readonly mtime: number;
  /** Append-only (§9.5): an existing directory is left as it is. */
  readonly keepExisting: boolean;
}

/** One MKDIR of a run (StorageBackend.makeDirectories). */
export interface DirectoryRequest {
  readonly name: string;
  readonly options: DirectoryOptions;
}

/** How a run of MKDIRs went: the first `made` are done and durable; `failure` is the next one's error (null: all done). */
export interface DirectoriesMade {
  readonly made: number;
  readonly failure: StxError | null;
}

/**
 * The storage under one output directory. Names are validated by the policy (§9.3:
 * '/'-separated components, none empty, '.', '..' or starting with RESERVED_NAME_PREFIX); a
 * backend still refuses to follow links. Errors are typed (StxError: IO_ERROR, NO_SPACE,
 * BAD_NAME, EXISTS, INTERNAL).
 */
export interface StorageBackend {
  /** Prepares the storage (the local one: directories, stray temporary records removed). Call once, first. */
  init(): Promise<void>;

  /** Every partial with a readable record (at start-up, for the policy's index). */
  partials(): Promise<ListedPartial[]>;

  /** The record of partial `id`, or undefined (none, or unreadable: a damaged record is not trusted). */
  record(id: string): Promise<PartialRecord | undefined>;

  /**
   * Opens partial `id`, creating it if missing. `resume` is its record as the caller accepted
   * it (from record()), or undefined to start over: the partial keeps its first `resume.durable`
   * bytes if it holds that many, else none, and drops the rest (torn by a crash, never
   * promised). Writes nothing durable until the first checkpoint. Waits for a discard or sweep
   * of `id` that is under way. One open per id at a time (the caller's lock).
   */
  openPartial(id: string, meta: PartialMeta, resume: PartialRecord | undefined, limits: WriteLimits): Promise<PartialUpload>;

  /** Deletes partial `id` (not open) and its record; nothing if absent. */
  discard(id: string): Promise<void>;

  /**
   * Deletes the partials (also those without a record) last updated more than `ttlMs` before
   * `now` and not open. `claim(id)` runs just before one is deleted; false keeps it. Returns how
   * many were deleted; their deletion is durable when this resolves.
   */
  sweep(ttlMs: number, now: number, claim: (id: string) => boolean): Promise<number>;

  /**
   * Checks that a file can be published as `name` and returns what is published there now, or
   * null. BAD_NAME if a link, a non-directory on the path, or a non-file at the name is in the
   * way. Creates nothing (§9.3): a name's missing directories are made by publish.
   */
  prepareName(name: string): Promise<FileInfo | null>;

  /**
   * Opens the published file `name` for reading, or null if there is none (or not a regular
   * file, or a link is on its path). Creates nothing.
   */
  openFile(name: string): Promise<PublishedFile | null>;

  /**
   * The regular files and directories directly in directory `dir` (components of a validated
   * name; [] is the top, without the backend's own state), in no particular order; null if `dir`
   * is not a directory or a link is on its path. Creates nothing, follows no link.
   */
  readDirectory(dir: readonly string[]): Promise<DirEntry[] | null>;

  /** The published files (not the backend's own state), in no particular order. */
  list(): Promise<FileInfo[]>;

  /** Bytes that can still be stored. */
  freeBytes(): Promise<bigint>;

  /**
   * MKDIRs (§9.8), a run of them (revision 1.14): each creates directory `name` and its parents
   * and sets its mode and mtime (unless `keepExisting` and it exists), EXISTS if a non-directory
   * is there; in order up to the first refused, and durable together (a directory's sync shared
   * by the run). A backend without directories leaves this out; the policy then refuses MKDIR.
   */
  makeDirectories?(entries: readonly DirectoryRequest[]): Promise<DirectoriesMade>;

  /**
   * SYMLINK (§9.8): creates link `name` → `target` (checked by the policy), replacing a file or
   * link there atomically unless `noClobber` (then EXISTS, except the same link). EXISTS over a
   * directory. A backend without links leaves this out.
   */
  /**
   * A whole file at once (PUT, §9.11), for upload `id`: `chunks` published under `name` with
   * mode and mtime, durably (its bytes and its name) when this resolves, as publish() does;
   * nothing kept for a resume. Without it the policy goes through openPartial and publish.
   */
  putFile?(id: string, name: string, chunks: readonly Buffer[], options: PublishOptions): Promise<void>;
  /**
   * Many whole files at once (PUT_PACK, §9.11 step 8), each as putFile would publish it: resolves
   * once every one is over, with its outcome (null: published durably, else its own error); never
   * rejects. A backend with putFile may leave this out (the policy then calls putFile per file).
   */
  putFiles?(files: readonly PutFileRequest[]): Promise<(StxError | null)[]>;
  makeLink?(name: string, target: string, options: { readonly mtime: number; readonly noClobber: boolean }): Promise<void>;

  /**
   * Opens partial `id` for a ranged upload (§9.13), creating it if missing. `resume` is its record
   * as the caller accepted it: its `ranges` are kept where the partial holds their bytes; a record
   * without ranges (an upload sent in order) is started over. A backend without random writes
   * leaves this out; the policy then refuses RANGE with NOT_ALLOWED.
   */
  openRanged?(id: string, meta: PartialMeta, resume: PartialRecord | undefined): Promise<RangedPartial>;
}
