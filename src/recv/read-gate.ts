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

/**
 * The buffers a connection opens long records into (§8), as far as the memory budget admits
 * them: while it waits in line for one the gate holds 'record-buffer', and the hold goes as soon
 * as one is admitted, whether the budget called it back or another turn of the event loop asked
 * again first (which once left the connection admitted yet not reading, until the idle timeout).
 */
export function admittedBuffers(gate: ReadGate, bodies: BodyBuffers, memory: MemoryBudget | undefined, user: MemoryUser): BodyBuffers {
  return {
    take: (bytes) => {
      if (memory !== undefined && !memory.admit(user, bytes)) {
        gate.hold('record-buffer');
        return null;
      }
      if (gate.holds('record-buffer')) gate.release('record-buffer');
      return bodies.take(bytes);
    },
    give: (buffer) => bodies.give(buffer),
  };
}
