// One client connection (spec/PROTOCOL.md §6, §9, §11.2): the socket, the frame channel, the
// client's state, keep-alive, and one close path. The state is one value named as in §11.2 and
// moved only by nextState(CLIENT_RULES, …), for every frame sent and received. During the
// handshake frames are pulled one at a time (the record layer starts between two of them); from
// Ready on they go to the command running on the connection (commands/upload.ts), which leaves
// it in Ready after its last frame, so that another command can follow (§9.1). Every failure ends
// in one typed error.
import net from 'node:net';
import { FrameChannel, type Received } from '../crypto/channel.js';
import { LocalError, ProtocolError, ResourceError, StxError, codeFromWire, errnoOf, errorFor, type ErrorCode } from '../proto/errors.js';
import type { Frame, FrameName } from '../proto/frames.js';
import { IDLE_TIMEOUT_MS, PING_INTERVAL_MS } from '../proto/limits.js';
import { CLIENT_RULES, madeAfter, nextState, resumedAfter, type ClientState } from '../proto/states.js';
import type { DataSink } from '../transfer/sender.js';

const MiB = 1024 * 1024;

/**
 * Output the socket has not yet handed to the kernel, beyond which the connection stops reading
 * (so a server that floods PINGs and reads no PONGs cannot grow our memory without bound). Bytes:
 * above one DATA record and the socket's high-water mark, so our own DATA never reaches it.
 * Records: a PONG is a few dozen bytes, its place in the queue several times that.
 */
const MAX_UNSENT_BYTES = 4 * MiB;
const MAX_UNSENT_RECORDS = 1024;

/** The connection was lost (reset, closed, unreachable): always worth a reconnect (§10). */
class ConnectionLost extends LocalError {
  constructor(message: string, options?: ErrorOptions) {
    super('CONNECTION_LOST', message, options);
  }
}

/**
 * Why a connect failed before any byte crossed: nothing accepts connections at that address, or
 * the host name does not resolve. Before any handshake has succeeded these are not worth a retry
 * (a typo stays a typo); the upload loop decides (upload.ts).
 */
export type ConnectFailure = 'refused' | 'unknown-host';

/** A connect that failed with a reason worth telling apart: CONNECT_FAILED (§10). */
export class ConnectFailed extends LocalError {
  constructor(
    readonly reason: ConnectFailure,
    readonly host: string,
    readonly port: number,
    message: string,
    options?: ErrorOptions,
  ) {
    super('CONNECT_FAILED', message, options);
  }
}

/** The typed error for a failed connect: refusals and unknown names by reason, the rest as lost. */
function connectError(host: string, port: number, err: Error): LocalError {
  const where = `cannot connect to ${host}:${port}`;
  switch (errnoOf(err) ?? '') {
    case 'ECONNREFUSED':
      return new ConnectFailed('refused', host, port, `${where}: connection refused (ECONNREFUSED): nothing listens on port ${port} there, or a firewall rejects it`, { cause: err });
    case 'ENOTFOUND':
      return new ConnectFailed('unknown-host', host, port, `${where}: unknown host "${host}" (ENOTFOUND): the name does not resolve`, { cause: err });
    case 'EAI_AGAIN':
      return new ConnectFailed('unknown-host', host, port, `${where}: the name "${host}" could not be resolved (EAI_AGAIN: no answer from DNS)`, { cause: err });
    default:
      return new ConnectionLost(`${where}: ${err.message}`, { cause: err });
  }
}

/**
 * A command's share of the connection: every frame of its exchange, in order, once the state
 * table allowed it. PING, PONG, ERROR and GOAWAY are the connection's own. Throwing fails the
 * connection with that error.
 */
export type CommandFrames = (frame: Frame) => void;

/**
 * What a PUT is answered with (§9.11): PUT_DONE, PUT_FAILED, or its place in a PUTS_DONE (revision
 * 1.6), which gives only the SHA-256 (it binds the size too).
 */
export type PutAnswer = Extract<Frame, { type: 'PUT_DONE' | 'PUT_FAILED' }> | { readonly type: 'PUTS_DONE'; readonly sha256: Buffer };

