// The one retry policy of stx-send (spec/PROTOCOL.md §10): after a transient error, reconnect with
// backoff until the attempts without progress run out (--retries) and --retry-for has passed;
// after any other error, stop. Used for one file (upload.ts), a tree (tree.ts) and a stream.
import { ResourceError, StxError } from '../proto/errors.js';
import { ConnectFailed } from './connection.js';

export interface RetryOptions {
  /** Consecutive failed attempts (without progress) before giving up. */
  readonly retries: number;
  /** Keep retrying for this long without progress, even past `retries`. */
  readonly retryForMs?: number | undefined;
  readonly backoffMs?: number | undefined;
  readonly maxBackoffMs?: number | undefined;
  readonly onEvent?: ((message: string) => void) | undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Whether a failed attempt should be retried: §10's transient column, nothing else. */
export function isTransient(err: unknown): boolean {
  return err instanceof StxError && err.transient;
}

export class Retry {
  #failures = 0;
  /** When the current run of attempts without progress began (for --retry-for). */
  #failingSince = 0;

  constructor(private readonly opts: RetryOptions) {}

  /** A job step succeeded: the next failure starts a new count. */
  reset(): void {
    this.#failures = 0;
  }

  /**
   * After a failed attempt: rethrows `err` when it is not worth a retry (or TIMEOUT once the budget
   * is spent), else waits the backoff. `progressed`: the attempt moved the job on (the server
   * holds more than before), which starts the count again. `handshakes`: how many worked so far.
   */
  async after(err: unknown, progressed: boolean, handshakes: number): Promise<void> {
    if (!isTransient(err)) throw err;
    // Refused, or a name that does not resolve, before any handshake ever worked: a typo or a
    // server that is not running, which nine attempts over half a minute do not fix. Once a
    // handshake worked, the same errors mean the server is restarting or the link is down.
    if (err instanceof ConnectFailed && handshakes === 0) throw err;
    const opts = this.opts;
    const now = Date.now();
    this.#failures = progressed ? 1 : this.#failures + 1;
    if (this.#failures === 1) this.#failingSince = now;
    const failures = this.#failures;
    const withinTime = opts.retryForMs !== undefined && now - this.#failingSince < opts.retryForMs;
    const reason = err instanceof Error ? err.message : String(err);
    if (failures > opts.retries && !withinTime) {
      const seconds = ((now - this.#failingSince) / 1000).toFixed(1);
      throw new ResourceError('TIMEOUT', `gave up after ${failures} attempts without progress over ${seconds} s: ${reason}`, { cause: err });
    }
    const base = Math.min((opts.backoffMs ?? 250) * 2 ** (failures - 1), opts.maxBackoffMs ?? 10_000);
    const wait = Math.round(base / 2 + (Math.random() * base) / 2);
    const budget =
      opts.retryForMs === undefined
        ? `attempt ${failures + 1} of ${opts.retries + 1}`
        : `attempt ${failures + 1}, retrying for another ${Math.max(0, Math.ceil((opts.retryForMs - (now - this.#failingSince)) / 1000))} s under --retry-for`;
    opts.onEvent?.(`${reason}; reconnecting in ${(wait / 1000).toFixed(1)} s (${budget})`);
    await sleep(wait);
  }
}
