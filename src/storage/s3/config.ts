// The S3 backend's constants and where it is pointed (stx-recv --store s3://BUCKET[/PREFIX]
// --s3-endpoint URL). Units are in the names.

const MiB = 1024 * 1024;

/**
 * A partial is stored as segments of this size (the last one shorter), each its own object, and
 * published by copying them as the parts of one multipart upload: S3 wants parts of at least
 * 5 MiB except the last, and at most 10,000 of them (segmentBytes raises the size for larger files).
 * Each open partial holds one segment in memory while it fills.
 */
export const SEGMENT_BYTES = 8 * MiB;
/**
 * The least --max-memory with --store: each S3 upload holds its segment in memory (charged to its
 * connection), and the memory budget stops the connections holding the most until the rest fit in
 * three quarters of it; so that two uploads (segment and write queue, 12 MiB each) still go on.
 */
export const MIN_S3_MAX_MEMORY_BYTES = 32 * MiB;
/**
 * --max-memory by default with --store: a quarter of RAM as without, but at most this. The S3
 * client (its modules, sockets and request buffers) adds ~30 MiB to the daemon's runtime: with the
 * usual 128 MiB, two daemons serving 50 uploads of 1–4 MiB each peaked at 236 and 259 MiB RSS
 * (npm run bench -- --store s3), at 96 MiB 232 and 272, at 64 MiB 234 and 242 (one run each).
 * One upload holds up to 44 MiB (5 segments and its queue): the budget still lets it run.
 */
export const MAX_S3_DEFAULT_MEMORY_BYTES = 64 * MiB;
/** S3's bounds on a multipart upload's parts. */
export const MIN_PART_BYTES = 5 * MiB;
export const MAX_PART_BYTES = 5 * 1024 * MiB;
export const MAX_PARTS = 10_000;

/**
 * How long a daemon's hold on a partial (its lease, in the partial's record) lasts unless
 * renewed; the holder renews it every third of that while the partial is open. A daemon that
 * died leaves the lease to expire: another daemon takes the upload over this long after its last
 * renewal at the latest. Daemons' clocks must agree to well within this (NTP).
 */
export const DEFAULT_LEASE_MS = 15_000;

/**
 * The largest object CopyObject copies (S3's limit; RGW shares the data): a larger upload is
 * published by a multipart copy (UploadPartCopy of its ranges), which copies the bytes.
 */
export const MAX_COPY_OBJECT_BYTES = 5 * 1024 * MiB;
/** UploadPartCopy requests one publish runs at once (each is the store reading and writing a segment). */
export const COPY_CONCURRENCY = 4;

/** What one GET of a published file fetches for the sequential reads that follow (downloads). */
export const READ_AHEAD_BYTES = 4 * MiB;

/** Requests one listing or directory read runs at once (HEADs for mode and mtime). */
export const LIST_CONCURRENCY = 8;

/** What the backend reports as free: an object store has no free space to ask (§9.5 limits still apply). */
export const S3_FREE_BYTES = 2n ** 50n;

/** Segment size for a partial of `size` bytes: SEGMENT_BYTES, or larger so that MAX_PARTS segments hold it. */
export function segmentBytes(size: number): number {
  const needed = Math.ceil(size / MAX_PARTS / MiB) * MiB;
  return Math.min(MAX_PART_BYTES, Math.max(SEGMENT_BYTES, needed));
}

/** Where a store lives: a bucket and a key prefix ('' or ending in '/'). */
export interface S3Location {
  readonly bucket: string;
  readonly prefix: string;
}

/**
 * Parses `s3://BUCKET[/PREFIX]`. The bucket follows S3's naming rules (3–63 lowercase letters,
 * digits, dots and hyphens); the prefix is '/'-separated non-empty components without '.' or
 * '..'. Throws a RangeError naming what is wrong.
 */
export function parseS3Url(url: string): S3Location {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (match === null) throw new RangeError(`--store wants s3://BUCKET[/PREFIX], not "${url}"`);
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) throw new RangeError(`"${bucket}" is not an S3 bucket name`);
  const rest = (match[2] ?? '').replace(/\/+$/, '');
  if (rest === '') return { bucket, prefix: '' };
  const parts = rest.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || p.length > 255)) throw new RangeError(`"${rest}" is not a key prefix of '/'-separated names`);
  return { bucket, prefix: `${rest}/` };
}
