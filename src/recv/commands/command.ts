// What a command (upload, list, get: one file each here) and the connection it runs on offer
// each other. The connection owns the one state value and the rules
// of §11.1; a command owns the states it runs in (upload: Opening, Receiving, Verifying) and the
// data they carry, and moves between them only through its link.
import type { FrameChannel } from '../../crypto/channel.js';
import type { Frame } from '../../proto/frames.js';
import type { ServerState } from '../../proto/states.js';
import type { BodyLease } from '../../transfer/body-pool.js';
import type { Logger } from 'pino';
import type { PauseReason } from '../read-gate.js';
import type { DataSink } from '../../transfer/sender.js';
import type { KnownDigests } from '../digests.js';
import type { Namespace } from '../namespace.js';
import type { OpenPolicy, Store } from '../store.js';
import type { PutQueue } from './put.js';

/** A state of the connection, as far as a command needs to tell them apart. */
export interface Tagged {
  readonly kind: ServerState;
}

/** Where a command's work ends: back in Ready, for the next command. */
export interface ReadyState {
  readonly kind: 'Ready';
}

/** The connection, as a command sees it. `S` is the command's own states. */
export interface CommandLink<S extends Tagged> {
  /** The connection's state now. */
  now(): Tagged;
  closed(): boolean;
  /** Moves to `next`, whose name the last received frame's transition already gave (§11.1). */
  enter(next: S | ReadyState): void;
  /** Sends `frame`; where §11.1 moves the state on sending it, `next` is the state it moves to. */
  send(frame: Frame, next?: S | ReadyState): void;
  /** ERROR with the code, then close (the one way out on a failure). */
  fail(err: unknown): void;
  hold(reason: PauseReason): void;
  release(reason: PauseReason): void;
  holds(reason: PauseReason): boolean;
  readonly channel: FrameChannel;
  /**
   * The MKDIRs already received right behind the one being started, at most `max`, taken out of
   * the channel in order (a run, §9.8 "Pipelined", revision 1.14); each will be received in Ready
   * after the MADE of the one before. The first frame of another type waits for the step to settle.
   */
  takeMkdirs(max: number): Extract<Frame, { type: 'MKDIR' }>[];
  readonly store: Store;
  /** What the client may do with uploads, MKDIR and SYMLINK (its rights, §7.4). */
  readonly policy: OpenPolicy;
  /** The stored directory the client's names live under (namespace.ts, §7.4). */
  readonly namespace: Namespace;
  /** "anonymous" or the client's fingerprint (§7.4). */
  principal(): string;
  /** The client's source address (what an anonymous client is charged as, §9.5). */
  readonly remoteAddress: string | undefined;
  readonly log: Logger;
  /** Buffers of `bytes` that are garbage now (runtime/young-gc.ts). */
  dropped(bytes: number): void;
  /** Bytes the command holds in memory besides leases (a PUT's copied DATA), negative when it lets go. */
  held(bytes: number): void;
  /** PUTs received and not yet answered (§9.11). */
  readonly puts: PutQueue;
  /** Whether the client may list and download (`--allow-download`, its key's options: §7.4, §9.9, §9.10). */
  readonly downloads: boolean;
  /** SHA-256 values of published files read whole before (§9.10). */
  readonly digests: KnownDigests;
  /**
   * DATA to the client (§9.9) with TCP as the flow control: sendData() says false once the
   * socket holds MAX_SERVE_OUTPUT_BYTES; drain() resolves below it and rejects once closed.
   */
  readonly output: DataSink;
}

/**
 * One command: started by a frame received in Ready, then handed every frame (and every long
 * DATA record) received in its states, after the connection checked it against §11.1.
 * A returned promise is an asynchronous step: the connection reads nothing new until it settles.
 */
export interface Command<S extends Tagged> {
  /** Whether `state` is one of this command's. */
  owns(state: Tagged): state is S;
  start(frame: Frame, link: CommandLink<S>): Promise<void> | undefined;
  receive(state: S, frame: Frame, link: CommandLink<S>): Promise<void> | undefined;
  /** A DATA frame opened into a pooled buffer; `lease` is held for it (release it, or pass it on). */
  receiveData(state: S, offset: number, data: Buffer, lease: BodyLease, link: CommandLink<S>): void;
  /** Shutdown (§9.6): make durable what can be, before GOAWAY. */
  settle(state: S): Promise<void>;
  /** Teardown from the connection's close(): stop what runs, let go of what is held. */
  close(state: S, reason: string, err: unknown, link: CommandLink<S>): Promise<void>;
}
