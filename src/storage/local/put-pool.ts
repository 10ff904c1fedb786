// The threads that publish small files (PUT, spec/PROTOCOL.md §9.11): put-thread.ts does each
// file's whole job with synchronous calls, a batch at a time. Jobs wait here in order and go to
// the first idle thread in batches of up to PUT_BATCH_FILES files and PUT_BATCH_BYTES bytes:
// while every thread is busy (writing, or waiting for its batch's fsync), the jobs that arrive
// meanwhile make the next batch, so the busier the disk, the larger the batches. One pool serves
// every local backend of the process; its threads start at the first PUT and keep the process
// alive only while they have work.
import { Worker } from 'node:worker_threads';
import { errorFor, ResourceError, type ErrorCode, type StxError } from '../../proto/errors.js';
import type { PathCounters } from './paths.js';

/** Threads publishing at once: each blocks in its batch's fsync while the others write. */
export const PUT_THREADS = 2;
/** Files per batch: one journal commit (the first fsync) covers them all. */
export const PUT_BATCH_FILES = 256;
/** Jobs waiting before a second thread starts a batch while the first one works. */
export const PUT_MIN_SECOND_BATCH = 64;
/** Bytes per batch (copied to the thread): at least one file whatever its size. */
export const PUT_BATCH_BYTES = 8 * 1024 * 1024;

/** One file for the thread. */
export interface PutJob {
  readonly id: number;
  readonly outDir: string;
  readonly realOutDir: string;
  /** The stored name, '/'-separated. */
  readonly name: string;
  readonly tempFile: string;
  readonly shownTemp: string;
  readonly data: Uint8Array;
  readonly mode: number;
  readonly mtime: number;
  readonly how: 'replace' | 'no-clobber';
  /** The SHA-256 to record for the published file; null removes the name's record. */
  readonly sha256: Uint8Array | null;
  /** SumRecords' directory. */
  readonly sumsDir: string;
}

export interface PutBatch {
  readonly jobs: readonly PutJob[];
}

export type PutOutcome =
  | { readonly id: number; readonly ok: true; readonly finalPath: string; readonly created: readonly string[] }
  | { readonly id: number; readonly ok: false; readonly code: ErrorCode; readonly message: string };

interface BatchReply {
  readonly outcomes: readonly PutOutcome[];
  readonly counters: PathCounters;
}

/** What a published file needs next: its directory made durable (put.ts). */
export interface Published {
  readonly finalPath: string;
  readonly created: readonly string[];
}

interface Waiting {
  readonly job: PutJob;
  readonly counters: PathCounters;
  readonly resolve: (p: Published) => void;
  readonly reject: (err: StxError) => void;
}

class PutThread {
  readonly worker: Worker;
  /** The batch it works on, by job id; empty when idle. */
  readonly running = new Map<number, Waiting>();
  #gone = false;

  constructor(private readonly pool: PutPool) {
    this.worker = new Worker(new URL('./put-thread.js', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (reply: BatchReply) => this.#done(reply));
    this.worker.on('error', (err) => this.#fail(`the publishing thread failed: ${err.message}`));
    this.worker.on('exit', (code) => this.#fail(`the publishing thread exited (code ${code})`));
  }

  get idle(): boolean {
    return this.running.size === 0 && !this.#gone;
  }

  start(batch: readonly Waiting[]): void {
    for (const w of batch) this.running.set(w.job.id, w);
    this.worker.ref();
    this.worker.postMessage(
      { jobs: batch.map((w) => w.job) } satisfies PutBatch,
      batch.map((w) => w.job.data.buffer as ArrayBuffer),
    );
  }

  #done(reply: BatchReply): void {
    const counters = [...this.running.values()][0]?.counters;
    if (counters !== undefined) {
      counters.lookups += reply.counters.lookups;
      counters.created += reply.counters.created;
      counters.removed += reply.counters.removed;
    }
    for (const o of reply.outcomes) {
      const w = this.running.get(o.id);
      if (w === undefined) continue;
      this.running.delete(o.id);
      if (o.ok) w.resolve({ finalPath: o.finalPath, created: o.created });
      else w.reject(errorFor(o.code, o.message));
    }
    // A job the reply did not name was not done: it fails alone.
    this.#rejectAll('the publishing thread did not answer for a file');
    this.worker.unref();
    this.pool.pump();
  }

  #fail(why: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#rejectAll(why);
    this.pool.lost(this);
  }

  #rejectAll(why: string): void {
    for (const w of this.running.values()) w.reject(new ResourceError('INTERNAL', why));
    this.running.clear();
  }
}

class PutPool {
  readonly #waiting: Waiting[] = [];
  readonly #threads: PutThread[] = [];
  #nextId = 1;

  /** Publishes `job` (less its id) on a thread; rejects with the file's own typed error. */
  run(job: Omit<PutJob, 'id'>, counters: PathCounters): Promise<Published> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ job: { ...job, id: this.#nextId++ }, counters, resolve, reject });
      this.pump();
    });
  }

  /** Hands waiting jobs to idle threads, starting threads up to PUT_THREADS. */
  pump(): void {
    while (this.#waiting.length > 0) {
      // While one thread works, another takes only a batch worth its two syncs: jobs trickling in
      // one by one would otherwise each make a batch of their own.
      const busy = this.#threads.some((t) => !t.idle);
      if (busy && this.#waiting.length < PUT_MIN_SECOND_BATCH) return;
      let thread = this.#threads.find((t) => t.idle);
      if (thread === undefined && this.#threads.length < PUT_THREADS) this.#threads.push((thread = new PutThread(this)));
      if (thread === undefined) return;
      const batch: Waiting[] = [];
      let bytes = 0;
      // One batch per counters object (one backend): its counters get the batch's lookups.
      const counters = this.#waiting[0]?.counters;
      for (let w = this.#waiting[0]; w !== undefined && batch.length < PUT_BATCH_FILES && w.counters === counters; w = this.#waiting[0]) {
        if (batch.length > 0 && bytes + w.job.data.length > PUT_BATCH_BYTES) break;
        bytes += w.job.data.length;
        batch.push(w);
        this.#waiting.shift();
      }
      thread.start(batch);
    }
  }

  /** A thread died: its jobs failed; the next batch starts a new one. */
  lost(thread: PutThread): void {
    const i = this.#threads.indexOf(thread);
    if (i >= 0) this.#threads.splice(i, 1);
    void thread.worker.terminate().catch(() => undefined);
    this.pump();
  }
}

export const putPool = new PutPool();
