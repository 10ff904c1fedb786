// PUT (spec/PROTOCOL.md §9.11, revision 1.4): a whole small file, its DATA and END sent at once
// without waiting for an answer, answered later by PUT_DONE or PUT_FAILED in the order of the
// PUTs. The connection reads on while earlier PUTs are written, made durable and published; each
// one runs as a job of its own (store.put), many at a time, so their syncs overlap and a batch of
// them costs about what one costs (storage/local/put.ts). The queue below is what a connection
// holds of them: bounded in PUTs and bytes, and reading stops ('puts') while it is full.
// PUT_INLINE (revision 1.6) is a PUT in one record; on a connection that sent one, runs of
// answers ready together go out as one PUTS_DONE.
import { StxError, wireNumber, ResourceError, UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { MAX_PUTS_PER_DONE } from '../../proto/limits.js';
import { MAX_DETACHED_PENDING, MAX_PUT_PENDING_BYTES, MAX_PUTS_PENDING } from '../config.js';
import type { PauseReason } from '../read-gate.js';
import type { FinishResult, PutItem } from '../store.js';
import type { BodyLease } from '../../transfer/body-pool.js';
import type { CommandLink, Tagged } from './command.js';

export type Answer = Extract<Frame, { type: 'PUT_DONE' | 'PUT_FAILED' }>;
/** What goes on the wire for the answers: one each, or a run of PUT_DONE as one PUTS_DONE (§9.11). */
type AnswerFrame = Answer | Extract<Frame, { type: 'PUTS_DONE' }>;

interface Pending {
  readonly bytes: number;
  /** The file's name as the client sent it: one that is valid is its stored name (§9.3). */
  readonly name: string;
  /** An OPEN upload ended by END_DETACHED (§9.1), not a PUT: bounded apart (MAX_DETACHED_PENDING). */
  readonly detached: boolean;
  answer: Answer | undefined;
  /** Called once the answer went out (or the connection closed before): whenFree's waiters; made by the first. */
  answered: (() => void)[] | undefined;
}

/** One connection's PUTs not yet answered, answered strictly in the order they came (§9.11). */
export class PutQueue {
  readonly #pending: Pending[] = [];
  #bytes = 0;
  /** Detached uploads among the pending. */
  #detached = 0;
  /** The last pending entry of each name (§9.11 step 4: a command of that name waits for it). */
  readonly #last = new Map<string, Pending>();
  #idle: (() => void)[] = [];
  /** The client sent a PUT_INLINE, so it reads PUTS_DONE (§9.11 step 7). */
  #batching = false;
  /** A flush is due at the next turn of the event loop. */
  #flushDue = false;

  constructor(
    private readonly send: (answer: AnswerFrame) => void,
    private readonly gate: { hold(r: PauseReason): void; release(r: PauseReason): void },
    private readonly closed: () => boolean,
  ) {}

  /** PUTs received and not yet answered. */
  get size(): number {
    return this.#pending.length;
  }

  /** Bytes of data those PUTs hold. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The client sent a PUT_INLINE: from now on answers ready together may go as one PUTS_DONE. */
  allowBatches(): void {
    this.#batching = true;
  }

  /** Detached uploads received and not yet answered (§9.1). */
  get detached(): number {
    return this.#detached;
  }

  /**
   * Resolves once no PUT or detached upload of `name` waits for its answer; null if none does now.
   * An OPEN, RANGE or PUT of that name waits for it (§9.11 step 4), so a file is never opened
   * again, by this connection, while its publish runs.
   */
  whenFree(name: string): Promise<void> | null {
    const last = this.#last.get(name);
    if (last === undefined) return null;
    return new Promise((resolve) => (last.answered ??= []).push(resolve));
  }

  /**
   * Takes a PUT's or a detached upload's job (never rejects: every failure is an answer); reading
   * stops while the queue is full.
   */
  add(job: Promise<Answer>, bytes: number, name: string, detached = false): void {
    const entry: Pending = { bytes, name, detached, answer: undefined, answered: undefined };
    this.#pending.push(entry);
    this.#bytes += bytes;
    this.#last.set(name, entry);
    if (detached) this.#detached++;
    if (this.#full()) this.gate.hold('puts');
    void job.then((answer) => {
      entry.answer = answer;
      // The jobs of a sync batch settle in one turn: their answers leave together at the next.
      if (this.#flushDue) return;
      this.#flushDue = true;
      setImmediate(() => this.#flush());
    });
  }

  /** Whether no PUT or detached upload of `name` waits for its answer (whenFree would be null). */
  isFree(name: string): boolean {
    return !this.#last.has(name);
  }

  /**
   * Takes the one job of many PUTs (a pack's, §9.11 step 8), in order: `job` resolves with each
   * one's answer, in the order of `files` (never rejects). As add() for each, with one promise.
   */
  addAll(job: Promise<readonly Answer[]>, files: readonly { readonly name: string; readonly size: number }[]): void {
    const entries: Pending[] = [];
    for (const file of files) {
      const entry: Pending = { bytes: file.size, name: file.name, detached: false, answer: undefined, answered: undefined };
      entries.push(entry);
      this.#pending.push(entry);
      this.#bytes += file.size;
      this.#last.set(file.name, entry);
    }
    if (this.#full()) this.gate.hold('puts');
    void job.then((answers) => {
      for (let i = 0; i < entries.length; i++) {
        const entry = entries[i];
        if (entry !== undefined) entry.answer = answers[i] ?? failedAnswer(new ResourceError('INTERNAL', 'no answer for a file of the pack'));
      }
      if (this.#flushDue) return;
      this.#flushDue = true;
      setImmediate(() => this.#flush());
    });
  }

  /** Resolves once every PUT received so far is answered (at once if none waits). */
  idle(): Promise<void> {
    if (this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #full(): boolean {
    return this.#pending.length >= MAX_PUTS_PENDING || this.#bytes >= MAX_PUT_PENDING_BYTES || this.#detached >= MAX_DETACHED_PENDING;
  }

  /** Sends the answers at the head that are ready, in order: runs of PUT_DONE as PUTS_DONE when the client reads it. */
  #flush(): void {
    this.#flushDue = false;
    let run: Extract<Answer, { type: 'PUT_DONE' }>[] = [];
    const sendRun = (): void => {
      if (run.length === 0 || this.closed()) return;
      const [only] = run;
      this.send(run.length === 1 && only !== undefined ? only : { type: 'PUTS_DONE', sha256s: Buffer.concat(run.map((a) => a.sha256)) });
      run = [];
    };
    const done: Pending[] = [];
    for (let head = this.#pending[0]; head?.answer !== undefined; head = this.#pending[0]) {
      this.#pending.shift();
      if (head.answered !== undefined) done.push(head);
      this.#bytes -= head.bytes;
      if (head.detached) this.#detached--;
      if (this.#last.get(head.name) === head) this.#last.delete(head.name);
      const answer = head.answer;
      if (this.#batching && answer.type === 'PUT_DONE') {
        run.push(answer);
        if (run.length === MAX_PUTS_PER_DONE) sendRun();
        continue;
      }
      sendRun();
      if (!this.closed()) this.send(answer);
    }
    sendRun();
    for (const entry of done) for (const resolve of entry.answered ?? []) resolve();
    if (!this.#full() && !this.closed()) this.gate.release('puts');
    if (this.#pending.length === 0) {
      const waiting = this.#idle;
      this.#idle = [];
      for (const resolve of waiting) resolve();
    }
  }
}

/** What a PUT job answers for a failure: its code on the wire, the file alone failed (§9.11). */
export function failedAnswer(err: unknown): Answer {
  const stx = err instanceof StxError ? err : new ResourceError('INTERNAL', 'internal error', { cause: err });
  return { type: 'PUT_FAILED', code: wireNumber(stx.code), message: stx.message.slice(0, 1000) };
}

/** A PUT's file, as PUT or PUT_INLINE names it (§9.11). */
export interface PutFile {
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
}

/**
 * Starts the job of a PUT received whole (§9.11): checked and published by the store, its answer
 * joins the queue in order; `release` lets go of its data once the job is over.
 */
export function runPut(link: CommandLink<Tagged>, file: PutFile, chunks: readonly Buffer[], sha256: Buffer, release: () => void): void {
  const started = Date.now();
  const store = (): Promise<FinishResult> =>
    link.store.put({ principal: link.principal(), source: link.remoteAddress, name: file.name, size: file.size, mtime: file.mtime, mode: file.mode }, chunks, sha256, link.policy);
  // A PUT of a name whose earlier PUT or detached upload is still being published waits for it (§9.11 step 4).
  const earlier = link.puts.whenFree(file.name);
  const job = (earlier === null ? store() : earlier.then(store))
    .then(
      (result): Answer => {
        link.log.debug({ event: 'put', client: link.principal(), name: result.name, size: file.size, unchanged: result.unchanged, ms: Date.now() - started }, 'file put');
        return { type: 'PUT_DONE', size: result.size, sha256: result.sha256 };
      },
      (err: unknown) => {
        link.log.info({ event: 'put', outcome: 'failed', client: link.principal(), name: file.name, code: err instanceof StxError ? err.code : 'INTERNAL', reason: err instanceof Error ? err.message : String(err) }, 'file put failed');
        return failedAnswer(err);
      },
    )
    .finally(release);
  link.puts.add(job, file.size, file.name);
}

/**
 * Starts the one job of many PUTs received whole (a pack's, §9.11 step 8): each file checked and
 * published by the store as runPut's would be (Store.putMany), their answers joining the queue in
 * order; `release` lets go of their data once all are over. No file of `files` may share its name
 * with another of them or with a PUT still waiting for its answer (the caller sends those through
 * runPut, which waits, §9.11 step 4).
 */
export function runPuts(link: CommandLink<Tagged>, files: readonly PutItem[], release: () => void): void {
  const started = Date.now();
  const job = link.store
    .putMany(link.principal(), link.remoteAddress, files, link.policy)
    .then(
      (outcomes) =>
        outcomes.map((outcome, i): Answer => {
          const file = files[i];
          if (!(outcome instanceof StxError)) {
            if (link.log.isLevelEnabled('debug')) {
              link.log.debug({ event: 'put', client: link.principal(), name: outcome.name, size: outcome.size, unchanged: outcome.unchanged, ms: Date.now() - started }, 'file put');
            }
            return { type: 'PUT_DONE', size: outcome.size, sha256: outcome.sha256 };
          }
          link.log.info({ event: 'put', outcome: 'failed', client: link.principal(), name: file?.name, code: outcome.code, reason: outcome.message }, 'file put failed');
          return failedAnswer(outcome);
        }),
      (err: unknown) => files.map(() => failedAnswer(err)),
    )
    .finally(release);
  link.puts.addAll(job, files);
}

/**
 * PUT_INLINE (§9.11 step 6): a whole file in one record, in Ready, which the connection stays in.
 * Its data stays where the record was opened: a control record's body is a buffer of its own
 * (crypto/record.ts open(), never pooled or reused), which the job holds, counted as held, until
 * it is over. The local backend copies the bytes once more, for its publishing thread.
 */
export function putInline(frame: Extract<Frame, { type: 'PUT_INLINE' }>, link: CommandLink<Tagged>): void {
  const data = frame.data;
  link.held(data.length);
  link.puts.allowBatches();
  runPut(link, { name: frame.name, size: data.length, mtime: frame.mtime, mode: frame.mode }, [data], frame.sha256, () => link.held(-data.length));
}

/**
 * Short DATA frames (not in a pooled record: no lease) are copied into buffers of up to this many
 * bytes, one after the other, rather than each into a buffer of its own: a client could otherwise
 * send a PUT's MiB as a million 1-byte DATA frames and have the daemon hold a million buffers,
 * each costing far more than its byte (the held count would say 1 MiB).
 */
export const COPY_BUFFER_BYTES = 64 * 1024;

/** The DATA of a PUT or a PUT_PACK so far (§9.11), each chunk held until the jobs that read it are over. */
export interface HeldData {
  readonly chunks: Buffer[];
  readonly leases: BodyLease[];
  received: number;
  /** Bytes of the copy buffers (held on the connection's account). */
  copied: number;
  /** The copy buffer short DATA frames go into next, and how much of it is used; the last of `chunks` views it. */
  tail?: { readonly buffer: Buffer; used: number } | undefined;
}

/**
 * Takes one DATA of `what`: from 0, each where the last ended, never beyond `size` (else
 * BAD_OFFSET). With a lease, `data` is held as it is; without, it is copied (it may be a view of a
 * buffer about to be reused), so the caller need not copy it.
 */
export function holdData(held: HeldData, size: number, what: string, offset: number, data: Buffer, lease: BodyLease | undefined, link: { held(bytes: number): void }): void {
  if (offset !== held.received || offset + data.length > size) {
    lease?.release();
    throw new UploadError('BAD_OFFSET', `${what} DATA at ${offset} (${data.length} bytes) where ${held.received} of ${size} was next`);
  }
  if (lease !== undefined) {
    held.chunks.push(data);
    held.leases.push(lease);
    held.tail = undefined;
  } else {
    for (let from = 0; from < data.length; ) {
      let tail = held.tail;
      if (tail === undefined || tail.used === tail.buffer.length) {
        // At most what is still to come (size bounds it: MAX_PUT_SIZE, MAX_PACK_BYTES).
        const bytes = Math.min(COPY_BUFFER_BYTES, size - held.received - from);
        tail = held.tail = { buffer: Buffer.allocUnsafeSlow(bytes), used: 0 };
        held.copied += bytes;
        link.held(bytes);
        held.chunks.push(tail.buffer.subarray(0, 0));
      }
      const n = data.copy(tail.buffer, tail.used, from);
      tail.used += n;
      from += n;
      held.chunks[held.chunks.length - 1] = tail.buffer.subarray(0, tail.used);
    }
  }
  held.received += data.length;
}

/** Gives back what `held` holds: its chunks' leases, and the count of copied bytes. */
export function releaseData(held: HeldData, link: { held(bytes: number): void }): void {
  for (const lease of held.leases.splice(0)) lease.release();
  held.chunks.length = 0;
  held.tail = undefined;
  if (held.copied > 0) link.held(-held.copied);
  held.copied = 0;
}
