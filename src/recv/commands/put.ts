// PUT (spec/PROTOCOL.md §9.11, revision 1.4): a whole small file, its DATA and END sent at once
// without waiting for an answer, answered later by PUT_DONE or PUT_FAILED in the order of the
// PUTs. The connection reads on while earlier PUTs are written, made durable and published; each
// one runs as a job of its own (store.put), many at a time, so their syncs overlap and a batch of
// them costs about what one costs (storage/local/put.ts). The queue below is what a connection
// holds of them: bounded in PUTs and bytes, and reading stops ('puts') while it is full.
import { StxError, wireNumber, ResourceError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { MAX_PUT_PENDING_BYTES, MAX_PUTS_PENDING } from '../config.js';
import type { PauseReason } from '../read-gate.js';

type Answer = Extract<Frame, { type: 'PUT_DONE' | 'PUT_FAILED' }>;

interface Pending {
  readonly bytes: number;
  answer: Answer | undefined;
}

/** One connection's PUTs not yet answered, answered strictly in the order they came (§9.11). */
export class PutQueue {
  readonly #pending: Pending[] = [];
  #bytes = 0;
  #idle: (() => void)[] = [];

  constructor(
    private readonly send: (answer: Answer) => void,
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

  /** Takes a PUT's job (never rejects: every failure is an answer); reading stops while the queue is full. */
  add(job: Promise<Answer>, bytes: number): void {
    const entry: Pending = { bytes, answer: undefined };
    this.#pending.push(entry);
    this.#bytes += bytes;
    if (this.#full()) this.gate.hold('puts');
    void job.then((answer) => {
      entry.answer = answer;
      this.#flush();
    });
  }

  /** Resolves once every PUT received so far is answered (at once if none waits). */
  idle(): Promise<void> {
    if (this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #full(): boolean {
    return this.#pending.length >= MAX_PUTS_PENDING || this.#bytes >= MAX_PUT_PENDING_BYTES;
  }

  /** Sends the answers at the head that are ready, in order. */
  #flush(): void {
    for (let head = this.#pending[0]; head?.answer !== undefined; head = this.#pending[0]) {
      this.#pending.shift();
      this.#bytes -= head.bytes;
      if (!this.closed()) this.send(head.answer);
    }
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
