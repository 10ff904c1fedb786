// The crash-safe record of one partial upload (§9.2): who is uploading what, and how many
// leading bytes of its .part file are durable. <id>.json holds two slots of the same size, each
// `SHA-256(json) ‖ json ‖ \n`, zero-padded; the valid slot with the higher `seq` is the record.
// Made as <id>.json.tmp (slot 0), fsynced, renamed over <id>.json, then the directory is fsynced;
// each later checkpoint of the same open overwrites the other slot in place and fdatasyncs it
// (RecordFile): a crash leaves the slot it was writing torn (its checksum fails) and the other,
// the record before, whole. That is one sync per checkpoint where tmp + rename cost two fsyncs, a
// directory fsync and five more calls: ~0.3 ms of CPU against ~0.7–1.0 ms here, for 100 uploads
// at once each checkpointing every second (issue 15). A record of the older form (the JSON alone,
// one line) is still read.

import { createHash } from 'node:crypto';
import { constants, readFileSync, renameSync, writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import { MAX_MODE, MAX_RANGES_PER_UPLOAD, MAX_SAFE_UINT } from '../../proto/limits.js';
import { durablePrefix, RECORD_VERSION, type PartialRecord, type RangeRecord } from '../backend.js';
import { PARTIAL_FILE_MODE } from './config.js';
import { fsyncDir } from './fs-util.js';
import { errnoOf, toStxError } from '../../transfer/io-error.js';

export { RECORD_VERSION } from '../backend.js';

function isUint(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= MAX_SAFE_UINT;
}
function isInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value);
}

/** Narrows parsed JSON to a record; undefined if anything is missing, mistyped or inconsistent. */
export function parseRecord(json: unknown): PartialRecord | undefined {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return undefined;
  const r: Record<string, unknown> = { ...json };
  const { version, name, size, mtime, mode, principal, durable, created, updated, account, ranges } = r;
  if (version !== RECORD_VERSION) return undefined;
  if (typeof name !== 'string' || typeof principal !== 'string') return undefined;
  if (!isUint(size) || !isInt(mtime) || !isUint(durable) || durable > size) return undefined;
  if (!isUint(mode) || mode > MAX_MODE) return undefined;
  if (!isInt(created) || !isInt(updated)) return undefined;
  if (account !== undefined && typeof account !== 'string') return undefined;
  const base = { version, name, size, mtime, mode, principal, durable, created, updated, ...(account === undefined ? {} : { account }) };
  if (ranges === undefined) return base;
  const parsed = parseRanges(ranges, size);
  // The prefix is derived from the ranges: a record that says otherwise is not trusted.
  if (parsed === undefined || durablePrefix(parsed) !== durable) return undefined;
  return { ...base, ranges: parsed };
}

/** A ranged upload's ranges (§9.13): at most MAX_RANGES_PER_UPLOAD, within `size`, none overlapping. */
function parseRanges(json: unknown, size: number): RangeRecord[] | undefined {
  if (!Array.isArray(json) || json.length > MAX_RANGES_PER_UPLOAD) return undefined;
  const out: RangeRecord[] = [];
  for (const item of json as unknown[]) {
    if (typeof item !== 'object' || item === null) return undefined;
    const { start, end, durable }: Record<string, unknown> = { ...item };
    if (!isUint(start) || !isUint(end) || !isUint(durable) || !(start <= durable && durable <= end && end <= size && start < end)) return undefined;
    out.push({ start, end, durable });
  }
  out.sort((a, b) => a.start - b.start);
  for (let i = 1; i < out.length; i++) if ((out[i - 1]?.end ?? 0) > (out[i]?.start ?? 0)) return undefined;
  return out;
}

/** The record's fields in their order (undefined ones are left out by JSON.stringify). */
function fieldsOf(record: PartialRecord): Record<string, unknown> {
  const { version, name, size, mtime, mode, principal, durable, created, updated, account, ranges } = record;
  return { version, name, size, mtime, mode, principal, durable, created, updated, account, ranges };
}

export function encodeRecord(record: PartialRecord): string {
  return `${JSON.stringify(fieldsOf(record))}\n`;
}

/** A slot's size is a multiple of one disk sector. */
const SLOT_ALIGN_BYTES = 512;
/** A slot starts with the SHA-256 of its JSON, in hex. */
const CHECK_CHARS = 64;
const NEWLINE = 0x0a;

/** One slot's text: the checksum, the record with its sequence number, a newline. */
function slotText(record: PartialRecord, seq: number): Buffer {
  const json = JSON.stringify({ ...fieldsOf(record), seq });
  return Buffer.from(`${createHash('sha256').update(json).digest('hex')}${json}\n`, 'utf8');
}

/**
 * The slot size for this partial's records: room for its identity with the fields that change
 * (durable, updated, seq) at their longest, so that every later checkpoint fits in place.
 */
function slotBytesFor(record: PartialRecord): number {
  const longest = slotText({ ...record, durable: record.size, updated: MAX_SAFE_UINT }, MAX_SAFE_UINT).length;
  return Math.ceil(longest / SLOT_ALIGN_BYTES) * SLOT_ALIGN_BYTES;
}

