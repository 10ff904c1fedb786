// One client connection of stx-recv (spec/PROTOCOL.md §6, §9, §11.1): socket bytes in, frames
// through the server machine, uploads into the store. Every way out goes through close().
import type { KeyObject } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { FrameChannel, type ReceivedData } from '../crypto/channel.js';
import { ServerHandshake } from '../crypto/handshake.js';
import { ResourceError, StxError, UploadError, codeFromWire, wireNumber, type ErrorCode } from '../proto/errors.js';
import type { Frame, FrameName } from '../proto/frames.js';
import { encodePreamble } from '../proto/preamble.js';
import { serverMachine, type Machine, type ServerState } from '../proto/states.js';
import { ACK_INTERVAL_BYTES, ACK_INTERVAL_MS, MAX_UNREAD_OUTPUT_BYTES, PROGRESS_INTERVAL_MS, YOUNG_GC_INTERVAL_BYTES } from './config.js';
import type { OpenUpload as Upload, Store } from './store.js';
import { ReadGate } from './read-gate.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';

export interface SessionContext {
  readonly serverKey: KeyObject;
  readonly authorizedKeys: ReadonlySet<string> | null;
  readonly store: Store;
  readonly appendOnly: boolean;
  readonly maxFileBytes: number | undefined;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly log: Logger;
}

/** Data that only exists in some states (STYLE.md: state carries only what is valid in it). */
type Phase =
  | { readonly kind: 'Preamble'; readonly hs: ServerHandshake }
  | { readonly kind: 'Handshake'; readonly hs: ServerHandshake }
  | { readonly kind: 'Ready' }
  | { readonly kind: 'Opening'; readonly abort: AbortController }
  | { readonly kind: 'Receiving'; readonly upload: Upload; readonly started: number; readonly from: number }
  | { readonly kind: 'Verifying'; readonly upload: Upload }
  | { readonly kind: 'Closed' };

/** Every connection reports the buffers it drops here (socket reads, opened records). */
const youngGc = new YoungGenerationCollector(YOUNG_GC_INTERVAL_BYTES);

/** Crypto failures look alike on the wire (§10); the detail goes to the local log. */
const WIRE_MESSAGE: Partial<Record<ErrorCode, string>> = {
  HANDSHAKE_FAILED: 'handshake failed',
  DECRYPT_FAILED: 'a record failed to authenticate',
};

export class Session {
  readonly id: number;
  private readonly channel = FrameChannel.controlOnly();
  private readonly machine: Machine<ServerState> = serverMachine();
  private phase: Phase;
  private client: string | null = null;
  /** The asynchronous step (OPEN, END) in progress, if any; the gate holds 'step' meanwhile. */
  private busy: Promise<void> | null = null;
  private readonly gate: ReadGate;
  private helloSent = false;
  private handshakeTimer: NodeJS.Timeout | null;
  private checkpointing = false;
  private bytesSinceAck = 0;
  private lastAck = 0;
  private uploads = 0;
  /** While an answer takes time (Opening, Verifying): what PROGRESS says, and its timer (§9.7). */
  private progress = { done: 0, total: 0 };
  private progressTimer: NodeJS.Timeout | null = null;
  private readonly onClosed: (s: Session) => void;
  private readonly log: Logger;

