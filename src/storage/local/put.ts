// A whole small file published at once (PUT, spec/PROTOCOL.md §9.11): written into the reserved
// directory, given its mode and mtime, fsync'd, renamed (or linked, no-clobber) to its final name,
// its SHA-256 recorded, and the directories on its path fsync'd, before the caller answers.
// Nothing is recorded for a resume: a PUT cut short is sent again whole. The work is done by the
// publishing threads (put-pool.ts, put-thread.ts), many files per batch, so that a batch costs
// about one journal commit and one fsync per directory.
import type { PublishOptions } from '../backend.js';
import type { PathCounters } from './paths.js';
import { putPool } from './put-pool.js';
import type { SumRecords } from './sums.js';

export interface PutPaths {
  readonly outDir: string;
  readonly realOutDir: string;
  readonly counters: PathCounters;
  /** The file written before it is published: `.stx/partials/<id>.put`. */
  readonly tempFile: string;
  readonly shownTemp: string;
  /** Where a published file's SHA-256 is recorded (sums.ts). */
  readonly sums: SumRecords;
}

/** Writes `chunks` as the file `name` and publishes it durably (see above). */
export async function putFile(paths: PutPaths, name: string, chunks: readonly Buffer[], options: PublishOptions): Promise<void> {
  // The bytes, copied into a buffer of their own that goes to the thread as it is (transferred):
  // the chunks are views on pooled memory, which must not go along.
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const data = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  const sha256 = options.sha256 === undefined ? null : Uint8Array.from(options.sha256);
  await putPool.run(
    {
      outDir: paths.outDir,
      realOutDir: paths.realOutDir,
      name,
      tempFile: paths.tempFile,
      shownTemp: paths.shownTemp,
      data,
      mode: options.mode,
      mtime: options.mtime,
      how: options.how,
      sha256,
      sumsDir: paths.sums.dir,
    },
    paths.counters,
  );
}
