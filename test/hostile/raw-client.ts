// A hostile stx/1 client for tests against a real stx-recv (issue "Hardening", part 2). It speaks
// the protocol step by step with our own building blocks (ClientHandshake, FrameChannel,
// RecordSealer, the codec) but lets the caller inject anything at any point: raw bytes, tampered
// transcript bytes, a wrong RSA secret (ClientHandshake's `rsaSecret` / `oaepEncrypt`), altered,
// replayed, dropped or reordered records, and any frame in any state. It reads back the server's
// preamble and frames, opening records once it has keys, and reports how a connection ended.
import { createHash, type KeyObject } from 'node:crypto';
import net from 'node:net';
import { FrameChannel } from '../../src/crypto/channel.js';
import { ClientHandshake, ServerHandshake, type ClientHandshakeOptions, type ClientKeys, type ClientTicket, type ServerKeys } from '../../src/crypto/handshake.js';
import { RecordSealer } from '../../src/crypto/record.js';
import { encodeBody, encodeFrame } from '../../src/proto/codec.js';
import { codeFromWire, StxError, type ErrorCode } from '../../src/proto/errors.js';
import { FRAME_TYPES, type Frame, type FrameName, type ServerHello } from '../../src/proto/frames.js';
import { MAX_DATA_CHUNK_BYTES } from '../../src/proto/limits.js';
import { packFrame } from '../../src/proto/pack.js';
import type { SessionKeys } from '../../src/crypto/key-schedule.js';
import { copyKeys } from '../tools/handshake-pair.js';

/** One thing the client observed on the connection. */
export type Incoming =
  /** A whole frame (opened from a record once keys exist); `raw` is what was on the wire. */
  | { readonly kind: 'frame'; readonly frame: Frame; readonly raw: Buffer }
  /** Our own decoder or record layer refused what arrived (e.g. a record we cannot open). */
  | { readonly kind: 'local'; readonly code: ErrorCode; readonly message: string }
  /** The server closed (FIN or reset); `pending` bytes of an incomplete frame were left over. */
  | { readonly kind: 'closed'; readonly pending: number }
  /** Nothing for `timeoutMs`. */
  | { readonly kind: 'timeout' };

/** How a hostile exchange ended, as seen by the client. */
export interface Outcome {
  /**
   * The error code: from the server's ERROR frame (`via: 'ERROR'`), from our failure to read what
   * arrived (`via: 'local'`, e.g. HANDSHAKE_FAILED when the server's ERROR record cannot be
   * opened, §6), 'CLOSED' when the server closed without a word (`via: 'close'`), or 'TIMEOUT'
   * when nothing happened at all (`via: 'timeout'`).
   */
  readonly code: ErrorCode | 'CLOSED' | 'TIMEOUT' | `#${number}`;
  readonly via: 'ERROR' | 'GOAWAY' | 'local' | 'close' | 'timeout';
  /** The server's ERROR/GOAWAY message, when there was one. */
  readonly message: string;
  /** Frames before the end (PONG, ACK, OPEN_OK…). */
  readonly before: readonly Frame[];
  /** Whether the socket was closed by the end of outcome() (after an ERROR: within its grace). */
  readonly closed: boolean;
}

/** What a completed handshake leaves the caller. */
export interface Session {
  readonly keys: ClientKeys;
  /** Copies of the session keys taken before the handshake erased them (§7.2). */
  readonly keyCopy: SessionKeys;
  readonly serverHello: ServerHello;
  readonly serverHelloRaw: Buffer;
  /** The server's first record (SERVER_FINISHED) as it was on the wire. */
  readonly serverFinishedRecord: Buffer;
  /** The sealed CLIENT_FINISHED record as sent. */
  readonly clientFinishedRecord: Buffer;
  /** The server took the ticket offered (SERVER_HELLO `resumed`, §7.5): no KEY_EXCHANGE was sent. */
  readonly resumed: boolean;
  /** The NEW_TICKET that followed SERVER_FINISHED, as a client keeps it, if the client asked (§7.5). */
  readonly ticket: ClientTicket | null;
  /** NEW_TICKET's lifetime (seconds), if one came. */
  readonly ticketLifetime: number | null;
}

