// A whole small file published at once (PUT, spec/PROTOCOL.md §9.11): written into the reserved
// directory, given its mode and mtime, fsync'd, renamed (or linked, no-clobber) to its final name,
// its SHA-256 recorded, and the directories on its path fsync'd, before the caller answers.
// Nothing is recorded for a resume: a PUT cut short is sent again whole. The work is done by the
// publishing threads (put-pool.ts, put-thread.ts), many files per batch, so that a batch costs
// about one journal commit and one fsync per directory.
import type { PublishOptions } from '../backend.js';
import type { PathCounters } from './paths.js';
import { putPool, type PutRequest } from './put-pool.js';
import type { SumRecords } from './sums.js';

export interface PutPaths {
  readonly outDir: string;
  readonly realOutDir: string;
  readonly counters: PathCounters;
  /** Where the file is written before it is published (`.stx/partials`), and as messages show it. */
  readonly partialsDir: string;
  readonly shownPartialsDir: string;
  /** The file written there: `<id>.put`. */
  readonly temp: string;
  /** Where a published file's SHA-256 is recorded (sums.ts). */
  readonly sums: SumRecords;
}

/**
 * Writes `chunks` as the file `name` and publishes it durably (see above). The chunks are held,
 * not copied, until the file's batch goes to its thread: the caller keeps them until this
 * resolves (StorageBackend.putFile), and the pool copies every file of a batch into one buffer of
 * the batch's own, which it hands over to the thread (one allocation per batch, not per file).
 */
export function putFile(paths: PutPaths, name: string, chunks: readonly Buffer[], options: PublishOptions): Promise<void> {
  return putPool.run(putRequest(paths.temp, name, chunks, options), {
    outDir: paths.outDir,
    realOutDir: paths.realOutDir,
    sumsDir: paths.sums.dir,
    counters: paths.counters,
    partialsDir: paths.partialsDir,
    shownPartialsDir: paths.shownPartialsDir,
  });
}

/** The publishing thread's request for file `name` written first as `temp` in the partials directory (putFile, LocalBackend.putFiles). */
export function putRequest(temp: string, name: string, chunks: readonly Buffer[], options: PublishOptions): PutRequest {
  return { name, temp, chunks, mode: options.mode, mtime: options.mtime, how: options.how, sha256: options.sha256 ?? null };
}
