// The thread that publishes small files (PUT, spec/PROTOCOL.md §9.11): put-thread.ts does each
// file's whole job with synchronous calls, a batch at a time, and works on the next batch while
// the last one waits for its filesystem sync. Jobs wait here in order and go to the thread in
// batches of up to PUT_BATCH_FILES files and PUT_BATCH_BYTES bytes: while the thread is busy
// (writing, or waiting for its batches' syncs), the jobs that arrive meanwhile make the next
// batch, so the busier the disk, the larger the batches. One pool serves every local backend of
// the process; its thread starts at the first PUT and keeps the process alive only while it has
// work. MKDIR (§9.8) runs there too, a run of them as one message (makeDirectories below).
import { Worker } from 'node:worker_threads';
import { errorFor, ResourceError, type ErrorCode, type StxError } from '../../proto/errors.js';
import type { DirectoriesMade, DirectoryRequest } from '../backend.js';
import type { PathCounters } from './paths.js';
import { newPutJobs, setJob, type PutJobs } from './put-jobs.js';

/**
 * Threads publishing at once. One: a thread is not blocked by its batch's sync (put-thread.ts
 * awaits it), and a second one cost its own start (~90 ms of CPU for a Node worker here) and its
 * own warm-up (its code run unoptimised, then compiled again for its isolate): with two, the
 * publishing threads of a fresh daemon took ~110 CPU cs for 10,000 files of 4 KiB and a warm one
 * ~64 (bench/tree.ts starts a fresh daemon per run).
 */
export const PUT_THREADS = 1;
/**
 * Batches a thread works on at once: one is written while the one before waits for its sync
 * (the two ran on two threads before, each blocked in its own batch's sync).
 */
export const PUT_BATCHES_PER_THREAD = 2;
/** Files per batch: one journal commit (the first fsync) covers them all. */
export const PUT_BATCH_FILES = 256;
/** Jobs waiting before a second batch starts while the first one works. */
export const PUT_MIN_SECOND_BATCH = 64;
/** Bytes per batch (copied to the thread): at least one file whatever its size. */
export const PUT_BATCH_BYTES = 8 * 1024 * 1024;
/**
 * The batch buffers kept for the next batches (a thread sends its buffer back): of this size, at
 * most PUT_THREADS * PUT_BATCHES_PER_THREAD + 1 of them. A new buffer costs a page fault per
 * 4 KiB page at its first write (here ~10-25 µs per 4 KiB file, more than the file's system
 * calls); a batch that needs more gets a buffer of its own, not kept.
 */
export const PUT_BUFFER_BYTES = 1024 * 1024 + PUT_BATCH_FILES * 32;

/** Where a backend's files go: a batch holds files of one target only. */
export interface PutTarget {
  readonly outDir: string;
  readonly realOutDir: string;
  /** SumRecords' directory. */
  readonly sumsDir: string;
  /** The backend's path counters (one object per backend): they get the batch's lookups. */
  readonly counters: PathCounters;
  /** Where the files are written before they are published (`.stx/partials`), and as messages show it. */
  readonly partialsDir: string;
  readonly shownPartialsDir: string;
}

/** One file to publish, as put.ts asks for it. */
export interface PutRequest {
  /** The stored name, '/'-separated. */
  readonly name: string;
  /** The file written before it is published, in PutTarget.partialsDir: `<id>.put`. */
  readonly temp: string;
  /** The bytes, held (not copied) until the batch is made; the caller keeps them until the job is over. */
  readonly chunks: readonly Uint8Array[];
  readonly mode: number;
  readonly mtime: number;
  readonly how: 'replace' | 'no-clobber';
  /** The SHA-256 to record for the published file; null removes the name's record. */
  readonly sha256: Uint8Array | null;
}

/** What a thread gets: one target, one buffer (transferred, not copied) holding every file's bytes. */
export interface PutBatch {
  readonly kind: 'batch';
  /** The batch's number on its thread: the reply names it. */
  readonly seq: number;
  readonly outDir: string;
  readonly realOutDir: string;
  readonly sumsDir: string;
  readonly partialsDir: string;
  readonly shownPartialsDir: string;
  readonly buffer: ArrayBuffer;
  readonly jobs: PutJobs;
}