export type HandshakeStep = 'preamble' | 'client_hello' | 'server_hello' | 'key_exchange' | 'client_finished';

export interface HandshakeHooks {
  readonly client?: ClientHandshakeOptions;
  /** The client preamble to send (default: ClientHandshake's). It enters only the server's transcript. */
  readonly preamble?: (bytes: Buffer) => Buffer;
  /** What goes on the wire instead of CLIENT_HELLO; the client's own transcript keeps the original. */
  readonly clientHello?: (bytes: Buffer) => Buffer;
  /** What the client takes in instead of the server's SERVER_HELLO bytes (a tampered transcript). */
  readonly serverHello?: (bytes: Buffer) => Buffer;
  /** What goes on the wire instead of KEY_EXCHANGE. */
  readonly keyExchange?: (bytes: Buffer) => Buffer;
  /** Replaces the CLIENT_FINISHED body before it is sealed. */
  readonly clientFinishedBody?: (body: Buffer, keys: ClientKeys) => Buffer;
  /** Replaces the sealed CLIENT_FINISHED record before it is sent (it is sealed either way). */
  readonly clientFinishedRecord?: (record: Buffer) => Buffer;
  /** Stop after this step: after sending it, or for 'server_hello' after taking it in. */
  readonly stopAfter?: HandshakeStep;
}

/** Thrown by handshake() when the server ends the exchange before SERVER_FINISHED is verified. */
export class HandshakeRefused extends Error {
  constructor(readonly outcome: Outcome) {
    super(`handshake ended: ${outcome.code} via ${outcome.via}: ${outcome.message}`);
  }
}

export const DEFAULT_WAIT_MS = 5000;
/** outcome() gives up after this many frames without an end (a peer that never stops talking). */
const MAX_FRAMES_BEFORE_OUTCOME = 100_000;
/** Longest a write() waits for the kernel to take the bytes. */
export const WRITE_WAIT_MS = 10_000;