/** The record in a slot if its checksum holds, with its sequence number. */
function readSlot(slot: Buffer): { record: PartialRecord; seq: number } | undefined {
  const end = slot.indexOf(NEWLINE);
  if (end <= CHECK_CHARS) return undefined;
  const json = slot.subarray(CHECK_CHARS, end);
  if (createHash('sha256').update(json).digest('hex') !== slot.toString('latin1', 0, CHECK_CHARS)) return undefined;
  try {
    const parsed: unknown = JSON.parse(json.toString('utf8'));
    const seq: unknown = typeof parsed === 'object' && parsed !== null ? Reflect.get(parsed, 'seq') : undefined;
    const record = parseRecord(parsed);
    return record === undefined || !isUint(seq) ? undefined : { record, seq };
  } catch {
    return undefined;
  }
}

/** A record file's bytes as a record: the newer valid slot, or the older one-line form. */
export function decodeRecordFile(bytes: Buffer): PartialRecord | undefined {
  if (bytes[0] === 0x7b /* "{": the older form */) {
    try {
      return parseRecord(JSON.parse(bytes.toString('utf8')));
    } catch {
      return undefined;
    }
  }
  const slotBytes = bytes.length / 2;
  if (slotBytes === 0 || slotBytes % SLOT_ALIGN_BYTES !== 0) return undefined;
  const a = readSlot(bytes.subarray(0, slotBytes));
  const b = readSlot(bytes.subarray(slotBytes));
  if (a === undefined || b === undefined) return (a ?? b)?.record;
  return (a.seq > b.seq ? a : b).record;
}

/**
 * Reads a record; undefined if it is absent or unreadable as a record (a damaged one is not
 * trusted). A synchronous read of a file of a few KiB, or one failing open for a new upload's
 * (paths.ts says why not as trips to the thread pool).
 */
export function readRecord(file: string, shown: string): PartialRecord | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw toStxError(err, 'reading', shown);
  }
  return decodeRecordFile(bytes);
}

/**
 * Makes `file` a new record file holding `record` in slot 0 crash-safely (tmp, fsync, rename,
 * fsync directory) and returns its handle, still open on the file, with the slot size.
 */
async function createRecordFile(file: string, dir: string, record: PartialRecord, seq: number): Promise<{ fh: FileHandle; slotBytes: number }> {
  const tmp = `${file}.tmp`;
  const slotBytes = slotBytesFor(record);
  const bytes = Buffer.alloc(2 * slotBytes);
  slotText(record, seq).copy(bytes);
  const flags = constants.O_RDWR | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
  const fh = await open(tmp, flags, PARTIAL_FILE_MODE);
  try {
    // The small write and the rename here, the syncs on the thread pool (paths.ts says why).
    if (writeSync(fh.fd, bytes, 0, bytes.length, 0) !== bytes.length) throw new Error(`short write of ${tmp}`);
    await fh.sync();
    renameSync(tmp, file);
    await fsyncDir(dir);
  } catch (err) {
    await fh.close().catch(() => undefined);
    throw err;
  }
  return { fh, slotBytes };
}

/** Replaces `file` with `record` crash-safely: tmp, fsync, rename, fsync directory. */
export async function writeRecord(file: string, dir: string, record: PartialRecord, shown: string): Promise<void> {
  try {
    const { fh } = await createRecordFile(file, dir, record, 0);
    await fh.close();
  } catch (err) {
    throw toStxError(err, 'writing record', shown);
  }
}

/**
 * One open partial's record file, kept open between checkpoints: the first write makes the file
 * anew (writeRecord's way), each later one overwrites the slot not holding the newest record and
 * fdatasyncs it. One write at a time (the caller's checkpoints are).
 */
export class RecordFile {
  readonly #file: string;
  readonly #dir: string;
  readonly #shown: string;
  #fh: FileHandle | null = null;
  #slotBytes = 0;
  /** The slot holding the newest durable record (0 or 1) and its sequence number. */
  #newest = 0;
  #seq = 0;

  constructor(file: string, dir: string, shown: string) {
    this.#file = file;
    this.#dir = dir;
    this.#shown = shown;
  }

  /** Makes `record` the durable record: once this resolves, a crash leaves it or a newer one. */
  async write(record: PartialRecord): Promise<void> {
    const seq = this.#seq + 1;
    try {
      const text = this.#fh === null ? null : slotText(record, seq);
      if (this.#fh === null || text === null || text.length > this.#slotBytes) {
        await this.close();
        const made = await createRecordFile(this.#file, this.#dir, record, seq);
        this.#fh = made.fh;
        this.#slotBytes = made.slotBytes;
        this.#newest = 0;
      } else {
        const slot = Buffer.alloc(this.#slotBytes);
        text.copy(slot);
        const other = 1 - this.#newest;
        const bytesWritten = writeSync(this.#fh.fd, slot, 0, slot.length, other * this.#slotBytes);
        if (bytesWritten !== slot.length) throw new Error(`short write of ${bytesWritten} bytes`);
        await this.#fh.datasync();
        this.#newest = other;
      }
      this.#seq = seq;
    } catch (err) {
      throw toStxError(err, 'writing record', this.#shown);
    }
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = null;
    await fh?.close().catch(() => undefined);
  }
}