/** The states in which a command runs (§11.2): from its first frame until the connection is Ready again. */
type CommandState = 'AwaitOpenOk' | 'Sending' | 'AwaitDone' | 'AwaitMade' | 'Listing' | 'AwaitGetOk' | 'Fetching' | 'AwaitRangeOk' | 'SendingRange' | 'AwaitRangeDone' | 'AwaitRangeDoneThenOk';

/** Where an ACK is the running upload's or range's (§11.2); elsewhere it is a detached upload's. */
const ACK_STATES: ReadonlySet<ClientState> = new Set<ClientState>(['Sending', 'AwaitDone', 'SendingRange', 'AwaitRangeDone', 'AwaitRangeDoneThenOk']);

function isCommandState(name: ClientState): name is CommandState {
  switch (name) {
    case 'AwaitOpenOk':
    case 'Sending':
    case 'AwaitDone':
    case 'AwaitMade':
    case 'Listing':
    case 'AwaitGetOk':
    case 'Fetching':
    case 'AwaitRangeOk':
    case 'SendingRange':
    case 'AwaitRangeDone':
    case 'AwaitRangeDoneThenOk':
      return true;
    case 'AwaitServerHello':
    case 'AwaitServerFinished':
    case 'AwaitTicket':
    case 'Ready':
    case 'Putting':
    case 'Packing':
    case 'Closed':
      return false;
  }
}

/** The one state of a connection: §11.2's name, and what is valid only in it. */
type State =
  | { readonly name: 'AwaitServerHello' | 'AwaitServerFinished' | 'AwaitTicket' }
  | { readonly name: 'Ready' | 'Putting' | 'Packing' }
  | { readonly name: Exclude<CommandState, 'AwaitRangeDoneThenOk' | 'AwaitMade'>; readonly command: CommandFrames }
  /** MKDIR or SYMLINK sent (§9.8): `command` gets the next MADE; `later` are those pipelined behind it, oldest first (revision 1.11). */
  | { readonly name: 'AwaitMade'; readonly command: CommandFrames; readonly later: readonly CommandFrames[] }
  /** A range's RANGE_END sent and the next RANGE after it (§9.13 step 2): `command` gets RANGE_DONE, then `next` runs. */
  | { readonly name: 'AwaitRangeDoneThenOk'; readonly command: CommandFrames; readonly next: CommandFrames }
  | { readonly name: 'Closed'; readonly reason: Error };

export interface ConnectionOptions {
  /** From Ready on, receiving nothing for this long ends the connection with TIMEOUT (default IDLE_TIMEOUT_MS). */
  readonly idleTimeoutMs?: number | undefined;
}

type Waiter = { resolve: (r: Received | Buffer) => void; reject: (e: Error) => void; preamble: boolean };

export class Connection implements DataSink {
  /**
   * Every record the client reads is control-sized (§2, §8) except DATA of a download, which the
   * get command allows while Fetching (commands/get.ts).
   */
  readonly channel = FrameChannel.controlOnly();
  /** Set while the command's consumer (a download's disk) wants no more frames. */
  private readingHeld = false;
  /** Writes are held back until the next turn of the event loop (corkUntilNextTurn). */
  private corked = false;
  #state: State = { name: 'AwaitServerHello' };
  /** The handshake asked for a ticket (§7.5, revision 1.13): SERVER_FINISHED leads to AwaitTicket. */
  #asksTicket = false;
  private waiter: Waiter | null = null;
  private readonly failListeners = new Set<(e: Error) => void>();
  /** The handshake's pull timer, then keep-alive's two timers: all cleared on close. */
  private readonly timers = new Set<NodeJS.Timeout>();
  private lastReceived = Date.now();
  /** While a command runs: when it last moved on (commands call progressed(); §9.6 liveness). */
  private lastProgress = Date.now();
  /** Records written whose last piece the socket has not yet handed to the kernel. */
  private unsentRecords = 0;
  /** Who hears the answer of each PUT sent and not yet answered, oldest first (§9.11). */
  readonly #puts: ((answer: PutAnswer) => void)[] = [];