  constructor(
    private readonly socket: Socket,
    private readonly ctx: SessionContext,
    id: number,
    onClosed: (s: Session) => void,
  ) {
    this.id = id;
    this.onClosed = onClosed;
    this.log = ctx.log.child({ conn: id, remote: `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}` });
    this.phase = {
      kind: 'Preamble',
      hs: new ServerHandshake({ serverKey: ctx.serverKey, authorizedKeys: ctx.authorizedKeys }),
    };
    this.gate = new ReadGate(socket);
    socket.setNoDelay(true);
    socket.setTimeout(ctx.idleTimeoutMs, () => this.fail(new ResourceError('TIMEOUT', `no data for ${ctx.idleTimeoutMs} ms`)));
    this.handshakeTimer = setTimeout(
      () => this.fail(new ResourceError('TIMEOUT', `handshake not finished in ${ctx.handshakeTimeoutMs} ms`)),
      ctx.handshakeTimeoutMs,
    );
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.close('socket error', err));
    socket.on('close', () => this.close('connection closed'));
    this.log.debug('connection open');
  }

  get closed(): boolean {
    return this.phase.kind === 'Closed';
  }

  /** Sends a plaintext ERROR before any handshake and closes (connection limit, §9.6). */
  static refuse(socket: Socket, code: ErrorCode, message: string): void {
    const channel = new FrameChannel();
    socket.on('error', () => socket.destroy());
    socket.end(Buffer.concat([encodePreamble(), ...channel.encode({ type: 'ERROR', code: wireNumber(code), message })]));
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.phase.kind === 'Closed') return;
    this.channel.push(chunk);
    this.pump();
    // Node reads each chunk into a new buffer; once the frames in it are handled it is garbage.
    youngGc.dropped(chunk.length);
  }

  /**
   * Handles buffered frames in order. While an asynchronous step (OPEN, END) runs, the socket is
   * paused, and frames already buffered are still judged at once in the step's state (Opening,
   * Verifying), where only PING, PONG and ERROR are allowed (§11.1): a client that sends DATA
   * before OPEN_OK gets UNEXPECTED_FRAME, not a late acceptance.
   */
  private pump(): void {
    try {
      while (this.phase.kind !== 'Closed') {
        if (this.phase.kind === 'Preamble') {
          const preamble = this.channel.readPreamble();
          if (preamble === null) return;
          this.socket.write(this.phase.hs.onClientPreamble(preamble));
          this.phase = { kind: 'Handshake', hs: this.phase.hs };
          continue;
        }
        // Long DATA records are opened piece by piece into pooled buffers as they arrive (§8).
        const received = this.channel.nextData(this.ctx.store.bodies);
        if (received === null) return;
        if ('body' in received) {
          this.handleData(received);
          continue;
        }
        const step = this.handle(received.frame, received.raw);
        if (step !== undefined) {
          if (this.busy !== null) throw new ResourceError('INTERNAL', 'a second step started while one runs');
          this.busy = step;
          this.gate.hold('step');
          step.then(
            () => {
              this.busy = null;
              if (this.phase.kind === 'Closed') return;
              this.gate.release('step');
              this.pump();
            },
            (err: unknown) => this.fail(err),
          );
        }
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /** One received frame: moves the machine (UNEXPECTED_FRAME if not allowed), then acts. */
  private handle(frame: Frame, raw: Buffer): Promise<void> | undefined {
    if (frame.type === 'ERROR') {
      const code = codeFromWire(frame.code) ?? `#${frame.code}`;
      this.machine.receive('ERROR');
      this.close(`peer sent ERROR ${code}: ${frame.message}`);
      return undefined;
    }
    this.machine.receive(frame.type);
    const phase = this.phase;
    switch (frame.type) {
      case 'CLIENT_HELLO':
        if (phase.kind !== 'Handshake') throw this.bug(frame.type);
        this.writeRaw('SERVER_HELLO', [phase.hs.onClientHello(raw, frame)]);
        this.helloSent = true;
        return undefined;
      case 'KEY_EXCHANGE': {
        if (phase.kind !== 'Handshake') throw this.bug(frame.type);
        const keys = phase.hs.onKeyExchange(raw, frame);
        this.channel.startOpening(keys.opener);
        this.channel.startSealing(keys.sealer);
        return undefined;
      }
      case 'CLIENT_FINISHED': {
        if (phase.kind !== 'Handshake') throw this.bug(frame.type);
        const accepted = phase.hs.onClientFinished(frame);
        this.client = accepted.clientFingerprint;
        this.writeRaw('SERVER_FINISHED', this.channel.sealBody(accepted.serverFinished));
        if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
        this.handshakeTimer = null;
        this.phase = { kind: 'Ready' };
        this.log.info({ event: 'authenticated', client: this.client ?? 'anonymous' }, 'client authenticated');
        return undefined;
      }
      case 'OPEN': {
        const abort = new AbortController();
        this.phase = { kind: 'Opening', abort };
        return this.open(frame, abort.signal);
      }
      case 'DATA':
        if (phase.kind !== 'Receiving') throw this.bug(frame.type);
        this.receiveData(phase.upload, frame.offset, frame.data);
        return undefined;
      case 'END':
        if (phase.kind !== 'Receiving') throw this.bug(frame.type);
        this.phase = { kind: 'Verifying', upload: phase.upload };
        this.channel.longRecords = false;
        return this.finish(phase, frame.sha256);
      case 'PING':
        this.sendFrame({ type: 'PONG', seq: frame.seq });
        return undefined;
      case 'PONG':
        return undefined;
      case 'SERVER_HELLO':
      case 'SERVER_FINISHED':
      case 'OPEN_OK':
      case 'ACK':
      case 'DONE':
      case 'PROGRESS':
      case 'GOAWAY':
        // The machine admits none of these from a client; reaching here is a table bug.
        throw this.bug(frame.type);
    }
  }

  /** A DATA record opened piece by piece (FrameChannel.nextData): the rules of a whole DATA frame. */
  private handleData(data: ReceivedData): void {
    const bodies = this.ctx.store.bodies;
    const giveBack = (): void => bodies.give(data.body);
    const phase = this.phase;
    try {
      this.machine.receive('DATA');
      if (phase.kind !== 'Receiving') throw this.bug('DATA');
    } catch (err) {
      giveBack();
      throw err;
    }
    this.receiveData(phase.upload, data.offset, data.data, giveBack);
  }

  private async open(frame: Extract<Frame, { type: 'OPEN' }>, signal: AbortSignal): Promise<void> {
    const started = Date.now();
    this.startProgress();
    const upload = await this.ctx.store
      .open(
        { principal: this.client ?? 'anonymous', name: frame.name, size: frame.size, mtime: frame.mtime, mode: frame.mode },
        { appendOnly: this.ctx.appendOnly, maxFileBytes: this.ctx.maxFileBytes },
        {
          // A reconnecting client with the same upload supersedes this (stale) connection (§9.4).
          onTakeover: () => this.fail(new UploadError('SUPERSEDED', 'another connection with the same client identity took this upload over')),
          onProgress: (done, total) => (this.progress = { done, total }),
          signal,
        },
      )
      .finally(() => this.stopProgress());
    if (this.phase.kind === 'Closed') {
      void upload.release(); // never rejects
      return;
    }
    this.phase = { kind: 'Receiving', upload, started: Date.now(), from: upload.offset };
    this.channel.longRecords = true;
    this.bytesSinceAck = 0;
    this.lastAck = Date.now();
    this.sendFrame({ type: 'OPEN_OK', offset: upload.offset });
    this.log.info(
      { event: 'open', name: frame.name, size: frame.size, offset: upload.offset, reread: upload.reread, ms: Date.now() - started },
      'upload opened',
    );
  }

  /** PROGRESS every PROGRESS_INTERVAL_MS until stopProgress(): the answer is on its way (§9.7). */
  private startProgress(): void {
    this.progress = { done: 0, total: 0 };
    this.stopProgress();
    this.progressTimer = setInterval(() => {
      if (this.phase.kind === 'Opening' || this.phase.kind === 'Verifying') this.sendFrame({ type: 'PROGRESS', ...this.progress });
    }, PROGRESS_INTERVAL_MS);
  }

  private stopProgress(): void {
    if (this.progressTimer !== null) clearInterval(this.progressTimer);
    this.progressTimer = null;
  }

  /** `onWritten` runs once the upload no longer needs `data` (written, or dropped after a failure). */
  private receiveData(upload: Upload, offset: number, data: Buffer, onWritten?: () => void): void {
    let pause: boolean;
    try {
      pause = upload.write(offset, data, onWritten);
    } catch (err) {
      onWritten?.(); // a write that throws did not take `data`
      throw err;
    }
    if (pause) this.pauseForDisk(upload);
    // Opening the record left node:crypto's output buffers behind (§8).
    youngGc.dropped(data.length);
    this.bytesSinceAck += data.length;
    if (this.bytesSinceAck >= ACK_INTERVAL_BYTES || Date.now() - this.lastAck >= ACK_INTERVAL_MS) this.checkpoint(upload);
  }

  /** Pauses the socket until the write queue (and the shared budget) drain. */
  private pauseForDisk(upload: Upload): void {
    if (this.gate.holds('disk')) return;
    this.gate.hold('disk');
    void upload.drained().then(() => this.gate.release('disk'));
  }

  /** Makes the written prefix durable and ACKs it (§9.1 step 4); one at a time. */
  private checkpoint(upload: Upload): void {
    if (this.checkpointing) return;
    this.checkpointing = true;
    this.bytesSinceAck = 0;
    this.lastAck = Date.now();
    upload.checkpoint().then(
      (durable) => {
        this.checkpointing = false;
        if (this.phase.kind === 'Receiving' && this.phase.upload === upload) this.sendFrame({ type: 'ACK', offset: durable });
      },
      (err: unknown) => {
        this.checkpointing = false;
        this.fail(err);
      },
    );
  }

  private async finish(phase: Extract<Phase, { kind: 'Receiving' }>, sha256: Buffer): Promise<void> {
    this.startProgress();
    const result = await phase.upload
      .finish(sha256, (done, total) => (this.progress = { done, total }))
      .finally(() => this.stopProgress());
    if (this.phase.kind === 'Closed') return;
    this.phase = { kind: 'Ready' };
    this.uploads++;
    this.sendFrame({ type: 'DONE', size: result.size, sha256: result.sha256 });
    const seconds = (Date.now() - phase.started) / 1000;
    const bytes = result.size - phase.from;
    this.log.info(
      {
        event: 'upload',
        outcome: result.unchanged ? 'unchanged' : 'done',
        client: this.client ?? 'anonymous',
        name: result.name,
        size: result.size,
        bytes,
        resumed_from: phase.from,
        seconds,
        bytes_per_second: seconds > 0 ? Math.round(bytes / seconds) : null,
        sha256: result.sha256.toString('hex'),
      },
      'upload done',
    );
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
    if (this.phase.kind === 'Closed') return;
    this.gate.hold('shutdown');
    const work = (async (): Promise<void> => {
      if (this.busy !== null) await this.busy.catch(() => undefined);
      const phase = this.phase;
      if (phase.kind === 'Receiving') await phase.upload.checkpoint();
      this.tellPeer('SHUTTING_DOWN', 'server shutting down; reconnect and resume', this.channel.sealing ? 'GOAWAY' : 'ERROR');
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([work.catch(() => undefined), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    this.close('shutdown');
  }

  private writeRaw(type: FrameName, pieces: Buffer[]): void {
    this.machine.send(type);
    for (const p of pieces) this.socket.write(p);
  }

  private sendFrame(frame: Frame): void {
    this.writeRaw(frame.type, this.channel.encode(frame));
    if (!this.gate.holds('peer-not-reading') && this.socket.writableLength > MAX_UNREAD_OUTPUT_BYTES) {
      this.gate.hold('peer-not-reading');
      this.socket.once('drain', () => this.gate.release('peer-not-reading'));
    }
  }

  /** Peer-caused or local failure: ERROR with the code on the wire, detail in the log, close. */
  private fail(err: unknown): void {
    if (this.phase.kind === 'Closed') return;
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
      if (this.phase.kind === 'Preamble') this.socket.write(encodePreamble());
      const keyless = this.helloSent && !this.channel.sealing;
      if (this.socket.destroyed || this.machine.state === 'Closed' || keyless) return;
      this.sendFrame({ type, code: wireNumber(code), message: message.slice(0, 1000) });
    } catch {
      // Past a key limit or mid-teardown: nothing more can be sent; closing is enough.
    }
  }

  /** The one teardown path: timers, upload lock, socket, registry. */
  private close(reason: string, err?: unknown): void {
    const phase = this.phase;
    if (phase.kind === 'Closed') return;
    this.phase = { kind: 'Closed' };
    this.gate.close();
    this.machine.close();
    this.channel.abandon(this.ctx.store.bodies);
    this.stopProgress();
    if (this.handshakeTimer !== null) clearTimeout(this.handshakeTimer);
    // An OPEN still being prepared stops; a re-read keeps what it read for the next one (§9.7).
    if (phase.kind === 'Opening') phase.abort.abort();
    if (phase.kind === 'Receiving' || phase.kind === 'Verifying') {
      const upload = phase.upload;
      const started = phase.kind === 'Receiving' ? phase.started : undefined;
      void upload.release().then((durable) =>
        this.log.info(
          {
            event: 'upload',
            outcome: err instanceof StxError && err.code === 'INTEGRITY_FAILED' ? 'integrity_failed' : 'interrupted',
            client: this.client ?? 'anonymous',
            name: upload.name,
            size: upload.size,
            received: upload.received,
            durable,
            seconds: started === undefined ? null : (Date.now() - started) / 1000,
            reason,
          },
          'upload did not finish',
        ),
      );
    }
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 2000).unref();
    const code = err instanceof StxError ? err.code : undefined;
    const level = code === undefined ? 'info' : 'warn';
    this.log[level]({ event: 'close', reason, code, client: this.client ?? 'anonymous', uploads: this.uploads }, 'connection closed');
    this.onClosed(this);
  }

  private bug(frame: FrameName): Error {
    return new ResourceError('INTERNAL', `${frame} reached the session in phase ${this.phase.kind}`);
  }
}
