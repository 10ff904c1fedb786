// One client connection of stx-recv (spec/PROTOCOL.md §6, §9, §11.1): transport bytes in, frames
// checked against the server's tables, the handshake (handshake.ts), then commands
// (commands/upload.ts, list.ts, get.ts). The connection holds ONE state, tagged with the spec's state names.
// Every way out goes through close().
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { FrameChannel, type BodyBuffers, type Received, type ReceivedData } from '../crypto/channel.js';
import { CryptoError, ResourceError, StxError, codeFromWire, wireNumber, type ErrorCode } from '../proto/errors.js';
import type { Frame, FrameName } from '../proto/frames.js';
import { encodePreamble } from '../proto/preamble.js';
import { SERVER_RULES, nextState, resumedAfter, type ServerState } from '../proto/states.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';
import type { BodyPool, LeaseAccount } from '../transfer/body-pool.js';
import type { MemoryBudget, MemoryUser } from '../transfer/budget.js';
import { Coalescer, type CoalescedChunk } from '../transfer/coalescer.js';
import type { Command, CommandLink, ReadyState } from './commands/command.js';
import { getCommand, type GetState } from './commands/get.js';
import { listCommand, type ListState } from './commands/list.js';
import { uploadCommand, type UploadState } from './commands/upload.js';
import { PutQueue, putInline } from './commands/put.js';
import {
  MAX_SERVE_OUTPUT_BYTES,
  MAX_UNREAD_OUTPUT_BYTES,
  MAX_UNREAD_OUTPUT_RECORDS,
  OUTPUT_RECORD_OVERHEAD_BYTES,
  YOUNG_GC_INTERVAL_BYTES,
} from './config.js';
import { KnownDigests } from './digests.js';
import type { HandshakeTicket } from './admission.js';
import { admits, rightsOf, type Access, type Rights } from './access.js';
import { beginHandshake, readPreamble, respond, type HandshakeLink, type HandshakeState } from './handshake.js';
import { ReadGate, admittedBuffers, type PauseReason } from './read-gate.js';
import type { OpenPolicy, Store } from './store.js';

/**
 * What a connection needs of its byte stream: a net.Socket is one; tests use an in-memory one.
 * Events: 'data' (a Buffer), 'end', 'error', 'close', 'drain'; setTimeout() as net.Socket's
 * (the callback runs after `ms` without activity).
 */