export class RawClient {
  readonly socket: net.Socket;
  /** Receive side only: frames (or records, once opening) from the server. */
  readonly rx = new FrameChannel();
  /** Our outgoing record sealer once keys exist; tests may seal with it and send whatever they like. */
  sealer: RecordSealer | null = null;
  /** Every byte the server sent, in order. */
  readonly received: Buffer[] = [];
  private ended = false;
  private closedFlag = false;
  private wake: (() => void) | null = null;
  /** Our local port, which the daemon logs as `remote` (to find its close reason). */
  readonly localPort: number;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.localPort = socket.localPort ?? 0;
    socket.on('data', (d: Buffer) => {
      this.received.push(d);
      this.rx.push(d);
      this.poke();
    });
    socket.on('end', () => {
      this.ended = true;
      this.poke();
    });
    // An error is always followed by 'close', which ends the connection for the reader.
    socket.on('error', () => this.poke());
    socket.on('close', () => {
      this.ended = true;
      this.closedFlag = true;
      this.poke();
    });
  }

  /** Wraps an accepted socket, to play the server side (the evil servers of the client suite). */
  static adopt(socket: net.Socket): RawClient {
    return new RawClient(socket);
  }

  static connect(port: number, host = '127.0.0.1', timeoutMs = DEFAULT_WAIT_MS): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection to ${host}:${port} in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RawClient(socket));
      });
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }
  /** Whether the server has finished sending (FIN, reset or close). */
  get serverEnded(): boolean {
    return this.ended;
  }
  get receivedBytes(): number {
    let n = 0;
    for (const b of this.received) n += b.length;
    return n;
  }

  // ---- sending -------------------------------------------------------------------------------

  /**
   * Writes raw bytes; resolves once handed to the kernel, or the socket closed, or after
   * `WRITE_WAIT_MS` (a peer that stopped reading must not hang a test).
   */
  write(...pieces: readonly Buffer[]): Promise<void> {
    if (this.socket.destroyed) return Promise.resolve();
    const data = pieces.length === 1 && pieces[0] !== undefined ? pieces[0] : Buffer.concat(pieces);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.socket.off('close', done);
        resolve();
      };
      const timer = setTimeout(done, WRITE_WAIT_MS);
      this.socket.once('close', done);
      this.socket.write(data, done);
    });
  }

  /** Writes without waiting; returns false when the socket buffer is full (see drain). */
  writeNoWait(data: Buffer): boolean {
    if (this.socket.destroyed) return false;
    return this.socket.write(data);
  }

  /** Resolves when the socket can take more, or it closed, or after `timeoutMs`. */
  drain(timeoutMs = DEFAULT_WAIT_MS): Promise<boolean> {
    if (!this.socket.writableNeedDrain || this.socket.destroyed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        resolve(ok);
      };
      const onDrain = (): void => done(true);
      const onClose = (): void => done(false);
      const timer = setTimeout(() => done(false), timeoutMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
  }

  /** Half-closes (FIN): the server sees the end of our stream. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** A sealed record (length ‖ ciphertext ‖ tag) for `body`, using and advancing our C→S counter. */
  seal(body: Buffer | readonly Buffer[]): Buffer {
    if (this.sealer === null) throw new Error('RawClient: no keys yet');
    return Buffer.concat(this.sealer.seal(body));
  }

  sealFrame(frame: Frame): Buffer {
    return this.seal(encodeBody(frame));
  }

  /** Sends a frame the way the current phase wants it: a record once we have keys, else plaintext. */
  send(frame: Frame): Promise<void> {
    return this.write(this.sealer === null ? encodeFrame(frame) : this.sealFrame(frame));
  }

  /** Sends a body (type ‖ payload, any bytes) as a record. */
  sendBody(body: Buffer): Promise<void> {
    return this.write(this.seal(body));
  }

  // ---- receiving -----------------------------------------------------------------------------

  /** The server's 8-byte preamble, or null if it closed first / sent nothing in time. */
  async readPreamble(timeoutMs = DEFAULT_WAIT_MS): Promise<Buffer | null> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const p = this.rx.readPreamble();
      if (p !== null) return p;
      if (this.ended || Date.now() >= end) return null;
      await this.waitForInput(end - Date.now());
    }
  }

  /** The next thing that happens on the connection (see Incoming). */
  async next(timeoutMs = DEFAULT_WAIT_MS): Promise<Incoming> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        const r = this.rx.next();
        if (r !== null) return { kind: 'frame', frame: r.frame, raw: r.raw };
      } catch (err) {
        if (err instanceof StxError) return { kind: 'local', code: err.code, message: err.message };
        throw err;
      }
      if (this.ended) return { kind: 'closed', pending: this.rx.pending };
      if (Date.now() >= end) return { kind: 'timeout' };
      await this.waitForInput(end - Date.now());
    }
  }

  /** Waits for the next frame and insists on its type; anything else throws with what came. */
  async expectFrame<N extends FrameName>(type: N, timeoutMs = DEFAULT_WAIT_MS): Promise<Extract<Frame, { type: N }> & { readonly raw: Buffer }> {
    const got = await this.next(timeoutMs);
    if (got.kind === 'frame' && got.frame.type === type) {
      return { ...(got.frame as Extract<Frame, { type: N }>), raw: got.raw };
    }
    throw new Error(`expected ${type}, got ${describe(got)}`);
  }

  /** Reads frames, skipping ACK, PONG and PROGRESS (§9.7: sent while an answer takes long), until one of `type`; anything else throws with what came. */
  async untilFrame<N extends FrameName>(type: N, timeoutMs = DEFAULT_WAIT_MS): Promise<Extract<Frame, { type: N }>> {
    const end = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const got = await this.next(Math.max(0, end - Date.now()));
      if (got.kind === 'frame' && got.frame.type === type) return got.frame as Extract<Frame, { type: N }>;
      if (got.kind === 'frame' && (got.frame.type === 'ACK' || got.frame.type === 'PONG' || got.frame.type === 'PROGRESS')) continue;
      throw new Error(`expected ${type}, got ${describe(got)}`);
    }
    throw new Error(`no ${type} in 10000 frames`);
  }

  /**
   * Reads until the exchange ends: an ERROR or GOAWAY frame, a local failure to read, a close, or
   * `timeoutMs` of nothing. After an ERROR it also waits (up to `closeGraceMs`) for the close
   * the spec requires (§4: after sending ERROR the sender closes).
   */
  async outcome(timeoutMs = DEFAULT_WAIT_MS, closeGraceMs = 3000): Promise<Outcome> {
    const before: Frame[] = [];
    const end = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      if (i >= MAX_FRAMES_BEFORE_OUTCOME || (i > 0 && Date.now() > end)) {
        return { code: 'TIMEOUT', via: 'timeout', message: `${i} frames and no end`, before, closed: this.ended };
      }
      const got = await this.next(Math.max(0, end - Date.now()));
      switch (got.kind) {
        case 'frame': {
          const f = got.frame;
          if (f.type === 'ERROR' || f.type === 'GOAWAY') {
            await this.waitClosed(closeGraceMs);
            return { code: codeFromWire(f.code) ?? `#${f.code}`, via: f.type, message: f.message, before, closed: this.ended };
          }
          before.push(f);
          continue;
        }
        case 'local':
          return { code: got.code, via: 'local', message: got.message, before, closed: this.ended };
        case 'closed':
          return { code: 'CLOSED', via: 'close', message: `closed with ${got.pending} bytes pending`, before, closed: true };
        case 'timeout':
          return { code: 'TIMEOUT', via: 'timeout', message: '', before, closed: this.ended };
      }
    }
  }

  /** Resolves true once the server has ended the connection, false after `timeoutMs`. */
  async waitClosed(timeoutMs = DEFAULT_WAIT_MS): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.ended) {
      if (Date.now() >= end) return false;
      await this.waitForInput(end - Date.now());
    }
    return true;
  }

  // ---- protocol steps ------------------------------------------------------------------------

  /**
   * The client side of §6 with hooks at every message. Returns the session once SERVER_FINISHED
   * verified, or null when `stopAfter` stopped it early; throws HandshakeRefused with the outcome
   * if the server ends the exchange first.
   */
  async handshake(hooks: HandshakeHooks = {}, timeoutMs = DEFAULT_WAIT_MS): Promise<Session | null> {
    const hs = new ClientHandshake(hooks.client ?? {});
    await this.write(hooks.preamble?.(hs.preamble()) ?? hs.preamble());
    if (hooks.stopAfter === 'preamble') return null;
    await this.write(hooks.clientHello?.(hs.clientHello()) ?? hs.clientHello());
    if (hooks.stopAfter === 'client_hello') return null;
    const preamble = await this.readPreamble(timeoutMs);
    if (preamble === null) throw new HandshakeRefused(await this.outcome(100));
    hs.onServerPreamble(preamble);
    const hello = await this.next(timeoutMs);
    if (hello.kind !== 'frame' || hello.frame.type !== 'SERVER_HELLO') {
      throw new HandshakeRefused(hello.kind === 'frame' ? await this.outcomeFrom(hello) : this.outcomeOf(hello));
    }
    const helloBytes = hooks.serverHello?.(hello.raw) ?? hello.raw;
    const info = hs.onServerHello(helloBytes, hello.frame);
    if (hooks.stopAfter === 'server_hello') return null;
    // Resumed (§7.5): no KEY_EXCHANGE goes; an empty one stands in for it in the session.
    const keys: ClientKeys = info.resumed ? { ...hs.finishResumed(), keyExchange: Buffer.alloc(0) } : hs.finish();
    if (!info.resumed) await this.write(hooks.keyExchange?.(keys.keyExchange) ?? keys.keyExchange);
    this.sealer = keys.sealer;
    if (hooks.stopAfter === 'key_exchange') {
      this.rx.startOpening(keys.opener);
      return null;
    }
    const body = hooks.clientFinishedBody?.(keys.clientFinished, keys) ?? keys.clientFinished;
    const sealed = this.seal(body);
    const record = hooks.clientFinishedRecord?.(sealed) ?? sealed;
    await this.write(record);
    this.rx.startOpening(keys.opener);
    if (hooks.stopAfter === 'client_finished') return null;
    const fin = await this.next(timeoutMs);
    if (fin.kind !== 'frame' || fin.frame.type !== 'SERVER_FINISHED') {
      throw new HandshakeRefused(fin.kind === 'frame' ? await this.outcomeFrom(fin) : this.outcomeOf(fin));
    }
    const keyCopy = copyKeys(keys.keys);
    const psk = hs.verifyServerFinished(fin.frame);
    let ticket: ClientTicket | null = null;
    let ticketLifetime: number | null = null;
    if (psk !== null) {
      // Asked for a ticket: NEW_TICKET is the next record (§7.5).
      const t = await this.next(timeoutMs);
      if (t.kind !== 'frame' || t.frame.type !== 'NEW_TICKET') throw new HandshakeRefused(t.kind === 'frame' ? await this.outcomeFrom(t) : this.outcomeOf(t));
      ticket = { ticket: t.frame.ticket, psk, serverFingerprint: info.fingerprint };
      ticketLifetime = t.frame.lifetime;
    }
    return { keys, keyCopy, serverHello: hello.frame, serverHelloRaw: hello.raw, serverFinishedRecord: fin.raw, clientFinishedRecord: record, resumed: info.resumed, ticket, ticketLifetime };
  }

  /** OPEN → OPEN_OK offset; throws HandshakeRefused-like Error with the outcome otherwise. */
  async open(name: string, size: number, extra: { mtime?: number; mode?: number } = {}): Promise<number> {
    await this.send({ type: 'OPEN', name, size, mtime: extra.mtime ?? 1_700_000_000_000, mode: extra.mode ?? 0o644 });
    const got = await this.next();
    if (got.kind === 'frame' && got.frame.type === 'OPEN_OK') return got.frame.offset;
    throw new HandshakeRefused(got.kind === 'frame' ? await this.outcomeFrom(got) : this.outcomeOf(got));
  }

  /** DATA frames for `data` from `from`, in chunks of at most `chunk` bytes. */
  async sendData(data: Buffer, from = 0, chunk = MAX_DATA_CHUNK_BYTES): Promise<void> {
    for (let at = from; at < data.length; at += chunk) {
      const piece = data.subarray(at, Math.min(data.length, at + chunk));
      if (!this.writeNoWait(this.seal(dataBody(at, piece)))) await this.drain();
    }
  }

  /** A whole upload on an authenticated connection: OPEN, DATA, END, DONE. Returns DONE's sha256 (hex). */
  async upload(name: string, data: Buffer): Promise<string> {
    const offset = await this.open(name, data.length);
    await this.sendData(data, offset);
    await this.send({ type: 'END', sha256: sha256(data) });
    for (let i = 0; i < 1000; i++) {
      const got = await this.next();
      if (got.kind === 'frame' && got.frame.type === 'ACK') continue;
      if (got.kind === 'frame' && got.frame.type === 'DONE') return got.frame.sha256.toString('hex');
      throw new HandshakeRefused(got.kind === 'frame' ? await this.outcomeFrom(got) : this.outcomeOf(got));
    }
    throw new Error('more than 1000 ACKs before DONE');
  }

  // ---- internals -----------------------------------------------------------------------------

  private async outcomeFrom(first: Extract<Incoming, { kind: 'frame' }>): Promise<Outcome> {
    const f = first.frame;
    if (f.type === 'ERROR' || f.type === 'GOAWAY') {
      await this.waitClosed(3000);
      return { code: codeFromWire(f.code) ?? `#${f.code}`, via: f.type, message: f.message, before: [], closed: this.ended };
    }
    const rest = await this.outcome(DEFAULT_WAIT_MS);
    return { ...rest, before: [f, ...rest.before] };
  }

  private outcomeOf(got: Exclude<Incoming, { kind: 'frame' }>): Outcome {
    switch (got.kind) {
      case 'local':
        return { code: got.code, via: 'local', message: got.message, before: [], closed: this.ended };
      case 'closed':
        return { code: 'CLOSED', via: 'close', message: '', before: [], closed: true };
      case 'timeout':
        return { code: 'TIMEOUT', via: 'timeout', message: '', before: [], closed: this.ended };
    }
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private waitForInput(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      // After a stall of this process (a loaded machine), the timer and the server's bytes can be
      // due at once, and timers run before I/O: let one I/O phase pass before calling it a timeout.
      let immediate: NodeJS.Immediate | undefined;
      const wake = (): void => {
        clearTimeout(timer);
        if (immediate !== undefined) clearImmediate(immediate);
        if (this.wake === wake) this.wake = null;
        resolve();
      };
      const timer = setTimeout(() => (immediate = setImmediate(wake)), Math.max(1, timeoutMs));
      this.wake = wake;
    });
  }
}


