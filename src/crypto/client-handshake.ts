// Client side of the stx/1 handshake (spec/PROTOCOL.md §3, §5–§7): pure state, no I/O. The
// caller moves bytes; this class builds the client's messages, checks the server's, and hands
// back the record layer once the keys exist.
import { randomBytes, type KeyObject } from 'node:crypto';
import { encodeBody, encodeFrame } from '../proto/codec.js';
import { CryptoError, ProtocolError } from '../proto/errors.js';
import type { ClientFinished, ServerFinished, ServerHello } from '../proto/frames.js';
import { PROTOCOL_VERSION } from '../proto/limits.js';
import { encodePreamble, parsePreamble } from '../proto/preamble.js';
import { fingerprint } from './fingerprint.js';
import { deriveKeys, eraseKeys, finishedMac, RSA_SECRET_BYTES, verifyFinished, type SessionKeys } from './key-schedule.js';
import { oaepEncrypt, parseServerKey } from './oaep.js';
import { RecordOpener, RecordSealer } from './record.js';
import { signTranscript } from './signature.js';
import { checkFrameBytes, Transcript } from './transcript.js';
import { x25519KeyPair, x25519SharedSecret, type X25519KeyPair } from './x25519.js';

export const RANDOM_BYTES = 32;

/** Encrypts rsa_secret for KEY_EXCHANGE (§7.1); replaceable only so vectors can fix the OAEP seed. */
type OaepEncryptFn = (serverKey: KeyObject, rsaSecret: Buffer, label: Buffer) => Buffer;

export interface ClientHandshakeOptions {
  /** CLIENT_HELLO.random; 32 fresh random bytes unless given (vectors). */
  readonly random?: Buffer;
  /** Ephemeral X25519 private key; a fresh one unless given (vectors). */
  readonly x25519Private?: KeyObject | Buffer;
  /** rsa_secret (§7.1); 32 fresh random bytes unless given (vectors). */
  readonly rsaSecret?: Buffer;
  /** Ed25519 private key to authenticate with (§7.4); anonymous without it. */
  readonly identity?: KeyObject;
  /** Defaults to node:crypto RSA-OAEP-SHA-256; vectors inject their stored ciphertext. */
  readonly oaepEncrypt?: OaepEncryptFn;
  /** A ticket to resume with (§7.5, revision 1.13), from a NEW_TICKET of the server `serverFingerprint`. */
  readonly ticket?: ClientTicket | undefined;
  /** Ask for a NEW_TICKET after SERVER_FINISHED (CLIENT_HELLO `tickets`, §7.5). */
  readonly askTicket?: boolean | undefined;
}

/** What a client keeps of a NEW_TICKET (§7.5): the ticket, its psk, and the server it came from. */
export interface ClientTicket {
  readonly ticket: Buffer;
  /** K("resumption", 32) of the session that received the ticket (§7.2). */
  readonly psk: Buffer;
  readonly serverFingerprint: string;
}

/** What the caller checks against its pins / known hosts (§5) before calling finish(). */
export interface ServerKeyInfo {
  readonly fingerprint: string;
  /** SERVER_HELLO.server_key as received (DER SubjectPublicKeyInfo). */
  readonly serverKeyDer: Buffer;
  /** The server took the ticket (§7.5): no KEY_EXCHANGE, and CLIENT_FINISHED carries no identity. */
  readonly resumed: boolean;
}

export interface ClientKeys {
  /** KEY_EXCHANGE, a whole plaintext frame to send as is. */
  readonly keyExchange: Buffer;
  /** CLIENT_FINISHED body (type ‖ payload): send it as the first record, sealer.seal(clientFinished). */
  readonly clientFinished: Buffer;
  /** The derived keys; zeroed once verifyServerFinished() returns (§7.2). */
  readonly keys: SessionKeys;
  /** Seals C→S records with c2s_key/c2s_iv from seq 0 (§8). */
  readonly sealer: RecordSealer;
  /** Opens S→C records; a first record that fails to open is HANDSHAKE_FAILED (§6.1). */
  readonly opener: RecordOpener;
  /** H_ke (§6.1). */
  readonly transcriptHash: Buffer;
}

type State =
  | { readonly kind: 'AwaitServerPreamble'; readonly ephemeral: X25519KeyPair }
  | { readonly kind: 'AwaitServerHello'; readonly ephemeral: X25519KeyPair }
  // A resumed session needs no server key object: no KEY_EXCHANGE is encrypted to it (§7.5).
  | ({ readonly kind: 'CheckServerKey'; readonly dh: Buffer; readonly hSh: Buffer } & ({ readonly resumed: false; readonly serverKey: KeyObject } | { readonly resumed: true }))
  | { readonly kind: 'AwaitServerFinished'; readonly keys: SessionKeys; readonly hKe: Buffer }
  | { readonly kind: 'Done' }
  | { readonly kind: 'Failed' };