  private constructor(
    readonly socket: net.Socket,
    private readonly idleMs: number,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.lastReceived = Date.now();
      this.channel.push(chunk);
      this.pump();
    });
    socket.on('end', () => {
      // Whole frames still buffered are read first, as far as the state lets them be read; a
      // command that holds its reading (a download whose disk lags) may still leave some, and the
      // server's ERROR or GOAWAY among them is why it closed, not a truncated frame. So is a GOAWAY
      // that came while the handshake was busy (keeping a ticket, §7.5).
      this.pump();
      if (this.#state.name === 'Closed') return;
      const word = this.channel.opening ? this.lastWord() : null;
      if (word !== null) {
        this.fail(word);
        return;
      }
      try {
        this.channel.end();
        this.fail(new ConnectionLost('the server closed the connection'));
      } catch (err) {
        this.fail(err instanceof StxError ? new ConnectionLost(err.message) : toError(err));
      }
    });
    socket.on('error', (err) => this.fail(new ConnectionLost(`connection failed: ${err.message}`, { cause: err })));
    socket.on('close', () => this.fail(new ConnectionLost('connection closed')));
  }

  static connect(host: string, port: number, timeoutMs: number, options: ConnectionOptions = {}): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionLost(`no connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket, options.idleTimeoutMs ?? IDLE_TIMEOUT_MS));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(connectError(host, port, err));
      });
    });
  }

  /** Where the connection is (§11.2). */
  get state(): ClientState {
    return this.#state.name;
  }

  private get commandRuns(): boolean {
    return isCommandState(this.#state.name);
  }

  /**
   * Stops handing frames to the command (a download whose disk lags): the socket pauses, and TCP
   * holds the server back (§9.9). releaseReading() goes on.
   */
  holdReading(): void {
    this.readingHeld = true;
    this.socket.pause();
  }

  releaseReading(): void {
    if (!this.readingHeld) return;
    this.readingHeld = false;
    if (this.#state.name === 'Closed') return;
    this.socket.resume();
    this.pump();
  }

  /** The error that ended this connection, if it ended. */
  get error(): Error | null {
    return this.#state.name === 'Closed' ? this.#state.reason : null;
  }

  onFailure(cb: (e: Error) => void): () => void {
    this.failListeners.add(cb);
    return () => this.failListeners.delete(cb);
  }

  /** The CLIENT_HELLO about to go asks for a ticket (§7.5): NEW_TICKET follows SERVER_FINISHED. */
  asksTicket(): void {
    // Closed meanwhile (the ticket store is read before CLIENT_HELLO): its own error, say a lost connection.
    this.writable();
    if (this.#state.name !== 'AwaitServerHello') throw new Error('asksTicket() after CLIENT_HELLO');
    this.#asksTicket = true;
  }

  /** Waits for the server's preamble (handshake). */
  preamble(timeoutMs: number): Promise<Buffer> {
    return this.pull(true, timeoutMs).then((r) => {
      if (!Buffer.isBuffer(r)) throw new ProtocolError('BAD_PREAMBLE', 'expected a preamble');
      return r;
    });
  }

  /** Waits for the next handshake frame; ERROR from the server becomes its typed error. */
  next(timeoutMs: number): Promise<Received> {
    return this.pull(false, timeoutMs).then((r) => {
      if (Buffer.isBuffer(r)) throw new ProtocolError('UNEXPECTED_FRAME', 'expected a frame');
      return r;
    });
  }

  /**
   * Starts a command on a Ready connection: sends its first frame (OPEN) and hands it every frame
   * of its exchange until the connection is Ready again.
   */
  begin(first: Frame, frames: CommandFrames): void {
    this.writable();
    this.lastProgress = Date.now();
    this.move(first.type, 'sent', frames);
    this.write(this.channel.encode(first));
  }

  /**
   * The running command moved on (OPEN_OK, an advancing ACK, PROGRESS, DONE; and, while Sending,
   * data the kernel took). Liveness is progress: a server that answers PINGs but moves nothing
   * on is as dead as a silent one.
   */
  progressed(): void {
    this.lastProgress = Date.now();
  }

  send(frame: Frame): boolean {
    this.writable();
    this.move(frame.type, 'sent');
    return this.write(this.channel.encode(frame));
  }

  /**
   * A whole small file (§9.11): PUT, its DATA from 0 and END go out at once, in Ready, and the
   * connection is Ready again; the answer (PUT_DONE or PUT_FAILED) comes later, in PUT order.
   * Returns the answer's promise (which rejects only when the connection fails first) and
   * whether the socket can take more now (else wait for drain()).
   */
  put(put: Extract<Frame, { type: 'PUT' }>, data: Buffer, sha256: Buffer): { answer: Promise<PutAnswer>; ok: boolean } {
    this.writable();
    const answer = this.awaitPutAnswer();
    this.corkUntilNextTurn();
    this.move('PUT', 'sent');
    this.write(this.channel.encode(put));
    if (data.length > 0) {
      this.move('DATA', 'sent');
      this.write(this.channel.encodeData(0, data));
    }
    this.move('END', 'sent');
    const ok = this.write(this.channel.encode({ type: 'END', sha256 }));
    return { answer, ok };
  }

  /**
   * A whole small file in one record (§9.11 step 6, revision 1.6), in Ready, which the connection
   * stays in; answered as put() is. The caller checks that the frame fits (PUT_INLINE_OVERHEAD_BYTES).
   */
  putInline(put: Extract<Frame, { type: 'PUT_INLINE' }>): { answer: Promise<PutAnswer>; ok: boolean } {
    this.writable();
    const answer = this.awaitPutAnswer();
    this.corkUntilNextTurn();
    this.move('PUT_INLINE', 'sent');
    const ok = this.write(this.channel.encode(put));
    return { answer, ok };
  }

  /**
   * Small files in two records (§9.11 step 8, revision 1.9): PUT_PACK, then all their bytes as one
   * DATA from 0, in Ready, which the connection is in again once the last byte is sent (no END).
   * One answer per file, in PUT order, as put() gives, handed to `onAnswer` as it is read; `data`
   * is the files' bytes concatenated (their sizes sum to at least 1 byte, §4), in one piece or
   * several. Returns a promise that resolves once every file is answered (rejects if the
   * connection fails first) and whether the socket can take more now.
   */
  putPack(
    pack: Extract<Frame, { type: 'PUT_PACK' }>,
    files: number,
    data: Buffer | readonly Buffer[],
    onAnswer: (file: number, answer: PutAnswer) => void,
  ): { answered: Promise<void>; ok: boolean } {
    this.writable();
    // One promise for the pack, not one per file: each answer goes to onAnswer as it is read.
    let resolve = (): void => undefined;
    let reject: (err: Error) => void = () => undefined;
    const answered = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Handled by whoever awaits it; a connection that fails rejects every waiter alike.
    answered.catch(() => undefined);
    const off = this.onFailure(reject);
    let next = 0;
    const one = (answer: PutAnswer): void => {
      onAnswer(next++, answer);
      if (next === files) {
        off();
        resolve();
      }
    };
    for (let i = 0; i < files; i++) this.#puts.push(one);
    this.corkUntilNextTurn();
    this.move('PUT_PACK', 'sent');
    this.write(this.channel.encode(pack));
    this.move('DATA', 'sent');
    const ok = this.write(this.channel.encodeData(0, data));
    // The DATA that completes the pack's bytes leads back to Ready (§11.2: no frame of its own).
    this.#state = { name: 'Ready' };
    return { answered, ok };
  }

  /**
   * Ends the running upload with END_DETACHED (§9.1 "Detached END", revision 1.7): the connection
   * is Ready at once, and the upload is answered later as a PUT, in the order of the PUTs.
   * Returns the answer's promise (rejects only if the connection fails first) and whether the
   * socket can take more now.
   */
  endDetached(end: Extract<Frame, { type: 'END_DETACHED' }>): { answer: Promise<PutAnswer>; ok: boolean } {
    this.writable();
    const answer = this.awaitPutAnswer();
    this.move('END_DETACHED', 'sent');
    const ok = this.write(this.channel.encode(end));
    return { answer, ok };
  }

  /** The answer of the PUT about to be sent: the next in line (§9.11); rejects if the connection fails first. */
  private awaitPutAnswer(): Promise<PutAnswer> {
    const answer = new Promise<PutAnswer>((resolve, reject) => {
      const off = this.onFailure(reject);
      this.#puts.push((a) => {
        off();
        resolve(a);
      });
    });
    // Handled by whoever awaits it; a connection that fails rejects every waiter alike.
    answer.catch(() => undefined);
    return answer;
  }

  /**
   * Holds this turn's writes back and sends them as one (writev) at the next turn of the event
   * loop: the PUTs of many small files read meanwhile leave in a few system calls, not three each.
   */
  private corkUntilNextTurn(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    setImmediate(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  /** PUTs sent and not yet answered. */
  get putsUnanswered(): number {
    return this.#puts.length;
  }

  /** DATA without copying the chunk into a frame (§2.2). */
  sendData(offset: number, chunk: Buffer): boolean {
    this.writable();
    this.move('DATA', 'sent');
    return this.write(this.channel.encodeData(offset, chunk));
  }

  nearKeyLimit(bodyBytes: number): boolean {
    return this.channel.nearKeyLimit(bodyBytes);
  }

  /** Handshake messages the handshake encoded already (§6). */
  sendRaw(type: 'CLIENT_HELLO' | 'KEY_EXCHANGE', pieces: readonly Buffer[]): void {
    this.writable();
    this.move(type, 'sent');
    this.write(pieces);
  }

  sendSealedBody(type: 'CLIENT_FINISHED', body: Buffer): void {
    this.writable();
    this.move(type, 'sent');
    this.write(this.channel.sealBody(body));
  }

  /** Resolves once the socket can take more; rejects if the connection fails first. */
  drain(): Promise<void> {
    if (this.#state.name === 'Closed') return Promise.reject(this.#state.reason);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const off = this.onFailure(reject);
      this.socket.once('drain', () => {
        off();
        resolve();
      });
    });
  }

  /**
   * Ends the connection, because of `err` if given. The server hears why (ERROR) unless it told
   * us, the link is gone (a local error), or it is not the server we trust: an impostor learns
   * nothing from us, not even why (§5).
   */
  close(err?: unknown): void {
    if (tellsServer(err) && this.#state.name !== 'Closed' && !this.socket.destroyed) {
      try {
        this.send({ type: 'ERROR', code: err.wire, message: err.message.slice(0, 1000) });
      } catch {
        // Nothing more can be sent; closing is enough.
      }
    }
    this.fail(err instanceof Error ? err : new ConnectionLost('closed by the client'));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Throws the reason the connection ended, if it did. */
  private writable(): void {
    if (this.#state.name === 'Closed') throw this.#state.reason;
  }

  /**
   * Moves the state by the table for `frame` sent or received; `command` is the one a sent frame
   * starts. Into Closed (ERROR, GOAWAY) the caller goes next, through fail(), with the reason.
   */
  private move(frame: FrameName, verb: 'received' | 'sent', command?: CommandFrames): void {
    const from = this.#state;
    if (from.name === 'Closed') throw from.reason;
    const outstanding = from.name === 'AwaitMade' ? 1 + from.later.length : 0;
    const next = resumedAfter({ tickets: this.#asksTicket, resumed: false }, from.name, frame, verb, nextState(CLIENT_RULES, from.name, frame, verb));
    const name = madeAfter(outstanding, frame, verb, next).next;
    if (name === 'AwaitMade') {
      // Each MKDIR or SYMLINK gets its own MADE, in the order they were sent (§9.8, revision 1.11).
      if (from.name !== 'AwaitMade') {
        if (command === undefined) throw new Error(`${frame} ${verb} outside a command: a command starts with begin()`);
        this.#state = { name, command, later: [] };
      } else if (verb === 'sent' && (frame === 'MKDIR' || frame === 'SYMLINK')) {
        if (command === undefined) throw new Error(`${frame} sent in AwaitMade: a pipelined one starts with begin()`);
        this.#state = { name, command: from.command, later: [...from.later, command] };
      } else if (frame === 'MADE') {
        const [next, ...later] = from.later;
        if (next === undefined) throw new Error('MADE with none pipelined left AwaitMade');
        this.#state = { name, command: next, later };
      }
      return;
    }
    if (name === 'AwaitRangeDoneThenOk') {
      // The next RANGE sent while the last range's RANGE_DONE is due: each range keeps its own frames.
      if (from.name === 'AwaitRangeDone' && command !== undefined) this.#state = { name, command: from.command, next: command };
      else if (from.name !== name) throw new Error(`${frame} ${verb}: a chained RANGE starts with begin() after RANGE_END`);
      return;
    }
    if (from.name === 'AwaitRangeDoneThenOk' && name === 'AwaitRangeOk') {
      // RANGE_DONE (it goes to the last range's command, pump()): the chained range runs on.
      this.#state = { name, command: from.next };
      return;
    }
    if (isCommandState(name)) {
      const running = command ?? ('command' in from ? from.command : undefined);
      if (running === undefined) throw new Error(`${frame} ${verb} outside a command: a command starts with begin()`);
      this.#state = { name, command: running };
      return;
    }
    switch (name) {
      case 'AwaitServerHello':
      case 'AwaitServerFinished':
      case 'AwaitTicket':
        this.#state = { name };
        return;
      case 'Ready':
        if (from.name === 'AwaitServerFinished' || from.name === 'AwaitTicket') {
          this.keepAlive();
          // The handshake read by pull, one frame at a time: what came behind its last frame (a
          // GOAWAY right after NEW_TICKET, §7.5) is read as soon as the handshake's caller goes on.
          setImmediate(() => this.pump());
        }
        this.#state = { name };
        return;
      case 'Putting':
      case 'Packing':
        this.#state = { name };
        return;
      case 'Closed':
        return;
    }
  }

  /**
   * From Ready on (§9.6): a server that goes silent (a black hole, not a close) must not hang us,
   * so PINGs ask for an answer, and nothing received for idleMs ends the connection with TIMEOUT
   * (the caller may retry).
   */
  private keepAlive(): void {
    const ms = this.idleMs;
    this.lastReceived = Date.now();
    const idle = setInterval(() => {
      const now = Date.now();
      if (now - this.lastReceived >= ms) this.fail(new ResourceError('TIMEOUT', `the server sent nothing for ${ms} ms`));
      else if (this.commandRuns && now - this.lastProgress >= ms) this.fail(new ResourceError('TIMEOUT', `the server made no progress for ${ms} ms`));
    }, Math.max(Math.floor(ms / 10), 50));
    idle.unref();
    const pinger = setInterval(
      () => {
        try {
          this.send({ type: 'PING', seq: Date.now() });
        } catch {
          // The failure surfaces through the connection.
        }
      },
      Math.min(PING_INTERVAL_MS, Math.max(Math.floor(ms / 4), 100)),
    );
    this.timers.add(idle).add(pinger);
  }

  private write(pieces: readonly Buffer[]): boolean {
    let ok = true;
    if (pieces.length > 1) this.socket.cork();
    pieces.forEach((p, i) => (ok = i === pieces.length - 1 ? this.socket.write(p, this.flushed) : this.socket.write(p)));
    if (pieces.length > 1) this.socket.uncork();
    this.unsentRecords++;
    return ok;
  }

  /** A record's last piece went to the kernel (or the socket is gone): read again once below half the bounds. */
  private readonly flushed = (): void => {
    this.unsentRecords--;
    // DATA taken by the kernel while Sending: the server is reading, so the upload moves on.
    if (this.#state.name === 'Sending' || this.#state.name === 'SendingRange') this.lastProgress = Date.now();
    if (this.socket.isPaused() && !this.readingHeld && this.#state.name !== 'Closed' && this.unsentBelow(0.5)) {
      this.socket.resume();
      this.pump();
    }
  };

  /** Whether the unsent output is within `fraction` of both bounds. */
  private unsentBelow(fraction: number): boolean {
    return this.socket.writableLength <= MAX_UNSENT_BYTES * fraction && this.unsentRecords <= MAX_UNSENT_RECORDS * fraction;
  }

  private pull(preamble: boolean, timeoutMs: number): Promise<Received | Buffer> {
    const { name } = this.#state;
    if (this.#state.name === 'Closed') return Promise.reject(this.#state.reason);
    if (name !== 'AwaitServerHello' && name !== 'AwaitServerFinished' && name !== 'AwaitTicket') {
      // A caller's bug: from Ready on, frames go to the command (begin()).
      return Promise.reject(new Error(`a pull read in state ${name}: pull reads are for the handshake`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new ResourceError('TIMEOUT', `the server sent nothing for ${timeoutMs} ms`)), timeoutMs);
      this.timers.add(timer);
      this.waiter = {
        resolve: (r) => {
          clearTimeout(timer);
          this.timers.delete(timer);
          resolve(r);
        },
        reject,
        preamble,
      };
      this.pump();
    });
  }

  /**
   * Reads what has arrived: in the handshake only as far as a waiting pull asks (the next frame
   * may need keys the handshake has yet to install), from Ready on every frame, to the command.
   */
  private pump(): void {
    try {
      for (;;) {
        const s = this.#state;
        switch (s.name) {
          case 'Closed':
            return;
          case 'AwaitServerHello':
          case 'AwaitServerFinished':
          case 'AwaitTicket': {
            const w = this.waiter;
            if (w === null) return;
            const got = w.preamble ? this.channel.readPreamble() : this.receive();
            if (got === null) return;
            this.waiter = null;
            w.resolve(got);
            return;
          }
          case 'Ready':
          case 'Putting':
          case 'Packing':
          case 'AwaitOpenOk':
          case 'Sending':
          case 'AwaitDone':
          case 'AwaitMade':
          case 'Listing':
          case 'AwaitGetOk':
          case 'Fetching':
          case 'AwaitRangeOk':
          case 'SendingRange':
          case 'AwaitRangeDone':
          case 'AwaitRangeDoneThenOk': {
            if (this.readingHeld) return;
            // Every frame may ask for an answer (PING): while the server does not take what we
            // send, read nothing more, so what waits here stays bounded; flushed() reads again.
            if (!this.unsentBelow(1)) {
              this.socket.pause();
              return;
            }
            const r = this.receive();
            if (r === null) return;
            const t = r.frame.type;
            // An ACK outside an upload's sending states is a detached upload's, sent before the
            // server read its END_DETACHED (§9.1): it moves nothing on.
            const stale = t === 'ACK' && !ACK_STATES.has(s.name);
            // PUT answers are the connection's (receive()), in whatever state they come (§9.11).
            const answer = t === 'PUT_DONE' || t === 'PUT_FAILED' || t === 'PUTS_DONE';
            if ('command' in s && t !== 'PING' && t !== 'PONG' && !stale && !answer) s.command(r.frame);
            break;
          }
        }
      }
    } catch (err) {
      this.fail(toError(err));
    }
  }

  /**
   * At the end of the stream, the server's ERROR or GOAWAY among the whole frames still buffered
   * (read past what the command has yet to take, which no longer matters), or null.
   */
  private lastWord(): StxError | null {
    try {
      for (let r = this.channel.next(); r !== null; r = this.channel.next()) {
        const f = r.frame;
        if (f.type === 'ERROR' || f.type === 'GOAWAY') return serverSaid(f.type, f.code, f.message);
      }
    } catch {
      // A frame that does not open or decode: the usual end (TRUNCATED or lost) says enough.
    }
    return null;
  }

  /** The next frame after the state table accepted it; ERROR and GOAWAY end the connection, PING is answered. */
  private receive(): Received | null {
    const r = this.channel.next();
    if (r === null) return null;
    const f = r.frame;
    this.move(f.type, 'received');
    if (f.type === 'ERROR' && !this.channel.opening) throw unauthenticatedError(f.code);
    if (f.type === 'ERROR' || f.type === 'GOAWAY') throw serverSaid(f.type, f.code, f.message);
    if (f.type === 'PING') this.send({ type: 'PONG', seq: f.seq });
    if (f.type === 'PUT_DONE' || f.type === 'PUT_FAILED') {
      // The answer to the oldest PUT not yet answered (§9.11).
      const waiter = this.#puts.shift();
      if (waiter === undefined) throw new ProtocolError('UNEXPECTED_FRAME', `${f.type} with no PUT unanswered`);
      this.lastProgress = Date.now();
      waiter(f);
    }
    if (f.type === 'PUTS_DONE') {
      // The answers to the next n PUTs not yet answered, all done (§9.11 step 7).
      const n = f.sha256s.length / 32;
      if (n > this.#puts.length) throw new ProtocolError('UNEXPECTED_FRAME', `PUTS_DONE answers ${n} PUTs, ${this.#puts.length} unanswered`);
      this.lastProgress = Date.now();
      for (let i = 0; i < n; i++) this.#puts.shift()?.({ type: 'PUTS_DONE', sha256: f.sha256s.subarray(32 * i, 32 * (i + 1)) });
    }
    return r;
  }

  /** The one way a connection ends: Closed with its reason, timers off, waiters told, socket gone. */
  private fail(err: Error): void {
    if (this.#state.name === 'Closed') return;
    this.#state = { name: 'Closed', reason: err };
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
    for (const cb of this.failListeners) cb(err);
    this.failListeners.clear();
    this.socket.destroy();
  }
}