/** A file that failed, with its own typed error. */
export interface PutFailure {
  readonly id: number;
  readonly code: ErrorCode;
  readonly message: string;
}

/** The thread's answer: the ids of the files published, the failures, what path checks cost, and the batch's buffer back. */
export interface BatchReply {
  readonly kind: 'batch';
  readonly seq: number;
  readonly done: readonly number[];
  readonly failed: readonly PutFailure[];
  readonly counters: PathCounters;
  readonly buffer: ArrayBuffer;
}

/** A run of MKDIRs (§9.8) for a thread: entries.ts makeDirectoriesSync. */
export interface DirJob {
  readonly kind: 'dir';
  /** The job's number on its thread: the reply names it. */
  readonly seq: number;
  readonly outDir: string;
  readonly entries: readonly DirectoryRequest[];
}

/** The thread's answer to a DirJob: the first `made` are done and durable; `failure` is the next one's typed error, if any. */
export interface DirReply {
  readonly kind: 'dir';
  readonly seq: number;
  readonly made: number;
  readonly failure: { readonly code: ErrorCode; readonly message: string } | null;
}

/** What a thread gets. */
export type ThreadMessage = PutBatch | DirJob;
/** What a thread answers. */
export type ThreadReply = BatchReply | DirReply;

const SHA256_BYTES = 32;

/**
 * The files of one runMany call: each file's outcome (null: published), settled once all are.
 * One object per call, not a promise and two callbacks per file: a pack's 256 files are one call.
 */
class Group {
  readonly outcomes: (StxError | null)[];
  #left: number;
  readonly #settle: (outcomes: (StxError | null)[]) => void;

  constructor(files: number, settle: (outcomes: (StxError | null)[]) => void) {
    this.outcomes = new Array<StxError | null>(files).fill(null);
    this.#left = files;
    this.#settle = settle;
  }

  /** File `index` is over: published (null) or failed. */
  settled(index: number, failure: StxError | null): void {
    this.outcomes[index] = failure;
    if (--this.#left === 0) this.#settle(this.outcomes);
  }
}

interface Waiting {
  readonly id: number;
  readonly request: PutRequest;
  readonly target: PutTarget;
  readonly size: number;
  readonly group: Group;
  /** The file's place in its group. */
  readonly index: number;
}

function sameTarget(a: PutTarget, b: PutTarget): boolean {
  return a.counters === b.counters && a.outDir === b.outDir && a.realOutDir === b.realOutDir && a.sumsDir === b.sumsDir && a.partialsDir === b.partialsDir;
}

/** Batch buffers sent back by the threads, for the next batches (PUT_BUFFER_BYTES). */
const spareBuffers: ArrayBuffer[] = [];

/** Keeps a buffer a thread sent back, if it is of the kept size and fewer than the bound are kept. */
function keepBuffer(buffer: ArrayBuffer): void {
  if (buffer.byteLength === PUT_BUFFER_BYTES && spareBuffers.length <= PUT_THREADS * PUT_BATCHES_PER_THREAD) spareBuffers.push(buffer);
}

/** The batch's message: every file's bytes (and SHA-256) copied into one buffer, a kept one where it fits. */
function batchOf(seq: number, batch: readonly Waiting[], target: PutTarget): PutBatch {
  let total = 0;
  for (const w of batch) total += w.size + (w.request.sha256 === null ? 0 : SHA256_BYTES);
  const spare = total <= PUT_BUFFER_BYTES ? spareBuffers.pop() : undefined;
  const bytes = spare !== undefined ? Buffer.from(spare) : Buffer.allocUnsafeSlow(total <= PUT_BUFFER_BYTES ? PUT_BUFFER_BYTES : total);
  let at = 0;
  const jobs = newPutJobs(batch.length);
  for (let i = 0; i < batch.length; i++) {
    const w = batch[i];
    if (w === undefined) continue;
    const { request: r } = w;
    const start = at;
    for (const c of r.chunks) {
      bytes.set(c, at);
      at += c.length;
    }
    let sha256At = -1;
    if (r.sha256 !== null) {
      if (r.sha256.length !== SHA256_BYTES) throw new Error(`a SHA-256 of ${r.sha256.length} bytes`);
      sha256At = at;
      bytes.set(r.sha256, at);
      at += SHA256_BYTES;
    }
    setJob(jobs, i, { id: w.id, name: r.name, temp: r.temp, at: start, size: w.size, mode: r.mode, mtime: r.mtime, how: r.how, sha256At });
  }
  const { outDir, realOutDir, sumsDir, partialsDir, shownPartialsDir } = target;
  return { kind: 'batch', seq, outDir, realOutDir, sumsDir, partialsDir, shownPartialsDir, buffer: bytes.buffer, jobs };
}

class PutThread {
  readonly worker: Worker;
  /** The batches it works on, by batch number: each its jobs by id. */
  readonly #batches = new Map<number, Map<number, Waiting>>();
  /** Its runs of MKDIRs, by job number. */
  readonly #dirs = new Map<number, { readonly resolve: (made: DirectoriesMade) => void; readonly reject: (err: StxError) => void }>();
  #nextSeq = 1;
  #gone = false;