export class ClientHandshake {
  private state: State;
  private readonly transcript = new Transcript();
  private readonly preambleBytes = encodePreamble(PROTOCOL_VERSION);
  private readonly helloBytes: Buffer;
  private readonly rsaSecret: Buffer;
  private readonly identity: KeyObject | undefined;
  private readonly encrypt: OaepEncryptFn;
  private readonly ticket: ClientTicket | undefined;
  private readonly askTicket: boolean;

  constructor(options: ClientHandshakeOptions = {}) {
    const random = options.random ?? randomBytes(RANDOM_BYTES);
    if (random.length !== RANDOM_BYTES) throw new RangeError(`random must be ${RANDOM_BYTES} bytes`);
    this.rsaSecret = options.rsaSecret === undefined ? randomBytes(RSA_SECRET_BYTES) : Buffer.from(options.rsaSecret);
    if (this.rsaSecret.length !== RSA_SECRET_BYTES) throw new RangeError(`rsa_secret must be ${RSA_SECRET_BYTES} bytes`);
    const ephemeral = x25519KeyPair(options.x25519Private);
    if (options.identity !== undefined && (options.identity.type !== 'private' || options.identity.asymmetricKeyType !== 'ed25519')) {
      throw new TypeError('identity must be an Ed25519 private key');
    }
    this.identity = options.identity;
    this.encrypt = options.oaepEncrypt ?? oaepEncrypt;
    this.ticket = options.ticket;
    this.askTicket = options.askTicket === true;
    this.helloBytes = encodeFrame({
      type: 'CLIENT_HELLO',
      random,
      x25519: ephemeral.publicKey,
      ...(this.ticket === undefined ? {} : { ticket: this.ticket.ticket }),
      ...(this.askTicket ? { tickets: 1 } : {}),
    });
    this.transcript.add(this.preambleBytes, this.helloBytes);
    this.state = { kind: 'AwaitServerPreamble', ephemeral };
  }

  /** The client preamble (§3), sent first. */
  preamble(): Buffer {
    return this.preambleBytes;
  }

  /** The whole CLIENT_HELLO frame; MAY be sent right after the preamble (§3). */
  clientHello(): Buffer {
    return this.helloBytes;
  }

  /** Checks the server preamble (§3): BAD_PREAMBLE / VERSION_UNSUPPORTED. */
  onServerPreamble(bytes: Buffer): void {
    const s = this.state;
    if (s.kind !== 'AwaitServerPreamble') throw this.outOfOrder('AwaitServerPreamble');
    this.guard(() => {
      const version = parsePreamble(bytes);
      if (version !== PROTOCOL_VERSION) {
        throw new ProtocolError('VERSION_UNSUPPORTED', `server selected version ${version}, this client offered ${PROTOCOL_VERSION}`);
      }
      this.transcript.add(bytes);
      this.state = { kind: 'AwaitServerHello', ephemeral: s.ephemeral };
    });
  }

  /**
   * Takes SERVER_HELLO (the whole frame as received, and its decoded form), computes dh and
   * H_sh, and returns the server key for the trust check of §5, which the caller MUST do before
   * finish(). HANDSHAKE_FAILED for an unusable server key or X25519 share (§7.1).
   */
  onServerHello(frameBytes: Buffer, frame: ServerHello): ServerKeyInfo {
    const s = this.state;
    if (s.kind !== 'AwaitServerHello') throw this.outOfOrder('AwaitServerHello');
    checkFrameBytes(frameBytes, 'SERVER_HELLO');
    return this.guard(() => {
      const resumed = frame.resumed === 1;
      const serverFingerprint = fingerprint(frame.server_key);
      // The key of the ticket's fingerprint passed this check in the handshake that issued the
      // ticket (the same bytes, by their SHA-256): parsing it again (~0.1 ms) would find the same.
      const serverKey = resumed && this.ticket?.serverFingerprint === serverFingerprint ? null : parseServerKey(frame.server_key);
      // A server resumes only the ticket it was offered, and only under the key that issued it (§7.5).
      if (resumed && this.ticket === undefined) throw new CryptoError('HANDSHAKE_FAILED', 'SERVER_HELLO resumed a session, but no ticket was offered');
      if (resumed && this.ticket?.serverFingerprint !== serverFingerprint) {
        throw new CryptoError('HANDSHAKE_FAILED', `SERVER_HELLO resumed with key ${serverFingerprint}, not the key ${this.ticket?.serverFingerprint ?? ''} that issued the ticket`);
      }
      const dh = x25519SharedSecret(s.ephemeral.privateKey, frame.x25519);
      this.transcript.add(frameBytes);
      // The ephemeral private key is dropped with this state; only dh is kept (§4).
      const hSh = this.transcript.current();
      this.state = serverKey === null ? { kind: 'CheckServerKey', dh, hSh, resumed: true } : { kind: 'CheckServerKey', dh, hSh, resumed: false, serverKey };
      return { fingerprint: serverFingerprint, serverKeyDer: frame.server_key, resumed };
    });
  }

