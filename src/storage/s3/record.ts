// A partial's record in the store (`<prefix>.stx/partials/<id>/record`, JSON): the PartialRecord
// the policy sees, plus where its bytes are (segments) and who holds it (the lease). It is
// written only with a condition on the version the writer last saw (If-Match on its ETag, or
// If-None-Match: * for the first), so that of two daemons that both think they hold a partial
// only one can write: the other's write fails and its upload stops (§9.4).

import { RECORD_VERSION, type PartialRecord } from '../backend.js';

/**
 * A stretch of the partial's bytes in the store: `length` bytes of an object from `from` (a piece,
 * or a full segment of a multipart upload completed when another open took the partial over), or
 * part `part` of the partial's multipart upload (`key` is then the upload's; its bytes cannot be
 * read until the upload is completed).
 */
export interface Segment {
  /** The object's (or the upload's) key below the partial's folder. */
  readonly key: string;
  readonly length: number;
  /** Where the stretch starts in the object (0 when absent). */
  readonly from?: number;
  /** The part of `upload` that holds it, and the part's ETag (unquoted). */
  readonly part?: number;
  readonly etag?: string;
}

/** A multipart upload the partial's full segments are written to, as parts. */
export interface Upload {
  /** Below the partial's folder. */
  readonly key: string;
  readonly id: string;
}

export interface S3Record extends PartialRecord {
  readonly segmentBytes: number;
  /**
   * The partial's bytes in order, their lengths adding up to `durable`: full segments
   * (segmentBytes each; segment i is part i + 1 of `upload`, or a stretch of an object), then the
   * pieces of the segment being filled (objects, less than segmentBytes in all).
   */
  readonly segments: readonly Segment[];
  /** The multipart upload the parts among `segments` belong to. */
  readonly upload?: Upload | undefined;
  /** The holding daemon's token for this open, or '' when no daemon holds it. */
  readonly holder: string;
  /** Until when (ms since the epoch, the holder's clock) the hold lasts unless renewed. */
  readonly leaseUntil: number;
}

/** An object's key below a partial's folder. */
const KEY = /^[0-9a-z-]{1,80}$/;

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
  const { version, principal, name, size, mtime, mode, account, durable, created, updated, segmentBytes, segments, holder, leaseUntil, upload } = value;
  if (version !== RECORD_VERSION || typeof principal !== 'string' || typeof name !== 'string') return undefined;
  if (!safeInt(size) || typeof mtime !== 'number' || !Number.isSafeInteger(mtime) || !safeInt(mode) || !safeInt(durable)) return undefined;
  if (!safeInt(created) || !safeInt(updated) || !safeInt(segmentBytes) || segmentBytes === 0 || !Array.isArray(segments)) return undefined;
  if (typeof holder !== 'string' || !safeInt(leaseUntil) || (account !== undefined && typeof account !== 'string')) return undefined;
  let parsedUpload: Upload | undefined;
  if (upload !== undefined) {
    if (!isRecord(upload) || typeof upload['key'] !== 'string' || !KEY.test(upload['key']) || typeof upload['id'] !== 'string' || !/^[\x21-\x7e]{1,1024}$/.test(upload['id'])) return undefined;
    parsedUpload = { key: upload['key'], id: upload['id'] };
  }
  const parsed: Segment[] = [];
  let total = 0;
  let pieces = 0;
  for (const [i, s] of segments.entries()) {
    if (!isRecord(s) || typeof s['key'] !== 'string' || !KEY.test(s['key']) || !safeInt(s['length'])) return undefined;
    const length = s['length'];
    if (length === 0 || length > segmentBytes) return undefined;
    // A full segment after a piece, or pieces adding up to a segment: not a record we wrote.
    if (length < segmentBytes || pieces > 0) pieces += length;
    if (pieces >= segmentBytes) return undefined;
    const { from, part, etag } = s;
    if (from !== undefined && !safeInt(from)) return undefined;
    if (part === undefined && etag === undefined) {
      parsed.push(from === undefined ? { key: s['key'], length } : { key: s['key'], length, from });
    } else {
      // A part: a full segment of the record's upload, numbered by its place.
      if (part !== i + 1 || typeof etag !== 'string' || !/^[0-9a-zA-Z-]{1,80}$/.test(etag) || pieces > 0 || from !== undefined) return undefined;
      if (parsedUpload === undefined || s['key'] !== parsedUpload.key) return undefined;
      parsed.push({ key: s['key'], length, part, etag });
    }
    total += length;
  }
  if (total !== durable || durable > size) return undefined;
  const record: S3Record = { version, principal, name, size, mtime, mode, durable, created, updated, segmentBytes, segments: parsed, holder, leaseUntil, upload: parsedUpload };
  return account === undefined ? record : { ...record, account };
}

/** The PartialRecord part of `record`, as the policy sees it. */
export function partialRecordOf(record: S3Record): PartialRecord {
  const { version, principal, name, size, mtime, mode, account, durable, created, updated } = record;
  const base = { version, principal, name, size, mtime, mode, durable, created, updated };
  return account === undefined ? base : { ...base, account };
}
