// One client connection of stx-recv (spec/PROTOCOL.md §6, §9, §11.1): transport bytes in, frames
// checked against the server's tables, the handshake (handshake.ts), then commands
// (commands/upload.ts). The connection holds ONE state, tagged with the spec's state names.
// Every way out goes through close().
import type { KeyObject } from 'node:crypto';
import type { Logger } from 'pino';
import { FrameChannel, type BodyBuffers, type ReceivedData } from '../crypto/channel.js';
import { ResourceError, StxError, codeFromWire, wireNumber, type ErrorCode } from '../proto/errors.js';
import type { Frame, FrameName } from '../proto/frames.js';
import { encodePreamble } from '../proto/preamble.js';
import { SERVER_RULES, nextState, type ServerState } from '../proto/states.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';
import type { BodyPool, LeaseAccount } from '../transfer/body-pool.js';
import type { MemoryBudget, MemoryUser } from '../transfer/budget.js';
import { Coalescer, type CoalescedChunk } from '../transfer/coalescer.js';
import type { Command, CommandLink, ReadyState } from './commands/command.js';
import { uploadCommand, type UploadState } from './commands/upload.js';
import {
  MAX_UNREAD_OUTPUT_BYTES,
  MAX_UNREAD_OUTPUT_RECORDS,
  OUTPUT_RECORD_OVERHEAD_BYTES,
  YOUNG_GC_INTERVAL_BYTES,
} from './config.js';
import { beginHandshake, readPreamble, respond, type HandshakeLink, type HandshakeState } from './handshake.js';
import { ReadGate, type PauseReason } from './read-gate.js';
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
  readonly destroyed: boolean;
  write(bytes: Buffer): unknown;
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
  readonly store: Store;
  readonly appendOnly: boolean;
  readonly maxFileBytes: number | undefined;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** What all connections may hold in memory (--max-memory); none in tests that do not ask. */
  readonly memory?: MemoryBudget | undefined;
  readonly log: Logger;
}

/** The connection's one state (§11.1): each variant carries only what is valid in it. */
export type State =
  | HandshakeState
  /** CLIENT_FINISHED checked out; SERVER_FINISHED goes out next (§6). */
  | { readonly kind: 'Confirming' }
  | ReadyState
  | UploadState
  | { readonly kind: 'Closed' };

/** The commands a client may start in Ready (§9); download and list will join upload here. */
const COMMANDS: readonly Command<UploadState>[] = [uploadCommand];

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
  setTimeout(() => transport.destroy(), 1000).unref();
}

export class Connection {
  readonly id: number;
  private readonly channel = FrameChannel.controlOnly();
  private state: State;
  private client: string | null = null;
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
  private readonly commandLink: CommandLink<UploadState>;
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

  constructor(
    private readonly transport: Transport,
    private readonly ctx: ConnectionContext,
    id: number,
    private readonly onClosed: (c: Connection) => void,
  ) {
    this.id = id;
    this.bodies = ctx.store.bodies;
    this.log = ctx.log.child({ conn: id, remote: `${transport.remoteAddress ?? '?'}:${transport.remotePort ?? 0}` });
    this.state = beginHandshake({ serverKey: ctx.serverKey, authorizedKeys: ctx.authorizedKeys });
    this.gate = new ReadGate({ pause: () => transport.pause(), resume: () => transport.resume() });
    this.handshakeLink = this.makeHandshakeLink();
    this.commandLink = this.makeCommandLink();
    this.memoryUser = {
      measure: () => this.leasedBytes + this.channel.heldBytes + this.unreadOutputCost(),
      pausable: () => !this.channel.openingRecord,
      pause: () => this.gate.hold('memory'),
      // Frames may wait in the channel for the memory they need: look at them again.
      resume: () => {
        this.gate.release('memory');
        setImmediate(() => this.pump());
      },
    };
    this.account = {
      held: (bytes) => {
        this.leasedBytes += bytes;
        this.ctx.memory?.update(this.memoryUser);
      },
    };
    this.recordBuffers = {
      take: (bytes) => {
        if (ctx.memory === undefined || ctx.memory.admit(this.memoryUser, bytes)) return this.bodies.take(bytes);
        // No memory for it now: read nothing until the budget calls resume().
        this.gate.hold('memory');
        return null;
      },
      give: (buffer) => this.bodies.give(buffer),
    };
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
   * Handles buffered frames in order. While an asynchronous step (OPEN, END) runs, the transport
   * is paused, and frames already buffered are still judged at once in the step's state (Opening,
   * Verifying), where only PING, PONG and ERROR are allowed (§11.1): a client that sends DATA
   * before OPEN_OK gets UNEXPECTED_FRAME, not a late acceptance.
   */
  private pump(): void {
    try {
      this.pumpFrames();
      // What this read brought in small DATA chunks goes on as one (transfer/coalescer.ts).
      this.flushChunks();
    } catch (err) {
      this.fail(err);
    }
  }

