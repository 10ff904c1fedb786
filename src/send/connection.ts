// One client connection: the socket, the frame channel and the client machine (spec §11.2).
// Frames are pulled one at a time during the handshake (the record layer starts between two of
// them) and pushed to a handler afterwards. Every failure ends in one typed error.
import net from 'node:net';
import { FrameChannel, type Received } from '../crypto/channel.js';
import { LocalError, ProtocolError, ResourceError, StxError, codeFromWire, errnoOf, errorFor, type ErrorCode } from '../proto/errors.js';
import type { Frame } from '../proto/frames.js';
import { clientMachine, type ClientState, type Machine } from '../proto/states.js';

/** The connection was lost (reset, closed, unreachable): always worth a reconnect (§10). */
export class ConnectionLost extends LocalError {
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

type Waiter = { resolve: (r: Received | Buffer) => void; reject: (e: Error) => void; preamble: boolean };

export class Connection {
  /** The client never receives DATA, so every record it reads is control-sized (§2, §8). */
  readonly channel = FrameChannel.controlOnly();
  readonly machine: Machine<ClientState> = clientMachine();
  private waiter: Waiter | null = null;
  private handler: ((frame: Frame) => void) | null = null;
  private failure: Error | null = null;
  private readonly failListeners = new Set<(e: Error) => void>();
  private timer: NodeJS.Timeout | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.channel.push(chunk);
      this.pump();
    });
    socket.on('end', () => {
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

  static connect(host: string, port: number, timeoutMs: number): Promise<Connection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new ConnectionLost(`no connection to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new Connection(socket));
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(connectError(host, port, err));
      });
    });
  }

  /** From now on, receiving nothing for `ms` ends the connection with TIMEOUT (retried by the caller). */
  dropWhenIdle(ms: number): void {
    let last = Date.now();
    this.socket.on('data', () => (last = Date.now()));
    const timer = setInterval(() => {
      if (Date.now() - last >= ms) this.fail(new ResourceError('TIMEOUT', `the server sent nothing for ${ms} ms`));
    }, Math.max(Math.floor(ms / 10), 50));
    timer.unref();
    this.onFailure(() => clearInterval(timer));
  }

  /** The error that ended this connection, if any. */
  get error(): Error | null {
    return this.failure;
  }

  onFailure(cb: (e: Error) => void): () => void {
    this.failListeners.add(cb);
    return () => this.failListeners.delete(cb);
  }

  /** Waits for the server's preamble. */
  preamble(timeoutMs: number): Promise<Buffer> {
    return this.pull(true, timeoutMs).then((r) => {
      if (!Buffer.isBuffer(r)) throw new ProtocolError('BAD_PREAMBLE', 'expected a preamble');
      return r;
    });
  }

  /** Waits for the next frame (pull mode); ERROR from the server becomes its typed error. */
  next(timeoutMs: number): Promise<Received> {
    return this.pull(false, timeoutMs).then((r) => {
      if (Buffer.isBuffer(r)) throw new ProtocolError('UNEXPECTED_FRAME', 'expected a frame');
      return r;
    });
  }

  /** Switches to push mode: every later frame goes to `handler`, in order. */
  handle(handler: (frame: Frame) => void): void {
    this.handler = handler;
    this.pump();
  }

  /** Writes wire pieces; false when the socket's buffer is full (wait for drain()). */
  write(pieces: readonly Buffer[]): boolean {
    if (this.failure !== null) throw this.failure;
    let ok = true;
    if (pieces.length > 1) this.socket.cork();
    for (const p of pieces) ok = this.socket.write(p);
    if (pieces.length > 1) this.socket.uncork();
    return ok;
  }

  send(frame: Frame): boolean {
    if (this.failure !== null) throw this.failure;
    this.machine.send(frame.type);
    return this.write(this.channel.encode(frame));
  }

  /** DATA without copying the chunk into a frame (§2.2). */
  sendData(offset: number, chunk: Buffer): boolean {
    if (this.failure !== null) throw this.failure;
    this.machine.send('DATA');
    return this.write(this.channel.encodeData(offset, chunk));
  }

  /** Handshake messages the handshake encoded already (§6). */
  sendRaw(type: 'CLIENT_HELLO' | 'KEY_EXCHANGE', pieces: readonly Buffer[]): void {
    if (this.failure !== null) throw this.failure;
    this.machine.send(type);
    this.write(pieces);
  }

  sendSealedBody(type: 'CLIENT_FINISHED', body: Buffer): void {
    if (this.failure !== null) throw this.failure;
    this.machine.send(type);
    this.write(this.channel.sealBody(body));
  }

  /** Resolves once the socket can take more; rejects if the connection fails first. */
  drain(): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const off = this.onFailure(reject);
      this.socket.once('drain', () => {
        off();
        resolve();
      });
    });
  }

  /** Ends the connection; with an error, tells the server first. */
  close(err?: StxError): void {
    if (err !== undefined && this.failure === null && !this.socket.destroyed) {
      try {
        this.send({ type: 'ERROR', code: err.wire, message: err.message.slice(0, 1000) });
      } catch {
        // Nothing more can be sent; closing is enough.
      }
    }
    this.fail(err ?? new ConnectionLost('closed by the client'));
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private pull(preamble: boolean, timeoutMs: number): Promise<Received | Buffer> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.timer = setTimeout(() => this.fail(new ResourceError('TIMEOUT', `the server sent nothing for ${timeoutMs} ms`)), timeoutMs);
      this.waiter = { resolve, reject, preamble };
      this.pump();
    });
  }

  private pump(): void {
    try {
      while (this.failure === null) {
        const w = this.waiter;
        if (w !== null) {
          const got = w.preamble ? this.channel.readPreamble() : this.nextChecked();
          if (got === null) return;
          this.waiter = null;
          if (this.timer !== null) clearTimeout(this.timer);
          w.resolve(got);
          return;
        }
        if (this.handler === null) return;
        const r = this.nextChecked();
        if (r === null) return;
        this.handler(r.frame);
      }
    } catch (err) {
      this.fail(toError(err));
    }
  }

  /** The next frame after the machine accepted it; ERROR and GOAWAY end the connection. */
  private nextChecked(): Received | null {
    const r = this.channel.next();
    if (r === null) return null;
    const f = r.frame;
    this.machine.receive(f.type);
    if (f.type === 'ERROR' && !this.channel.opening) throw unauthenticatedError(f.code);
    if (f.type === 'ERROR' || f.type === 'GOAWAY') {
      const code = codeFromWire(f.code);
      throw code === undefined
        ? new ResourceError('INTERNAL', `server error #${f.code}: ${f.message}`)
        : new ServerError(errorFor(code, f.message), f.type);
    }
    if (f.type === 'PING') this.send({ type: 'PONG', seq: f.seq });
    return r;
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    if (this.timer !== null) clearTimeout(this.timer);
    this.machine.close();
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
    for (const cb of this.failListeners) cb(err);
    this.failListeners.clear();
    this.socket.destroy();
  }
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
export class ServerError extends StxError {
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
