// A partial's record in the store (`<prefix>.stx/partials/<id>/record`, JSON): the PartialRecord
// the policy sees, plus where its bytes are (segments) and who holds it (the lease). It is
// written only with a condition on the version the writer last saw (If-Match on its ETag, or
// If-None-Match: * for the first), so that of two daemons that both think they hold a partial
// only one can write: the other's write fails and its upload stops (§9.4).

import { RECORD_VERSION, type PartialRecord } from '../backend.js';

export interface Segment {
  /** Its object's key below the partial's folder. */
  readonly key: string;
  readonly length: number;
}

export interface S3Record extends PartialRecord {
  readonly segmentBytes: number;
  /**
   * The partial's bytes in order, their lengths adding up to `durable`: full segments
   * (segmentBytes each), then the pieces of the segment being filled (less than segmentBytes in all).
   */
  readonly segments: readonly Segment[];
  /** The holding daemon's token for this open, or '' when no daemon holds it. */
  readonly holder: string;
  /** Until when (ms since the epoch, the holder's clock) the hold lasts unless renewed. */
  readonly leaseUntil: number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function safeInt(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The record in `text`, or undefined if it is not a whole, consistent one (not trusted then). */
export function parseRecord(text: string): S3Record | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(value)) return undefined;
  const { version, principal, name, size, mtime, mode, account, durable, created, updated, segmentBytes, segments, holder, leaseUntil } = value;
  if (version !== RECORD_VERSION || typeof principal !== 'string' || typeof name !== 'string') return undefined;
  if (!safeInt(size) || typeof mtime !== 'number' || !Number.isSafeInteger(mtime) || !safeInt(mode) || !safeInt(durable)) return undefined;
  if (!safeInt(created) || !safeInt(updated) || !safeInt(segmentBytes) || segmentBytes === 0 || !Array.isArray(segments)) return undefined;
  if (typeof holder !== 'string' || !safeInt(leaseUntil) || (account !== undefined && typeof account !== 'string')) return undefined;
  const parsed: Segment[] = [];
  let total = 0;
  let pieces = 0;
  for (const s of segments) {
    if (!isRecord(s) || typeof s['key'] !== 'string' || !/^[0-9a-z-]{1,80}$/.test(s['key']) || !safeInt(s['length'])) return undefined;
    const length = s['length'];
    if (length === 0 || length > segmentBytes) return undefined;
    // A full segment after a piece, or pieces adding up to a segment: not a record we wrote.
    if (length < segmentBytes || pieces > 0) pieces += length;
    if (pieces >= segmentBytes) return undefined;
    parsed.push({ key: s['key'], length });
    total += length;
  }
  if (total !== durable || durable > size) return undefined;
  const record: S3Record = { version, principal, name, size, mtime, mode, durable, created, updated, segmentBytes, segments: parsed, holder, leaseUntil };
  return account === undefined ? record : { ...record, account };
}

/** The PartialRecord part of `record`, as the policy sees it. */
export function partialRecordOf(record: S3Record): PartialRecord {
  const { version, principal, name, size, mtime, mode, account, durable, created, updated } = record;
  const base = { version, principal, name, size, mtime, mode, durable, created, updated };
  return account === undefined ? base : { ...base, account };
}