// ---- playing the server ------------------------------------------------------------------------

/**
 * Plays the server's side of the handshake on an adopted peer up to and including KEY_EXCHANGE
 * (§6): preamble, CLIENT_HELLO → SERVER_HELLO, KEY_EXCHANGE → keys (or, for a client that resumes
 * with a ticket of this key, §7.5, the keys right after SERVER_HELLO). Null if the client strays.
 * Evil servers in the tests go on from here (a wrong FINISHED, GOAWAY, a real one).
 */
export async function serveUntilKeys(peer: RawClient, serverKey: KeyObject): Promise<{ hs: ServerHandshake; keys: ServerKeys } | null> {
  const hs = new ServerHandshake({ serverKey });
  const pre = await peer.readPreamble();
  if (pre === null) return null;
  await peer.write(hs.onClientPreamble(pre));
  const hello = await peer.next();
  if (hello.kind !== 'frame' || hello.frame.type !== 'CLIENT_HELLO') return null;
  await peer.write(hs.onClientHello(hello.raw, hello.frame));
  // A ticket taken (§7.5): no KEY_EXCHANGE comes, CLIENT_FINISHED is next.
  const resumed = hs.resumedKeys();
  if (resumed !== null) return { hs, keys: resumed };
  const kx = await peer.next();
  if (kx.kind !== 'frame' || kx.frame.type !== 'KEY_EXCHANGE') return null;
  return { hs, keys: hs.onKeyExchange(kx.raw, kx.frame) };
}

