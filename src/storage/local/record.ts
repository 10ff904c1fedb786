// The crash-safe record of one partial upload (§9.2): who is uploading what, and how many
// leading bytes of its .part file are durable. Written as <id>.json.tmp, fsynced, renamed over
// <id>.json, then the directory is fsynced: a crash leaves either the old record or the new one.

import { constants } from 'node:fs';
import { open, readFile, rename } from 'node:fs/promises';
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

export function encodeRecord(record: PartialRecord): string {
  const { version, name, size, mtime, mode, principal, durable, created, updated, account, ranges } = record;
  return `${JSON.stringify({ version, name, size, mtime, mode, principal, durable, created, updated, account, ranges })}\n`;
}

/** Reads a record; undefined if it is absent or unreadable as a record (a damaged one is not trusted). */
export async function readRecord(file: string, shown: string): Promise<PartialRecord | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw toStxError(err, 'reading', shown);
  }
  try {
    return parseRecord(JSON.parse(text));
  } catch {
    return undefined;
  }
}

/** Replaces `file` with `record` crash-safely: tmp, fsync, rename, fsync directory. */
export async function writeRecord(file: string, dir: string, record: PartialRecord, shown: string): Promise<void> {
  const tmp = `${file}.tmp`;
  try {
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    const fh = await open(tmp, flags, PARTIAL_FILE_MODE);
    try {
      await fh.writeFile(encodeRecord(record), 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await fsyncDir(dir);
  } catch (err) {
    throw toStxError(err, 'writing record', shown);
  }
}