  /**
   * After the server key is trusted: KEY_EXCHANGE, the keys, and CLIENT_FINISHED (§7.1–§7.4).
   * rsa_secret and dh are erased here.
   */
  finish(): ClientKeys {
    const s = this.state;
    if (s.kind !== 'CheckServerKey' || s.resumed) throw this.outOfOrder('CheckServerKey');
    return this.guard(() => {
      const keyExchange = encodeFrame({ type: 'KEY_EXCHANGE', encrypted_secret: this.encrypt(s.serverKey, this.rsaSecret, s.hSh) });
      this.transcript.add(keyExchange);
      return { keyExchange, ...this.derive(s) };
    });
  }

  /**
   * After the server key is trusted, when SERVER_HELLO resumed (§7.5): no KEY_EXCHANGE, H_ke = H_sh,
   * ikm = psk ‖ dh; CLIENT_FINISHED carries no identity (the ticket's is the client's).
   */
  finishResumed(): Omit<ClientKeys, 'keyExchange'> {
    const s = this.state;
    if (s.kind !== 'CheckServerKey' || !s.resumed) throw this.outOfOrder('CheckServerKey');
    return this.guard(() => this.derive(s));
  }

  private derive(s: State & { readonly kind: 'CheckServerKey' }): Omit<ClientKeys, 'keyExchange'> {
    const hKe = this.transcript.current();
    const keys = deriveKeys(s.resumed && this.ticket !== undefined ? this.ticket.psk : this.rsaSecret, s.dh, hKe);
    this.rsaSecret.fill(0);
    s.dh.fill(0);
    const verify = finishedMac(keys.cFinishedKey, hKe);
    const frame: ClientFinished =
      this.identity === undefined || s.resumed
        ? { type: 'CLIENT_FINISHED', verify }
        : { type: 'CLIENT_FINISHED', verify, ...signTranscript(this.identity, hKe) };
    const sealer = new RecordSealer(keys.c2sKey, keys.c2sIv);
    const opener = new RecordOpener(keys.s2cKey, keys.s2cIv, {
      firstRecordError: {
        code: 'HANDSHAKE_FAILED',
        message: "the server's first record failed to open: the two sides derived different keys",
      },
    });
    this.state = { kind: 'AwaitServerFinished', keys, hKe };
    return { clientFinished: encodeBody(frame), keys, sealer, opener, transcriptHash: hKe };
  }

  /**
   * Checks SERVER_FINISHED.verify in constant time (§7.3); HANDSHAKE_FAILED on mismatch. Returns
   * a copy of the session's resumption psk (§7.5) if the client asked for a ticket, else null.
   */
  verifyServerFinished(frame: ServerFinished): Buffer | null {
    const s = this.state;
    if (s.kind !== 'AwaitServerFinished') throw this.outOfOrder('AwaitServerFinished');
    return this.guard(() => {
      if (!verifyFinished(s.keys.sFinishedKey, s.hKe, frame.verify)) {
        throw new CryptoError('HANDSHAKE_FAILED', 'SERVER_FINISHED.verify does not match');
      }
      const psk = this.askTicket ? Buffer.from(s.keys.resumption) : null;
      eraseKeys(s.keys);
      this.state = { kind: 'Done' };
      return psk;
    });
  }

  /** A call out of order is a bug in the caller's state machine, not peer input. */
  private outOfOrder(expected: State['kind']): Error {
    return new Error(`ClientHandshake: called in state ${this.state.kind}, expected ${expected}`);
  }

  /** Runs a step; any failure leaves the handshake Failed with its secrets erased. */
  private guard<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      this.fail();
      throw err;
    }
  }

  private fail(): void {
    const s = this.state;
    this.rsaSecret.fill(0);
    if (s.kind === 'CheckServerKey') s.dh.fill(0);
    if (s.kind === 'AwaitServerFinished') eraseKeys(s.keys);
    this.state = { kind: 'Failed' };
  }
}
