// The files of a publishing batch as put-pool.ts hands them to put-thread.ts: in columns (the
// names, the temporary files' names, and the numbers of every file in one Float64Array), not an
// object per file. A message is a structured clone: an object per file had each of its nine keys
// written and read again per file, and was made again on the thread property by property; a
// column of strings is a string per file, the numbers one copy of bytes.

/** One file for the thread: its bytes and SHA-256 are ranges of the batch's buffer. */
export interface PutJob {
  readonly id: number;
  readonly name: string;
  /** PutRequest.temp: one short string per file, the directory once per batch (PutBatch.partialsDir). */
  readonly temp: string;
  /** The file's bytes: [at, at + size) of PutBatch.buffer. */
  readonly at: number;
  readonly size: number;
  readonly mode: number;
  readonly mtime: number;
  readonly how: 'replace' | 'no-clobber';
  /** Where the SHA-256 to record is in PutBatch.buffer (32 bytes), or -1: none, the name's record is removed. */
  readonly sha256At: number;
}

/** A batch's files, file i at index i of each column. */
export interface PutJobs {
  readonly names: string[];
  readonly temps: string[];
  /** NUMBERS_PER_JOB per file: id, at, size, mode, mtime, sha256At, how (0 replace, 1 no-clobber). */
  readonly numbers: Float64Array;
}

const NUMBERS_PER_JOB = 7;

/** Columns for `count` files, to be filled by setJob. */
export function newPutJobs(count: number): PutJobs {
  return { names: new Array<string>(count), temps: new Array<string>(count), numbers: new Float64Array(count * NUMBERS_PER_JOB) };
}

export function setJob(jobs: PutJobs, i: number, job: PutJob): void {
  jobs.names[i] = job.name;
  jobs.temps[i] = job.temp;
  const n = jobs.numbers;
  const at = i * NUMBERS_PER_JOB;
  n[at] = job.id;
  n[at + 1] = job.at;
  n[at + 2] = job.size;
  n[at + 3] = job.mode;
  n[at + 4] = job.mtime;
  n[at + 5] = job.sha256At;
  n[at + 6] = job.how === 'no-clobber' ? 1 : 0;
}

/** Files in `jobs`. */
export function jobCount(jobs: PutJobs): number {
  return jobs.names.length;
}

/** File `i` of `jobs`, as setJob was given it. */
export function jobOf(jobs: PutJobs, i: number): PutJob {
  const n = jobs.numbers;
  const at = i * NUMBERS_PER_JOB;
  return {
    id: n[at] ?? NaN,
    name: jobs.names[i] ?? '',
    temp: jobs.temps[i] ?? '',
    at: n[at + 1] ?? NaN,
    size: n[at + 2] ?? NaN,
    mode: n[at + 3] ?? NaN,
    mtime: n[at + 4] ?? NaN,
    sha256At: n[at + 5] ?? -1,
    how: n[at + 6] === 1 ? 'no-clobber' : 'replace',
  };
}