/** The whole server handshake: serveUntilKeys, then CLIENT_FINISHED → SERVER_FINISHED (and NEW_TICKET if asked). */
export async function serveHandshake(peer: RawClient, serverKey: KeyObject): Promise<boolean> {
  const got = await serveUntilKeys(peer, serverKey);
  if (got === null) return false;
  peer.rx.startOpening(got.keys.opener);
  peer.sealer = got.keys.sealer;
  const fin = await peer.next();
  if (fin.kind !== 'frame' || fin.frame.type !== 'CLIENT_FINISHED') return false;
  const accepted = got.hs.onClientFinished(fin.frame);
  await peer.write(peer.seal(accepted.serverFinished));
  // A client that asked gets its ticket right behind (§7.5), as from a server of revision 1.13.
  if (accepted.newTicket !== null) await peer.write(peer.seal(accepted.newTicket));
  return true;
}

// ---- frame builders for hostile input ----------------------------------------------------------

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** A DATA body with any u64 offset (the codec refuses offsets above 2^53 − 1, so build it by hand). */
export function dataBody(offset: number | bigint, data: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head[0] = FRAME_TYPES.DATA;
  head.writeBigUInt64BE(BigInt(offset), 1);
  return Buffer.concat([head, data]);
}

/** A plaintext frame: u32 length ‖ body. */
export function withLength(body: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

/** A u32 length prefix alone (announcing a body that never comes). */
export function lengthPrefix(length: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(length);
  return b;
}

/** A copy of `b` with bit 0 of byte `at` flipped. */
export function flipBit(b: Buffer, at: number): Buffer {
  const out = Buffer.from(b);
  const i = at < 0 ? out.length + at : at;
  out[i] = (out[i] ?? 0) ^ 0x01;
  return out;
}

/** Offset of a MessagePack key's value within a whole plaintext frame (for targeted tampering). */
export function fieldValueOffset(frame: Buffer, key: string): number {
  const k = Buffer.concat([Buffer.from([0xa0 | key.length]), Buffer.from(key, 'ascii')]);
  const at = frame.indexOf(k);
  if (at < 0) throw new Error(`field ${key} not found`);
  // key, then a bin 8 header (0xc4 len) for the fields we tamper with.
  return at + k.length + 2;
}

/** One valid frame of every type, for the per-state tables (§11). */
export function sampleFrame(type: FrameName): Frame {
  const b32 = Buffer.alloc(32, 7);
  switch (type) {
    case 'CLIENT_HELLO':
      return { type, random: b32, x25519: Buffer.alloc(32, 9) };
    case 'SERVER_HELLO':
      return { type, random: b32, x25519: Buffer.alloc(32, 9), server_key: Buffer.alloc(64, 1) };
    case 'KEY_EXCHANGE':
      return { type, encrypted_secret: Buffer.alloc(384, 3) };
    case 'CLIENT_FINISHED':
      return { type, verify: b32 };
    case 'SERVER_FINISHED':
      return { type, verify: b32 };
    case 'OPEN':
      return { type, name: 'state-table.bin', size: 10, mtime: 1_700_000_000_000, mode: 0o644 };
    case 'OPEN_OK':
      return { type, offset: 0 };
    case 'DATA':
      return { type, offset: 0, data: Buffer.from('0123456789') };
    case 'ACK':
      return { type, offset: 0 };
    case 'END':
    case 'END_DETACHED':
      return { type, sha256: b32 };
    case 'DONE':
      return { type, size: 10, sha256: b32 };
    case 'PROGRESS':
      return { type, done: 0, total: 10 };
    case 'MKDIR':
      return { type, name: 'state-table-dir', mtime: 1_700_000_000_000, mode: 0o755 };
    case 'PUT':
      return { type, name: 'state-table-put.bin', size: 10, mtime: 1_700_000_000_000, mode: 0o644 };
    case 'PUT_DONE':
      return { type, size: 10, sha256: b32 };
    case 'PUT_FAILED':
      return { type, code: 30, message: 'refused' };
    case 'PUT_INLINE': {
      const data = Buffer.from('0123456789');
      return { type, name: 'state-table-inline.bin', mtime: 1_700_000_000_000, mode: 0o644, sha256: createHash('sha256').update(data).digest(), data };
    }
    case 'PUTS_DONE':
      return { type, sha256s: b32 };
    case 'PUT_PACK':
      return packFrame([
        { name: 'state-table-pack/a.bin', size: 4, mtime: 1_700_000_000_000, mode: 0o644, sha256: b32 },
        { name: 'state-table-pack/b.bin', size: 6, mtime: 1_700_000_000_000, mode: 0o644, sha256: b32 },
      ]);
    case 'SYMLINK':
      return { type, name: 'state-table-link', target: 'state-table.bin', mtime: 1_700_000_000_000 };
    case 'MADE':
      return { type };
    case 'ERROR':
      return { type, code: 54, message: 'hostile client says goodbye' };
    case 'PING':
      return { type, seq: 1 };
    case 'PONG':
      return { type, seq: 1 };
    case 'GOAWAY':
      return { type, code: 52, message: 'a client may not send this' };
    case 'NEW_TICKET':
      return { type, ticket: b32, lifetime: 60 };
    case 'LIST':
      return { type, prefix: 'state-table' };
    case 'LIST_ENTRY':
      return { type, name: 'state-table.bin', size: 10, mtime: 1_700_000_000_000, mode: 0o644 };
    case 'LIST_END':
      return { type, count: 0 };
    case 'GET':
      return { type, name: 'state-table.bin', offset: 0 };
    case 'GET_OK':
      return { type, offset: 0, size: 10, mtime: 1_700_000_000_000, mode: 0o644 };
    case 'GET_END':
      return { type, size: 10, sha256: b32 };
    case 'LIST_DIR':
      return { type, name: 'state-table-dir', mtime: 1_700_000_000_000, mode: 0o755 };
    case 'RANGE':
      return { type, name: 'state-table.bin', size: 10, mtime: 1_700_000_000_000, mode: 0o644, start: 0, end: 10 };
    case 'RANGE_OK':
      return { type, offset: 0 };
    case 'RANGE_END':
    case 'RANGE_DONE':
      return { type, end: 10 };
  }
}

export function describe(got: Incoming): string {
  switch (got.kind) {
    case 'frame':
      return got.frame.type === 'ERROR' ? `ERROR ${codeFromWire(got.frame.code) ?? got.frame.code}: ${got.frame.message}` : got.frame.type;
    case 'local':
      return `local ${got.code}: ${got.message}`;
    case 'closed':
      return `close (${got.pending} bytes pending)`;
    case 'timeout':
      return 'timeout';
  }
}