/** Whether the server should hear about `err` before we close: not its own error, not a local one, not an untrusted server. */
function tellsServer(err: unknown): err is StxError {
  return err instanceof StxError && !err.local && !(err instanceof ServerError) && err.code !== 'SERVER_KEY_MISMATCH';
}

/**
 * The codes a server sends in a plaintext ERROR, before the record layer (§10): refusals of the
 * connection itself. Its sender has proven nothing yet (§6), so any other code is not believed.
 */
const PLAINTEXT_ERROR_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'BAD_PREAMBLE',
  'VERSION_UNSUPPORTED',
  'FRAME_TOO_LARGE',
  'UNKNOWN_FRAME_TYPE',
  'MALFORMED_FRAME',
  'UNEXPECTED_FRAME',
  'TRUNCATED',
  'HANDSHAKE_FAILED',
  'TIMEOUT',
  'TOO_MANY_CONNECTIONS',
  'SHUTTING_DOWN',
  'INTERNAL',
]);

/** The error an ERROR or GOAWAY record carries (§10): its code, or INTERNAL for a number we do not know. */
function serverSaid(type: 'ERROR' | 'GOAWAY', wire: number, message: string): StxError {
  const code = codeFromWire(wire);
  return code === undefined ? new ResourceError('INTERNAL', `server error #${wire}: ${message}`) : new ServerError(errorFor(code, message), type);
}

/**
 * A plaintext ERROR: its code if it is one a server sends there, else HANDSHAKE_FAILED; never its
 * text, which an impostor chose (§10): a fixed message instead.
 */
function unauthenticatedError(wire: number): ServerError {
  const claimed = codeFromWire(wire);
  const code = claimed !== undefined && PLAINTEXT_ERROR_CODES.has(claimed) ? claimed : 'HANDSHAKE_FAILED';
  const said = claimed === code ? '' : ` (it claimed error #${wire}, which no server sends before the handshake)`;
  return new ServerError(errorFor(code, `the server refused the connection before proving its identity${said}`), 'ERROR');
}

/** An error the server reported (ERROR or GOAWAY frame), keeping the server's code. */
class ServerError extends StxError {
  override readonly name = 'ServerError';
  constructor(
    readonly reported: StxError,
    readonly via: 'ERROR' | 'GOAWAY',
  ) {
    super(reported.code, reported.message);
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