export interface Transport {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly writableLength: number;
  /** A write returned false (the buffer passed its high-water mark): 'drain' will follow. */
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  write(bytes: Buffer): unknown;
  /** Holds writes until uncork(), which hands them on together (net.Socket: one writev). */
  cork(): unknown;
  uncork(): unknown;
  end(): unknown;
  destroy(): unknown;
  pause(): unknown;
  resume(): unknown;
  setTimeout(ms: number, onTimeout: () => void): unknown;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  on(event: 'end' | 'close', listener: () => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

export interface ConnectionContext {
  readonly serverKey: KeyObject;
  readonly authorizedKeys: ReadonlySet<string> | null;
  /**
   * Who may connect and what each client may do (access.ts, §7.4); without it, `authorizedKeys`
   * decides who connects and the daemon's flags below hold for every client, in the whole directory.
   */
  readonly access?: Access | undefined;
  readonly store: Store;
  readonly appendOnly: boolean;
  readonly maxFileBytes: number | undefined;
  /** Serve LIST and GET (`--allow-download`, §9.9, §9.10); NOT_ALLOWED otherwise. */
  readonly allowDownload?: boolean | undefined;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** What all connections may hold in memory (--max-memory); none in tests that do not ask. */
  readonly memory?: MemoryBudget | undefined;
  readonly log: Logger;
  /** This connection's place among the handshakes in progress (admission.ts), if the server counts them. */
  readonly handshake?: HandshakeTicket | undefined;
}

/** The connection's one state (§11.1): each variant carries only what is valid in it. */
export type State =
  | HandshakeState
  /** CLIENT_FINISHED checked out; SERVER_FINISHED goes out next (§6). */
  | { readonly kind: 'Confirming' }
  | ReadyState
  | CommandState
  | { readonly kind: 'Closed' };

/** The states commands run in, each command's own (§11.1). */
type CommandState = UploadState | ListState | GetState;

/** The commands a client may start in Ready (§9): each owns its states. */
const COMMANDS: readonly Command<CommandState>[] = [uploadCommand, listCommand, getCommand];

/** The command that owns `state`, if a command does. */
function commandOf(state: State): { command: Command<CommandState>; state: CommandState } | undefined {
  for (const command of COMMANDS) if (command.owns(state)) return { command, state };
  return undefined;
}

/** SHA-256 values of published files, one table per store (recv/digests.ts). */
const DIGESTS = new WeakMap<Store, KnownDigests>();
function digestsOf(store: Store): KnownDigests {
  let digests = DIGESTS.get(store);
  if (digests === undefined) DIGESTS.set(store, (digests = new KnownDigests()));
  return digests;
}

/** The states of the handshake (§11.1), whose answers pump() writes together. */
const HANDSHAKE_STATES: ReadonlySet<State['kind']> = new Set(['AwaitClientHello', 'AwaitKeyExchange', 'AwaitClientFinished']);

/** Records up to this length go out as one write (sendRaw); longer ones are not copied. */
const CONCAT_RECORD_BYTES = 64 * 1024;

/** Every connection reports the buffers it drops here (transport reads, opened records). */
const youngGc = new YoungGenerationCollector(YOUNG_GC_INTERVAL_BYTES);

/** Crypto failures look alike on the wire (§10); the detail goes to the local log. */
const WIRE_MESSAGE: Partial<Record<ErrorCode, string>> = {
  HANDSHAKE_FAILED: 'handshake failed',
  DECRYPT_FAILED: 'a record failed to authenticate',
};

/** Sends a plaintext ERROR before any handshake and closes (connection limit, §9.6). */
export function refuse(transport: Transport, code: ErrorCode, message: string): void {
  const channel = new FrameChannel();
  transport.on('error', () => transport.destroy());
  transport.write(Buffer.concat([encodePreamble(), ...channel.encode({ type: 'ERROR', code: wireNumber(code), message })]));
  transport.end();
  // Whatever the client sent is read and dropped, so that its close is seen and the socket goes
  // at once (an unread socket would wait for the timer below, and hold shutdown meanwhile).
  transport.resume();
  setTimeout(() => transport.destroy(), 1000).unref();
}

export class Connection {
  readonly id: number;
  private readonly channel = FrameChannel.controlOnly();
  private state: State;
  private client: string | null = null;
  /** What the client may do, fixed when its handshake ended (access.ts); none before. */
  private rights: Rights | null = null;
  /** The asynchronous step (OPEN, END) in progress, if any; the gate holds 'step' meanwhile. */
  private busy: Promise<void> | null = null;
  private readonly gate: ReadGate;
  private handshakeTimer: NodeJS.Timeout | null;
  private uploads = 0;
  /** Resolves once close() let go of everything the connection held (its upload released). */
  private readonly released: Promise<void>;
  private onReleased: (() => void) | null = null;
  private readonly bodies: BodyPool;
  private readonly log: Logger;
  private readonly handshakeLink: HandshakeLink;
  private readonly commandLink: CommandLink<CommandState>;
  /** Commands waiting for the socket to take more (CommandLink.output.drain). */
  private readonly drainWaiters = new Set<{ resolve: () => void; reject: (err: Error) => void }>();
  /** Small DATA chunks copied together until the end of the socket read (transfer/coalescer.ts). */
  private readonly coalescer: Coalescer;
  /** Body buffers this connection holds through leases (queued, hashing, being coalesced). */
  private leasedBytes = 0;
  /** Records written since the socket's buffer was last empty: an upper bound of those not yet sent. */
  private unsentRecords = 0;
  private readonly memoryUser: MemoryUser;
  private readonly account: LeaseAccount;
  /** Where long records are opened: the pool, as far as the memory budget admits. */
  private readonly recordBuffers: BodyBuffers;
  /** PUTs received and not yet answered (§9.11). */
  private readonly puts: PutQueue;
  /**
   * A frame read from the channel behind a run of MKDIRs (takeMkdirs) and not yet handled: handled
   * next, once the run's step settled, before anything else the channel holds.
   */
  private held: Received | ReceivedData | null = null;

  constructor(
    private readonly transport: Transport,
    private readonly ctx: ConnectionContext,
    id: number,
    private readonly onClosed: (c: Connection) => void,
  ) {
    this.id = id;
    this.bodies = ctx.store.bodies;
    this.log = ctx.log.child({ conn: id, remote: `${transport.remoteAddress ?? '?'}:${transport.remotePort ?? 0}` });
    const admitted = ctx.access === undefined ? { keys: ctx.authorizedKeys, anonymous: false } : admits(ctx.access);
    const daemon = { appendOnly: ctx.appendOnly, allowDownload: ctx.allowDownload === true, maxFileBytes: ctx.maxFileBytes };
    const { access } = ctx;
    this.state = beginHandshake({
      serverKey: ctx.serverKey,
      authorizedKeys: admitted.keys,
      anonymous: admitted.anonymous,
      ticket: ctx.handshake,
      // A ticket's client is let in only as a full handshake would let it in now (§7.5).
      ...(access === undefined ? {} : { admitsResumed: (client: string | null) => rightsOf(access, daemon, client, transport.remoteAddress) !== null }),
    });
    this.gate = new ReadGate({ pause: () => transport.pause(), resume: () => transport.resume() });
    this.puts = new PutQueue(
      (answer) => this.send(answer),
      {
        hold: (reason) => this.gate.hold(reason),
        release: (reason) => {
          if (!this.gate.holds(reason)) return;
          this.gate.release(reason);
          // Frames left waiting in the channel are read now.
          setImmediate(() => this.pump());
        },
      },
      () => this.state.kind === 'Closed',
    );
    this.handshakeLink = this.makeHandshakeLink();
    this.commandLink = this.makeCommandLink();
    this.memoryUser = {
      measure: () => this.leasedBytes + this.channel.heldBytes + this.unreadOutputCost(),
      pausable: () => !this.channel.openingRecord,
      pause: () => this.gate.hold('memory'),
      // Read again, or called back to take the record buffer it waits for (neither stopped nor
      // in line, as the budget sees it); frames wait in the channel: look at them again.
      resume: () => {
        this.gate.release('memory');
        this.gate.release('record-buffer');
        setImmediate(() => this.pump());
      },
    };
    this.account = {
      held: (bytes) => {
        this.leasedBytes += bytes;
        this.ctx.memory?.update(this.memoryUser);
      },
    };
    this.recordBuffers = admittedBuffers(this.gate, this.bodies, ctx.memory, this.memoryUser);
    this.coalescer = new Coalescer(this.bodies, this.account);
    ctx.memory?.add(this.memoryUser);
    this.released = new Promise<void>((resolve) => (this.onReleased = resolve));
    transport.setTimeout(ctx.idleTimeoutMs, () => this.fail(new ResourceError('TIMEOUT', `no data for ${ctx.idleTimeoutMs} ms`)));
    this.handshakeTimer = setTimeout(
      () => this.fail(new ResourceError('TIMEOUT', `handshake not finished in ${ctx.handshakeTimeoutMs} ms`)),
      ctx.handshakeTimeoutMs,
    );
    transport.on('data', (chunk: Buffer) => this.onData(chunk));
    transport.on('end', () => this.onEnd());
    transport.on('error', (err) => this.close('socket error', err));
    transport.on('close', () => this.close('connection closed'));
    this.log.debug('connection open');
  }

  get closed(): boolean {
    return this.state.kind === 'Closed';
  }

  /** The state's name (§11.1). */
  get stateName(): ServerState {
    return this.state.kind;
  }

  /** Resolves once the connection closed and let go of everything it held (its upload released). */
  whenReleased(): Promise<void> {
    return this.released;
  }

  private onData(chunk: Buffer): void {
    if (this.state.kind === 'Closed') return;
    this.channel.push(chunk);
    this.pump();
    this.ctx.memory?.update(this.memoryUser);
    // Node reads each chunk into a new buffer; once the frames in it are handled it is garbage.
    youngGc.dropped(chunk.length);
  }

  /**
   * A read that landed in `chunk`, a view of a buffer the next read of any connection reuses
   * (recv/reads.ts): whatever must outlive this call is copied out of it before it returns. In
   * the handshake that is the whole chunk (its frames are plaintext views, kept by its
   * asynchronous steps); after it, the bytes of a frame not yet complete. Every frame after the
   * handshake is a record, opened into memory of its own (a new buffer, or a DATA record's pooled
   * body), so nothing else keeps a view of the chunk.
   */
  receiveShared(chunk: Buffer): void {
    // A read that still comes after GOAWAY's pause (net.js may deliver one more) is not read, as
    // it would have stayed unread in Node's stream buffer (§9.6: nothing more is read).
    if (this.state.kind === 'Closed' || this.gate.holds('shutdown')) return;
    if (!this.channel.opening || HANDSHAKE_STATES.has(this.state.kind)) {
      this.onData(Buffer.from(chunk));
      return;
    }
    // onData counts the chunk for the young generation as before: the read is no garbage now,
    // but opening its bytes made as many (node:crypto's output buffers).
    this.onData(chunk);
    this.channel.copyOutOf(chunk.buffer);
  }

  /**
   * Handles buffered frames in order. While an asynchronous step (OPEN, END) runs, the transport
   * is paused, and frames already buffered are still judged at once in the step's state (Opening,
   * Verifying), where only PING, PONG and ERROR are allowed (§11.1): a client that sends DATA
   * before OPEN_OK gets UNEXPECTED_FRAME, not a late acceptance.
   */
  private pump(): void {
    // In the handshake, what one read answers goes out as one write (issue 15): the server
    // preamble with SERVER_HELLO, SERVER_FINISHED with NEW_TICKET (§7.5). Each write is a system
    // call here and a segment the client wakes up for.
    const handshake = HANDSHAKE_STATES.has(this.state.kind);
    if (handshake) this.transport.cork();
    try {
      this.pumpFrames();
      // What this read brought in small DATA chunks goes on as one (transfer/coalescer.ts).
      this.flushChunks();
    } catch (err) {
      this.fail(err);
    } finally {
      if (handshake) this.transport.uncork();
    }
  }

  /** The loop of pump(): frames in order until none is complete, or the state or the gate says stop. */
  private pumpFrames(): void {
    while (this.state.kind !== 'Closed') {
      // A peer that does not read what we send gets no more answers queued: its frames wait.
      if (this.gate.holds('peer-not-reading')) return;
      // Too many PUTs unanswered; or a command waits in Ready for the PUTs before it (§9.11).
      if (this.gate.holds('puts') || (this.busy !== null && this.state.kind === 'Ready')) return;
      // A range being claimed or settled, a directory or link being made: what follows its RANGE
      // (DATA sent before RANGE_OK, §9.13 step 2, revision 1.12) is carried out in Ranging after
      // RANGE_OK; what follows its RANGE_END (a chained RANGE) or its MKDIR or SYMLINK (pipelined,
      // §9.8) in Ready, after RANGE_DONE or MADE.
      if (this.busy !== null && (this.state.kind === 'Claiming' || this.state.kind === 'Settling' || this.state.kind === 'Making')) return;
      const state = this.state;
      if (state.kind === 'AwaitClientHello' && !state.preambleRead) {
        if (!readPreamble(state, this.handshakeLink)) return;
        continue;
      }
      // Long DATA records are opened piece by piece into pooled buffers as they arrive (§8),
      // as far as the memory budget admits them (else recordBuffers holds 'record-buffer').
      const received = this.held ?? this.channel.nextData(this.recordBuffers);
      this.held = null;
      if (received === null) return;
      if ('body' in received) {
        this.receiveData(received);
        continue;
      }
      const step = this.receive(received.frame, received.raw);
      if (step !== undefined) this.runStep(step);
    }
  }

  /**
   * The MKDIRs received right behind the one being started, as many as are complete in the
   * channel now and at most `max` (a run, §9.8 "Pipelined", revision 1.14). Each is allowed in
   * Ready, where it will be received after the MADE of the one before (§11.1); the first frame
   * of another type is kept and handled after the run.
   */
  private takeMkdirs(max: number): Extract<Frame, { type: 'MKDIR' }>[] {
    const run: Extract<Frame, { type: 'MKDIR' }>[] = [];
    while (run.length < max && this.held === null && this.state.kind !== 'Closed') {
      const received = this.channel.nextData(this.recordBuffers);
      if (received === null) break;
      if (!('frame' in received) || received.frame.type !== 'MKDIR') {
        this.held = received;
        break;
      }
      nextState(SERVER_RULES, 'Ready', 'MKDIR', 'received');
      run.push(received.frame);
    }
    return run;
  }

  /** Hands on the small DATA chunks copied together so far (one chunk, in stream order). */
  private flushChunks(): void {
    if (this.coalescer.pendingBytes === 0) return;
    this.coalescer.flush((chunk) => this.passChunk(chunk));
  }

  private passChunk(chunk: CoalescedChunk): void {
    const state = this.state;
    if (!uploadCommand.owns(state)) {
      chunk.lease.release();
      throw this.bug('DATA');
    }
    uploadCommand.receiveData(state, chunk.offset, chunk.data, chunk.lease, this.commandLink);
  }

  /** Reads nothing new until `step` settles; a failed step closes the connection. */
  private runStep(step: Promise<void>): void {
    if (this.busy !== null) throw new ResourceError('INTERNAL', 'a second step started while one runs');
    this.busy = step;
    this.gate.hold('step');
    step.then(
      () => {
        this.busy = null;
        if (this.state.kind === 'Closed') return;
        this.gate.release('step');
        this.pump();
      },
      (err: unknown) => this.fail(err),
    );
  }

  /** One received frame: checked against §11.1 (UNEXPECTED_FRAME if not allowed), then acted on. */
  private receive(frame: Frame, raw: Buffer): Promise<void> | undefined {
    const state = this.state;
    const next = nextState(SERVER_RULES, state.kind, frame.type, 'received');
    if (frame.type === 'ERROR') {
      const code = codeFromWire(frame.code) ?? `#${frame.code}`;
      this.close(`peer sent ERROR ${code}: ${frame.message}`);
      return undefined;
    }
    if (frame.type === 'PING') {
      this.send({ type: 'PONG', seq: frame.seq });
      return undefined;
    }
    if (frame.type === 'PONG') return undefined;
    // Small DATA is copied together and handed on at the end of the read; anything else goes after it.
    if (frame.type === 'DATA' && state.kind === 'Receiving' && Coalescer.takes(frame.data)) {
      this.coalescer.add(frame.offset, frame.data, (chunk) => this.passChunk(chunk));
      return undefined;
    }
    this.flushChunks();
    switch (state.kind) {
      case 'AwaitClientHello':
      case 'AwaitKeyExchange':
      case 'AwaitClientFinished': {
        const accepted = respond(state, frame, raw, this.handshakeLink);
        // Still in the handshake's state: a key that may not connect (from=, §7.4) hears AUTH_REFUSED.
        const rights = accepted === null ? null : this.rightsOf(accepted.client);
        if (accepted !== null) this.state = { kind: 'Confirming' };
        // A ticket taken: SERVER_HELLO led on to AwaitClientFinished (§7.5, §11).
        const resumed = frame.type === 'CLIENT_HELLO' && state.hs.resumedKeys() !== null;
        this.expect(resumed ? resumedAfter({ tickets: false, resumed }, 'AwaitKeyExchange', 'SERVER_HELLO', 'sent', next) : next, frame.type);
        if (accepted === null) return undefined;
        this.client = accepted.client;
        this.rights = rights;
        this.sendRaw('SERVER_FINISHED', this.channel.sealBody(accepted.serverFinished), { kind: 'Ready' });
        // Right behind SERVER_FINISHED, to a client that asked (§7.5).
        if (accepted.newTicket !== null) this.sendRaw('NEW_TICKET', this.channel.sealBody(accepted.newTicket));
        if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = null;
        this.log.info({ event: 'authenticated', client: this.client ?? 'anonymous', resumed: accepted.resumed }, 'client authenticated');
        return undefined;
      }
      case 'Ready': {
        // MKDIR, SYMLINK, LIST and GET wait until the PUTs and detached uploads before them are
        // answered; an OPEN or RANGE only for those of its own name (§9.11 step 4). Reading stops
        // meanwhile, and the frame is carried out in Ready afterwards.
        const waits = this.waitsFor(frame);
        if (waits !== null) return waits.then(() => (this.state.kind === 'Ready' ? this.receive(frame, raw) : undefined));
        // A whole file in one record: its job starts and the connection stays in Ready (§9.11 step 6).
        if (frame.type === 'PUT_INLINE') {
          putInline(frame, this.commandLink);
          return this.expect(next, frame.type);
        }
        for (const command of COMMANDS) {
          const step = command.start(frame, this.commandLink);
          if (this.state.kind !== 'Ready') return this.expect(next, frame.type, step);
        }
        throw this.bug(frame.type);
      }
      case 'Opening':
      case 'Receiving':
      case 'Verifying':
      case 'Making':
      case 'Putting':
      case 'Packing':
      case 'Listing':
      case 'Locating':
      case 'Serving':
      case 'Claiming':
      case 'Ranging':
      case 'Settling': {
        const running = commandOf(state);
        if (running === undefined) throw this.bug(frame.type);
        const step = running.command.receive(running.state, frame, this.commandLink);
        // The DATA that completes a pack's bytes leads back to Ready (§9.11 step 8), which no row of the table says.
        if (state.kind === 'Packing' && frame.type === 'DATA' && this.state.kind === 'Ready') return step;
        return this.expect(next, frame.type, step);
      }
      case 'Confirming':
      case 'Closed':
        throw this.bug(frame.type);
    }
  }

  /** What a command received in Ready waits for before it is carried out (§9.11 step 4), if anything. */
  private waitsFor(frame: Frame): Promise<void> | null {
    const t = frame.type;
    if (t === 'MKDIR' || t === 'SYMLINK' || t === 'LIST' || t === 'GET') return this.puts.size > 0 ? this.puts.idle() : null;
    if (t === 'OPEN' || t === 'RANGE') return this.puts.whenFree(frame.name);
    return null;
  }

  /** After a received frame was handled: the state must be the one the tables named. */
  private expect<T>(next: ServerState, frame: FrameName, step?: T): T | undefined {
    if (this.state.kind !== next && this.state.kind !== 'Closed') {
      throw new ResourceError('INTERNAL', `${frame} was to move to ${next}, the connection is in ${this.state.kind}`);
    }
    return step;
  }

  /** A DATA record opened piece by piece (FrameChannel.nextData): the rules of a whole DATA frame. */
  private receiveData(data: ReceivedData): void {
    this.flushChunks();
    // The one holder of the pooled buffer until the command passes it on (to the store).
    const lease = this.bodies.lease(data.body, this.account);
    let running: ReturnType<typeof commandOf>;
    try {
      nextState(SERVER_RULES, this.state.kind, 'DATA', 'received');
      running = commandOf(this.state);
      if (running === undefined) throw this.bug('DATA');
    } catch (err) {
      lease.release();
      throw err;
    }
    running.command.receiveData(running.state, data.offset, data.data, lease, this.commandLink);
  }

  private onEnd(): void {
    try {
      this.channel.end();
      this.close('client closed');
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Shutdown (§9.6): stop reading, make what is queued durable, GOAWAY, close. Resolves when done
   * or after `timeoutMs`, whichever is first.
   */
  async goAway(timeoutMs: number): Promise<void> {
    if (this.state.kind === 'Closed') return;
    this.gate.hold('shutdown');
    const work = (async (): Promise<void> => {
      if (this.busy !== null) await this.busy.catch(() => undefined);
      // PUTs received are answered before GOAWAY (§9.11).
      await this.puts.idle();
      const running = commandOf(this.state);
      if (running !== undefined) await running.command.settle(running.state);
      this.tellPeer('SHUTTING_DOWN', 'server shutting down; reconnect and resume', this.channel.sealing ? 'GOAWAY' : 'ERROR');
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.close('shutdown');
  }

  /**
   * Checks that §11.1 lets the server send `type` now and moves the state: to `next` where the
   * tables move it (its name must be theirs). ERROR and GOAWAY lead to Closed, which close() enters.
   */
  private sendRaw(type: FrameName, pieces: readonly Buffer[], next?: State): void {
    const name = nextState(SERVER_RULES, this.state.kind, type, 'sent');
    if (name !== this.state.kind && name !== 'Closed') {
      if (next?.kind !== name) throw new ResourceError('INTERNAL', `sending ${type} in ${this.state.kind} moves to ${name}, not ${next?.kind ?? 'nowhere'}`);
      this.state = next;
    }
    if (type === 'DONE') this.uploads++;
    // One write per small record: each write the socket has to keep costs far more than a small
    // record's bytes. A long one (DATA of a download) is written piece by piece, not copied.
    const first = pieces[0];
    if (pieces.length === 1 && first !== undefined) this.transport.write(first);
    else if (pieces.reduce((n, p) => n + p.length, 0) <= CONCAT_RECORD_BYTES) this.transport.write(Buffer.concat(pieces));
    else for (const p of pieces) this.transport.write(p);
    this.unsentRecords = this.transport.writableLength === 0 ? 0 : this.unsentRecords + 1;
  }

  /** What our output not yet taken by the kernel costs: its bytes and its records. */
  private unreadOutputCost(): number {
    return this.transport.writableLength + this.unsentRecords * OUTPUT_RECORD_OVERHEAD_BYTES;
  }

  private send(frame: Frame, next?: State): void {
    this.sendRaw(frame.type, this.channel.encode(frame), next);
    if (!this.gate.holds('peer-not-reading') && (this.unreadOutputCost() > MAX_UNREAD_OUTPUT_BYTES || this.unsentRecords > MAX_UNREAD_OUTPUT_RECORDS)) {
      this.gate.hold('peer-not-reading');
      this.ctx.memory?.update(this.memoryUser);
      this.transport.once('drain', () => {
        this.unsentRecords = 0;
        this.ctx.memory?.update(this.memoryUser);
        if (this.state.kind === 'Closed') return;
        this.gate.release('peer-not-reading');
        // Frames left waiting in the channel are answered now.
        this.pump();
      });
    }
  }

  /** Peer-caused or local failure: ERROR with the code on the wire, detail in the log, close. */
  private fail(err: unknown): void {
    if (this.state.kind === 'Closed') return;
    const stx = err instanceof StxError ? err : new ResourceError('INTERNAL', 'internal error', { cause: err });
    if (!(err instanceof StxError)) this.log.error({ err }, 'internal error');
    this.tellPeer(stx.code, WIRE_MESSAGE[stx.code] ?? stx.message, 'ERROR');
    this.close(`${stx.code}: ${stx.message}`, stx);
  }

  /**
   * The last frame before closing, where one can be sent: the server preamble goes first if it
   * has not yet (§3); between SERVER_HELLO and KEY_EXCHANGE there are no keys, so nothing (§6).
   */
  private tellPeer(code: ErrorCode, message: string, type: 'ERROR' | 'GOAWAY'): void {
    try {
      const state = this.state;
      if (state.kind === 'AwaitClientHello' && !state.preambleRead) this.transport.write(encodePreamble());
      const keyless = state.kind === 'AwaitKeyExchange' && !this.channel.sealing;
      if (this.transport.destroyed || state.kind === 'Closed' || keyless) return;
      this.send({ type, code: wireNumber(code), message: message.slice(0, 1000) });
    } catch {
      // Past a key limit or mid-teardown: nothing more can be sent; closing is enough.
    }
  }

  /** The one teardown path: timers, the command's hold (upload lock), transport, registry. */
  private close(reason: string, err?: unknown): void {
    const state = this.state;
    if (state.kind === 'Closed') return;
    this.state = { kind: 'Closed' };
    this.gate.close();
    const kept = this.held;
    this.held = null;
    if (kept !== null && 'body' in kept) this.recordBuffers.give(kept.body);
    this.channel.abandon(this.bodies);
    this.coalescer.close();
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    // A step still running (an OPEN being prepared) lets go of what it got when it ends.
    const step = this.busy?.catch(() => undefined);
    const running = commandOf(state);
    const released = running === undefined ? Promise.resolve() : running.command.close(running.state, reason, err, this.commandLink);
    const gone = new ResourceError('INTERNAL', `connection closed: ${reason}`);
    for (const w of this.drainWaiters) w.reject(gone);
    this.drainWaiters.clear();
    // PUT jobs still running finish (a file they publish is whole), unanswered.
    void Promise.all([released, step, this.puts.idle()]).then(() => this.onReleased?.());
    // Bodies it still has queued are bounded by the write queues' own budget (MAX_QUEUED_BYTES_TOTAL).
    const standing = this.ctx.memory?.standing(this.memoryUser);
    this.ctx.memory?.remove(this.memoryUser);
    this.transport.end();
    setTimeout(() => this.transport.destroy(), 2000).unref();
    const code = err instanceof StxError ? err.code : undefined;
    const level = code === undefined ? 'info' : 'warn';
    const memory = { used: this.ctx.memory?.usedBytes ?? null, pool_outstanding: this.bodies.outstanding, pool_bytes: this.bodies.arenaBytes };
    // Why it was not reading, when it closed (an idle timeout with reasons held is the daemon's doing).
    const held = this.gate.reasons;
    this.log[level]({ event: 'close', reason, code, client: this.client ?? 'anonymous', uploads: this.uploads, memory, state: state.kind, held, leased: this.leasedBytes, budget: standing }, 'connection closed');
    this.onClosed(this);
  }

  private makeHandshakeLink(): HandshakeLink {
    return {
      channel: this.channel,
      enter: (next) => (this.state = next),
      write: (bytes) => this.transport.write(bytes),
      sendRaw: (type, pieces) => this.sendRaw(type, pieces),
    };
  }

  /**
   * Whether a command serving the client (GET's DATA, LIST's entries) must wait for it to read:
   * past MAX_SERVE_OUTPUT_BYTES, or past MAX_UNREAD_OUTPUT_RECORDS records, since a listing is
   * thousands of small records and each one the socket keeps costs far more than its bytes. Only
   * once the socket wants draining: below its high-water mark no 'drain' would come.
   */
  private serveOutputFull(): boolean {
    return this.transport.writableNeedDrain && (this.transport.writableLength >= MAX_SERVE_OUTPUT_BYTES || this.unsentRecords >= MAX_UNREAD_OUTPUT_RECORDS);
  }

  /** DATA to the client (§9.9): false once serveOutputFull(). */
  private sendData(offset: number, chunk: Buffer): boolean {
    this.sendRaw('DATA', this.channel.encodeData(offset, chunk));
    return !this.serveOutputFull();
  }

  /** Resolves once serveOutputFull() is over ('drain'); rejects once the connection closed. */
  private drain(): Promise<void> {
    if (this.state.kind === 'Closed') return Promise.reject(new ResourceError('INTERNAL', 'connection closed'));
    if (!this.serveOutputFull()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      if (this.drainWaiters.size === 0) {
        this.transport.once('drain', () => {
          this.unsentRecords = 0;
          for (const w of this.drainWaiters) w.resolve();
          this.drainWaiters.clear();
        });
      }
      this.drainWaiters.add({ resolve, reject });
    });
  }

  /** The client's rights (§7.4), from the access in force when this connection was accepted. */
  private rightsOf(client: string | null): Rights {
    const { ctx } = this;
    const daemon = { appendOnly: ctx.appendOnly, allowDownload: ctx.allowDownload === true, maxFileBytes: ctx.maxFileBytes };
    if (ctx.access === undefined) return { namespace: [], upload: true, appendOnly: daemon.appendOnly, download: daemon.allowDownload, maxFileBytes: daemon.maxFileBytes };
    // The handshake let in only those the access admits; a client it does not know is refused all the same.
    const rights = rightsOf(ctx.access, daemon, client, this.transport.remoteAddress);
    // The words of every other refusal of a key (§7.4: no oracle for which keys are listed, or where from).
    if (rights === null) throw new CryptoError('AUTH_REFUSED', `client key ${client ?? 'anonymous'} is not authorized, or its signature does not verify`);
    return rights;
  }

  /** What the client may do; only commands (after the handshake) ask. */
  private granted(): Rights {
    if (this.rights === null) throw new ResourceError('INTERNAL', 'a command before the handshake ended');
    return this.rights;
  }

  private makeCommandLink(): CommandLink<CommandState> {
    const granted = (): Rights => this.granted();
    return {
      now: () => this.state,
      closed: () => this.state.kind === 'Closed',
      principal: () => this.client ?? 'anonymous',
      remoteAddress: this.transport.remoteAddress,
      enter: (next) => (this.state = next),
      send: (frame, next) => this.send(frame, next),
      fail: (err) => this.fail(err),
      hold: (reason: PauseReason) => this.gate.hold(reason),
      release: (reason: PauseReason) => this.gate.release(reason),
      holds: (reason: PauseReason) => this.gate.holds(reason),
      channel: this.channel,
      takeMkdirs: (max) => this.takeMkdirs(max),
      store: this.ctx.store,
      get policy(): OpenPolicy {
        const r = granted();
        return { appendOnly: r.appendOnly, maxFileBytes: r.maxFileBytes, namespace: r.namespace, upload: r.upload };
      },
      get namespace() {
        return granted().namespace;
      },
      log: this.log,
      dropped: (bytes) => youngGc.dropped(bytes),
      held: (bytes) => this.account.held(bytes),
      puts: this.puts,
      get downloads() {
        return granted().download;
      },
      digests: digestsOf(this.ctx.store),
      output: {
        sendData: (offset, chunk) => this.sendData(offset, chunk),
        drain: () => this.drain(),
        nearKeyLimit: (bodyBytes) => this.channel.nearKeyLimit(bodyBytes),
      },
    };
  }

  private bug(frame: FrameName): Error {
    return new ResourceError('INTERNAL', `${frame} reached the connection in state ${this.state.kind}`);
  }
}