  /** The loop of pump(): frames in order until none is complete, or the state or the gate says stop. */
  private pumpFrames(): void {
    while (this.state.kind !== 'Closed') {
      // A peer that does not read what we send gets no more answers queued: its frames wait.
      if (this.gate.holds('peer-not-reading')) return;
      const state = this.state;
      if (state.kind === 'AwaitClientHello' && !state.preambleRead) {
        if (!readPreamble(state, this.handshakeLink)) return;
        continue;
      }
      // Long DATA records are opened piece by piece into pooled buffers as they arrive (§8),
      // as far as the memory budget admits them (else recordBuffers holds 'memory').
      const received = this.channel.nextData(this.recordBuffers);
      if (received === null) return;
      if ('body' in received) {
        this.receiveData(received);
        continue;
      }
      const step = this.receive(received.frame, received.raw);
      if (step !== undefined) this.runStep(step);
    }
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
        if (accepted !== null) this.state = { kind: 'Confirming' };
        this.expect(next, frame.type);
        if (accepted === null) return undefined;
        this.client = accepted.client;
        this.sendRaw('SERVER_FINISHED', this.channel.sealBody(accepted.serverFinished), { kind: 'Ready' });
        if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = null;
        this.log.info({ event: 'authenticated', client: this.client ?? 'anonymous' }, 'client authenticated');
        return undefined;
      }
      case 'Ready':
        for (const command of COMMANDS) {
          const step = command.start(frame, this.commandLink);
          if (this.state.kind !== 'Ready') return this.expect(next, frame.type, step);
        }
        throw this.bug(frame.type);
      case 'Opening':
      case 'Receiving':
      case 'Verifying':
        return this.expect(next, frame.type, uploadCommand.receive(state, frame, this.commandLink));
      case 'Confirming':
      case 'Closed':
        throw this.bug(frame.type);
    }
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
    const state = this.state;
    try {
      nextState(SERVER_RULES, state.kind, 'DATA', 'received');
      if (!uploadCommand.owns(state)) throw this.bug('DATA');
    } catch (err) {
      lease.release();
      throw err;
    }
    uploadCommand.receiveData(state, data.offset, data.data, lease, this.commandLink);
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
      const state = this.state;
      if (uploadCommand.owns(state)) await uploadCommand.settle(state);
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
    // One write per record: each write the socket has to keep costs far more than a small record's bytes.
    const first = pieces[0];
    if (first !== undefined) this.transport.write(pieces.length === 1 ? first : Buffer.concat(pieces));
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
    this.channel.abandon(this.bodies);
    this.coalescer.close();
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    // A step still running (an OPEN being prepared) lets go of what it got when it ends.
    const step = this.busy?.catch(() => undefined);
    const released = uploadCommand.owns(state) ? uploadCommand.close(state, reason, err, this.commandLink) : Promise.resolve();
    void Promise.all([released, step]).then(() => this.onReleased?.());
    // Bodies it still has queued are bounded by the write queues' own budget (MAX_QUEUED_BYTES_TOTAL).
    this.ctx.memory?.remove(this.memoryUser);
    this.transport.end();
    setTimeout(() => this.transport.destroy(), 2000).unref();
    const code = err instanceof StxError ? err.code : undefined;
    const level = code === undefined ? 'info' : 'warn';
    const memory = { used: this.ctx.memory?.usedBytes ?? null, pool_outstanding: this.bodies.outstanding, pool_bytes: this.bodies.arenaBytes };
    this.log[level]({ event: 'close', reason, code, client: this.client ?? 'anonymous', uploads: this.uploads, memory }, 'connection closed');
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

  private makeCommandLink(): CommandLink<UploadState> {
    const policy: OpenPolicy = { appendOnly: this.ctx.appendOnly, maxFileBytes: this.ctx.maxFileBytes };
    return {
      now: () => this.state,
      closed: () => this.state.kind === 'Closed',
      principal: () => this.client ?? 'anonymous',
      enter: (next) => (this.state = next),
      send: (frame, next) => this.send(frame, next),
      fail: (err) => this.fail(err),
      hold: (reason: PauseReason) => this.gate.hold(reason),
      release: (reason: PauseReason) => this.gate.release(reason),
      holds: (reason: PauseReason) => this.gate.holds(reason),
      channel: this.channel,
      store: this.ctx.store,
      policy,
      log: this.log,
      dropped: (bytes) => youngGc.dropped(bytes),
    };
  }

  private bug(frame: FrameName): Error {
    return new ResourceError('INTERNAL', `${frame} reached the connection in state ${this.state.kind}`);
  }
}
