// The interface every contender implements; the runner knows nothing else about them.
import type { Rusage } from '../lib/measure.js';
import type { Placement } from '../lib/placement.js';
import type { TestFile } from '../lib/testfile.js';

export interface RunOk {
  readonly kind: 'ok';
  /** Contender-defined transfer time; see each contender's `measures`. */
  readonly wallSeconds: number;
  readonly sender: Rusage;
  readonly receiver: Rusage;
  /** Where the received copy is; the runner checks its SHA-256 and deletes it. */
  readonly receivedPath: string;
  /** Facts worth keeping, e.g. the negotiated cipher. */
  readonly notes: readonly string[];
}

interface RunFailed {
  readonly kind: 'failed';
  readonly reason: string;
}

export type RunResult = RunOk | RunFailed;

export interface Contender {
  readonly name: string;
  /** One line: what runs on each side and what the wall time spans. */
  readonly measures: string;
  /** Null when it can run here, else why not (installing what it can first). */
  available(): Promise<string | null>;
  /** Versions of what is measured, for the report. */
  version(): Promise<string>;
  /**
   * One transfer of `file`; `workdir` is empty, private to this run, and removed afterwards.
   * `placement` says where each side runs (default: both on 127.0.0.1).
   */
  run(file: TestFile, workdir: string, placement?: Placement): Promise<RunResult>;
}

const MIN_TRANSFER_TIMEOUT_MS = 60_000;
/** 10 MiB/s: anything slower is broken, not slow. */
const SLOWEST_BYTES_PER_MS = 10 * 1024;

/** Child-process time limit for a transfer of `bytes`: generous, but finite. */
export function transferTimeoutMs(bytes: number): number {
  return MIN_TRANSFER_TIMEOUT_MS + Math.ceil(bytes / SLOWEST_BYTES_PER_MS);
}

/** How long a server may take to say it is listening. */
export const READY_TIMEOUT_MS = 15_000;