  constructor(private readonly pool: PutPool) {
    this.worker = new Worker(new URL('./put-thread.js', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (reply: ThreadReply) => {
      if (reply.kind === 'batch') this.#done(reply);
      else this.#made(reply);
    });
    this.worker.on('error', (err) => this.#fail(`the publishing thread failed: ${err.message}`));
    this.worker.on('exit', (code) => this.#fail(`the publishing thread exited (code ${code})`));
  }

  /** It works on a batch. */
  get busy(): boolean {
    return this.#batches.size > 0;
  }

  /** It can take one more batch now. */
  get free(): boolean {
    return this.#batches.size < PUT_BATCHES_PER_THREAD && !this.#gone;
  }

  /** It can take work (it did not fail). */
  get alive(): boolean {
    return !this.#gone;
  }

  /** A run of MKDIRs on the thread: between its batches' steps, never waiting for a batch's sync. */
  makeDirectories(outDir: string, entries: readonly DirectoryRequest[]): Promise<DirectoriesMade> {
    const seq = this.#nextSeq++;
    return new Promise((resolve, reject) => {
      this.#dirs.set(seq, { resolve, reject });
      this.worker.ref();
      this.worker.postMessage({ kind: 'dir', seq, outDir, entries } satisfies DirJob);
    });
  }

  #made(reply: DirReply): void {
    const waiting = this.#dirs.get(reply.seq);
    if (waiting === undefined) return;
    this.#dirs.delete(reply.seq);
    this.#unrefIfIdle();
    waiting.resolve({ made: reply.made, failure: reply.failure === null ? null : errorFor(reply.failure.code, reply.failure.message) });
  }

  #unrefIfIdle(): void {
    if (this.#batches.size === 0 && this.#dirs.size === 0) this.worker.unref();
  }

  start(batch: readonly Waiting[], target: PutTarget): void {
    let message: PutBatch;
    try {
      message = batchOf(this.#nextSeq++, batch, target);
    } catch (err) {
      for (const w of batch) w.group.settled(w.index, new ResourceError('INTERNAL', `internal error: ${err instanceof Error ? err.message : String(err)}`));
      return;
    }
    this.#batches.set(message.seq, new Map(batch.map((w) => [w.id, w])));
    this.worker.ref();
    this.worker.postMessage(message satisfies ThreadMessage, [message.buffer]);
  }

  #done(reply: BatchReply): void {
    keepBuffer(reply.buffer);
    const running = this.#batches.get(reply.seq);
    if (running === undefined) return;
    this.#batches.delete(reply.seq);
    const counters = [...running.values()][0]?.target.counters;
    if (counters !== undefined) {
      counters.lookups += reply.counters.lookups;
      counters.created += reply.counters.created;
      counters.removed += reply.counters.removed;
    }
    for (const id of reply.done) {
      const w = running.get(id);
      if (w === undefined) continue;
      running.delete(id);
      w.group.settled(w.index, null);
    }
    for (const f of reply.failed) {
      const w = running.get(f.id);
      if (w === undefined) continue;
      running.delete(f.id);
      w.group.settled(w.index, errorFor(f.code, f.message));
    }
    // A job the reply did not name was not done: it fails alone.
    for (const w of running.values()) w.group.settled(w.index, new ResourceError('INTERNAL', 'the publishing thread did not answer for a file'));
    this.#unrefIfIdle();
    this.pool.pump();
  }

  #fail(why: string): void {
    if (this.#gone) return;
    this.#gone = true;
    this.#rejectAll(why);
    this.pool.lost(this);
  }

  #rejectAll(why: string): void {
    for (const running of this.#batches.values()) for (const w of running.values()) w.group.settled(w.index, new ResourceError('INTERNAL', why));
    this.#batches.clear();
    for (const d of this.#dirs.values()) d.reject(new ResourceError('INTERNAL', why));
    this.#dirs.clear();
  }
}

class PutPool {
  readonly #waiting: Waiting[] = [];
  readonly #threads: PutThread[] = [];
  #nextId = 1;

  /** Publishes `request` into `target` on a thread; rejects with the file's own typed error. */
  async run(request: PutRequest, target: PutTarget): Promise<void> {
    const [failure] = await this.runMany([request], target);
    if (failure !== null && failure !== undefined) throw failure;
  }

  /**
   * Publishes every file of `requests` into `target`, in order, on a thread; resolves once all
   * are over, with each one's outcome (null: published, else its own typed error). Never rejects.
   */
  runMany(requests: readonly PutRequest[], target: PutTarget): Promise<(StxError | null)[]> {
    if (requests.length === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const group = new Group(requests.length, resolve);
      for (let index = 0; index < requests.length; index++) {
        const request = requests[index];
        if (request === undefined) continue;
        let size = 0;
        for (const c of request.chunks) size += c.length;
        this.#waiting.push({ id: this.#nextId++, request, target, size, group, index });
      }
      this.pump();
    });
  }

  /** Hands waiting jobs to threads that can take a batch, starting threads up to PUT_THREADS. */
  pump(): void {
    while (this.#waiting.length > 0) {
      // While one batch is worked on, another starts only when worth its two syncs: jobs
      // trickling in one by one would otherwise each make a batch of their own.
      const busy = this.#threads.some((t) => t.busy);
      if (busy && this.#waiting.length < PUT_MIN_SECOND_BATCH) return;
      let thread = this.#threads.find((t) => t.free);
      if (thread === undefined && this.#threads.length < PUT_THREADS) this.#threads.push((thread = new PutThread(this)));
      if (thread === undefined) return;
      const batch: Waiting[] = [];
      let bytes = 0;
      // One batch per target (one backend): its counters get the batch's lookups.
      const target = this.#waiting[0]?.target;
      if (target === undefined) return;
      for (let w = this.#waiting[0]; w !== undefined && batch.length < PUT_BATCH_FILES && sameTarget(w.target, target); w = this.#waiting[0]) {
        if (batch.length > 0 && bytes + w.size > PUT_BATCH_BYTES) break;
        bytes += w.size;
        batch.push(w);
        this.#waiting.shift();
      }
      thread.start(batch, target);
    }
  }

  /**
   * A run of MKDIRs (§9.8) on a publishing thread, started if none runs: the first `made` are
   * done and durable, `failure` is the next one's typed error; rejects only if the thread died.
   */
  makeDirectories(outDir: string, entries: readonly DirectoryRequest[]): Promise<DirectoriesMade> {
    let thread = this.#threads.find((t) => t.alive);
    if (thread === undefined) this.#threads.push((thread = new PutThread(this)));
    return thread.makeDirectories(outDir, entries);
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
