// When a connection reads from its socket (STYLE.md "pauses as a set of named reasons"): each
// part of the server that needs the peer to wait holds the gate with its reason, and the socket
// reads again only once no reason is left. TCP then pushes back on the peer.

import type { BodyBuffers } from '../crypto/channel.js';
import type { MemoryBudget, MemoryUser } from '../transfer/budget.js';

/** What the gate needs of a connection's transport: a net.Socket, or a test's in-memory one. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export type PauseReason =
  /** An asynchronous step (OPEN, END) runs; frames behind it wait (§11.1). */
  | 'step'
  /** The upload's write queue, the shared byte budget or the hashing backlog is full. */
  | 'disk'
  /** The peer does not read what we send (MAX_UNREAD_OUTPUT_BYTES, MAX_UNREAD_OUTPUT_RECORDS). */
  | 'peer-not-reading'
  /** The memory budget (--max-memory) is reached and this connection holds among the most. */
  | 'memory'
  /** It waits in line for a long record's buffer (--max-memory: MemoryBudget.admit). */
  | 'record-buffer'
  /** PUTs not yet answered fill the connection's queue, or a command waits for them to be answered (§9.11). */
  | 'puts'
  /** GOAWAY: nothing more is read (§9.6). */
  | 'shutdown';

export class ReadGate {
  readonly #reasons = new Set<PauseReason>();
  #closed = false;

  constructor(private readonly socket: Pausable) {}

  /** Whether `reason` holds the gate now. */
  holds(reason: PauseReason): boolean {
    return this.#reasons.has(reason);
  }

  /** The reasons holding it now (for the log of a connection that timed out). */
  get reasons(): PauseReason[] {
    return [...this.#reasons];
  }

  hold(reason: PauseReason): void {
    this.#reasons.add(reason);
    this.socket.pause();
  }

  /** Drops `reason`; reads again if it was the last one and the connection is open. */
  release(reason: PauseReason): void {
    this.#reasons.delete(reason);
    if (this.#reasons.size === 0 && !this.#closed) this.socket.resume();
  }

  /** The connection is closing: nothing resumes it any more. */
  close(): void {
    this.#closed = true;
  }
}

/** BodyBuffers, and the wait for the buffer of a record expected next (see admittedBuffers). */
export interface RecordBuffers extends BodyBuffers {
  /**
   * The next record is expected to be a long one of about `bodyBytes` (DATA after OPEN_OK): if the
   * memory budget would not admit its buffer now, the connection waits in line before it reads
   * any of it, rather than read a socket chunk (64 KiB) and hold it while it waits.
   */
  expect(bodyBytes: number): void;
  /** Called back by the budget (in a later turn than its resume()): takes the expected record's buffer now. */
  claim(): void;
  /** The connection closes: a buffer taken ahead goes back. */
  drop(): void;
}

/**
 * The buffers a connection opens long records into (§8), as far as the memory budget admits
 * them: while it waits in line for one the gate holds 'record-buffer', and the hold goes as soon
 * as one is admitted, whether the budget called it back or another turn of the event loop asked
 * again first (which once left the connection admitted yet not reading, until the idle timeout).
 * A connection that expects a long record waits in line before reading it (expect()), and takes
 * the buffer as soon as it is called back (claim()), so that a client that stops sending then
 * holds the line up no more than one that stopped in the middle of a record.
 */
export function admittedBuffers(gate: ReadGate, bodies: BodyBuffers, memory: MemoryBudget | undefined, user: MemoryUser): RecordBuffers {
  /** Body bytes of the record expected while waiting for its buffer, or 0. */
  let expecting = 0;
  /** Its buffer, taken once admitted and before the record arrived. */
  let ready: Buffer | null = null;
  const take = (bytes: number): Buffer | null => {
    if (memory !== undefined && !memory.admit(user, bytes)) {
      gate.hold('record-buffer');
      return null;
    }
    if (gate.holds('record-buffer')) gate.release('record-buffer');
    return bodies.take(bytes);
  };
  return {
    take: (bytes) => {
      expecting = 0;
      const taken = ready;
      ready = null;
      if (taken === null) return take(bytes);
      if (taken.length >= bytes && taken.length <= 2 * bytes) return taken;
      // Not the record expected: its buffer goes back and this one is taken as it would have been.
      bodies.give(taken);
      return take(bytes);
    },
    give: (buffer) => bodies.give(buffer),
    expect: (bodyBytes) => {
      if (memory === undefined || ready !== null || memory.admit(user, bodyBytes)) return;
      expecting = bodyBytes;
      gate.hold('record-buffer');
    },
    claim: () => {
      if (expecting === 0 || memory === undefined) return;
      if (!memory.admit(user, expecting)) {
        gate.hold('record-buffer');
        return;
      }
      ready = bodies.take(expecting);
      expecting = 0;
      if (gate.holds('record-buffer')) gate.release('record-buffer');
    },
    drop: () => {
      expecting = 0;
      if (ready !== null) bodies.give(ready);
      ready = null;
    },
  };
}
