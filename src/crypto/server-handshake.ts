// Server side of the stx/1 handshake (spec/PROTOCOL.md §3, §6, §7): pure state, no I/O.
import { randomBytes, type KeyObject } from 'node:crypto';
import { encodeBody, encodeFrame } from '../proto/codec.js';
import { CryptoError } from '../proto/errors.js';
import type { ClientFinished, ClientHello, KeyExchange } from '../proto/frames.js';
import { encodePreamble, parsePreamble, selectVersion } from '../proto/preamble.js';
import { RANDOM_BYTES } from './client-handshake.js';
import { identityFingerprint } from './fingerprint.js';
import { MAX_TICKET_LIFETIME_S } from '../proto/limits.js';
import { ticketKeyFor, type TicketContents, type TicketKey } from './ticket.js';
import { deriveKeys, eraseKeys, finishedMac, RSA_SECRET_BYTES, verifyFinished, type SessionKeys } from './key-schedule.js';
import { checkServerPrivateKey, oaepDecryptSecret, serverKeySpki } from './oaep.js';
import { RecordOpener, RecordSealer } from './record.js';
import { verifyTranscriptSignature } from './signature.js';
import { checkFrameBytes, Transcript } from './transcript.js';
import { x25519KeyPair, x25519SharedSecret, type X25519KeyPair } from './x25519.js';

export interface ServerHandshakeOptions {
  /** The server's long-term RSA private key (§5). */
  readonly serverKey: KeyObject;
  /** SERVER_HELLO.random; 32 fresh random bytes unless given (vectors). */
  readonly random?: Buffer;
  /** Ephemeral X25519 private key; a fresh one unless given (vectors). */
  readonly x25519Private?: KeyObject | Buffer;
  /**
   * Fingerprints (§7.4) of the authorized client identities, from parseAuthorizedKeys(). With a
   * set, only those clients get in; with null or nothing, anonymous clients are accepted too.
   */
  readonly authorizedKeys?: ReadonlySet<string> | null;
  /** With a set of authorized keys, whether anonymous clients get in too (default: not). */
  readonly anonymous?: boolean;
  /** Seconds a ticket issued here is good for (§7.5, revision 1.13); MAX_TICKET_LIFETIME_S unless given. */
  readonly ticketLifetimeS?: number;
  /** The time in seconds since the epoch, for tickets (§7.5); the clock unless given (vectors). */
  readonly now?: () => number;
  /** Random bytes of a ticket's nonce; fresh ones unless given (vectors). */
  readonly ticketNonce?: Buffer;
  /**
   * Whether a resumed client would be let in now (its key's from=, namespace: the server's current
   * rules, §7.5); one that would not is declined: the handshake goes on in full. Beyond the lists above.
   */
  readonly admitsResumed?: (clientFingerprint: string | null) => boolean;
}

export interface ServerKeys {
  /** The derived keys; zeroed once onClientFinished() returns (§7.2). */
  readonly keys: SessionKeys;
  /** Seals S→C records with s2c_key/s2c_iv from seq 0; its first record is SERVER_FINISHED. */
  readonly sealer: RecordSealer;
  /** Opens C→S records; a first record (CLIENT_FINISHED) that fails to open is HANDSHAKE_FAILED. */
  readonly opener: RecordOpener;
  /** H_ke (§6.1). */
  readonly transcriptHash: Buffer;
}

export interface ClientAccepted {
  /** Fingerprint of the client's Ed25519 identity (§7.4), or null for an anonymous client. */
  readonly clientFingerprint: string | null;
  /** The raw Ed25519 identity, or null. */
  readonly identity: Buffer | null;
  /** SERVER_FINISHED body (type ‖ payload), to seal as the server's first record. */
  readonly serverFinished: Buffer;
  /** NEW_TICKET body, to seal right after SERVER_FINISHED, if the client asked for a ticket (§7.5). */
  readonly newTicket: Buffer | null;
  /** The session resumed a ticket (§7.5). */
  readonly resumed: boolean;
}

type State =
  | { readonly kind: 'AwaitClientPreamble'; readonly ephemeral: X25519KeyPair }
  | { readonly kind: 'AwaitClientHello'; readonly ephemeral: X25519KeyPair; readonly preambles: readonly [Buffer, Buffer] }
  | { readonly kind: 'AwaitKeyExchange'; readonly dh: Buffer; readonly hSh: Buffer }
  | { readonly kind: 'AwaitClientFinished'; readonly keys: SessionKeys; readonly hKe: Buffer; readonly rejected: boolean; readonly resumed: ResumedClient | null }
  | { readonly kind: 'Done' }
  | { readonly kind: 'Failed' };

/** Who the ticket of a resumed session names (§7.5), and the keys made from it. */
interface ResumedClient {
  readonly identity: Buffer | null;
  readonly server: ServerKeys;
}

const KEYS_DIFFER = "CLIENT_FINISHED failed to open: the two sides derived different keys (transcript, rsa_secret or dh differ)";
const REJECTED = 'KEY_EXCHANGE: RSA-OAEP decryption failed or the secret is not 32 bytes';

type Identified = Pick<ClientAccepted, 'clientFingerprint' | 'identity'>;

/** A resumed CLIENT_FINISHED carries no identity (§7.5): the client is the one its ticket names. */
function resumedIdentity(frame: ClientFinished, resumed: ResumedClient): Identified {
  if (frame.identity !== undefined || frame.signature !== undefined) {
    throw new CryptoError('HANDSHAKE_FAILED', 'a resumed CLIENT_FINISHED carries an identity');
  }
  return { clientFingerprint: resumed.identity === null ? null : identityFingerprint(resumed.identity), identity: resumed.identity };
}

export class ServerHandshake {
  private state: State;
  private readonly transcript = new Transcript();
  private readonly serverKey: KeyObject;
  private readonly serverKeyDer: Buffer;
  private readonly random: Buffer;
  private readonly authorizedKeys: ReadonlySet<string> | null;
  private readonly anonymous: boolean;
  private readonly tickets: TicketKey;
  private readonly now: () => number;
  private readonly ticketNonce: Buffer | undefined;
  private readonly admitsResumed: (clientFingerprint: string | null) => boolean;
  /** The client asked for a ticket (CLIENT_HELLO `tickets`, §7.5). */
  private askedTicket = false;

  constructor(options: ServerHandshakeOptions) {
    checkServerPrivateKey(options.serverKey);
    this.serverKey = options.serverKey;
    this.serverKeyDer = serverKeySpki(options.serverKey);
    this.random = options.random ?? randomBytes(RANDOM_BYTES);
    if (this.random.length !== RANDOM_BYTES) throw new RangeError(`random must be ${RANDOM_BYTES} bytes`);
    this.authorizedKeys = options.authorizedKeys ?? null;
    this.anonymous = this.authorizedKeys === null || options.anonymous === true;
    this.tickets = ticketKeyFor(options.serverKey, Math.min(options.ticketLifetimeS ?? MAX_TICKET_LIFETIME_S, MAX_TICKET_LIFETIME_S));
    this.now = options.now ?? ((): number => Date.now() / 1000);
    this.ticketNonce = options.ticketNonce;
    this.admitsResumed = options.admitsResumed ?? ((): boolean => true);
    this.state = { kind: 'AwaitClientPreamble', ephemeral: x25519KeyPair(options.x25519Private) };
  }

  /** Checks the client preamble and returns the server's (§3): BAD_PREAMBLE / VERSION_UNSUPPORTED. */
  onClientPreamble(bytes: Buffer): Buffer {
    const s = this.state;
    if (s.kind !== 'AwaitClientPreamble') throw this.outOfOrder('AwaitClientPreamble');
    return this.guard(() => {
      const serverPreamble = encodePreamble(selectVersion(parsePreamble(bytes)));
      this.state = { kind: 'AwaitClientHello', ephemeral: s.ephemeral, preambles: [bytes, serverPreamble] };
      return serverPreamble;
    });
  }

  /**
   * Takes CLIENT_HELLO (the whole frame as received, and its decoded form) and returns the whole
   * SERVER_HELLO frame. A small-order client share is HANDSHAKE_FAILED (§7.1), detected here,
   * while ERROR can still go in plaintext.
   */
  onClientHello(frameBytes: Buffer, frame: ClientHello): Buffer {
    const s = this.state;
    if (s.kind !== 'AwaitClientHello') throw this.outOfOrder('AwaitClientHello');
    checkFrameBytes(frameBytes, 'CLIENT_HELLO');
    return this.guard(() => {
      const dh = x25519SharedSecret(s.ephemeral.privateKey, frame.x25519);
      this.askedTicket = frame.tickets === 1;
      const ticket = frame.ticket === undefined ? null : this.acceptTicket(frame.ticket);
      const serverHello = encodeFrame({
        type: 'SERVER_HELLO',
        random: this.random,
        x25519: s.ephemeral.publicKey,
        server_key: this.serverKeyDer,
        ...(ticket === null ? {} : { resumed: 1 }),
      });
      const [clientPreamble, serverPreamble] = s.preambles;
      this.transcript.add(clientPreamble, frameBytes, serverPreamble, serverHello);
      // The ephemeral private key is dropped with the previous state; only dh is kept (§4).
      if (ticket === null) {
        this.state = { kind: 'AwaitKeyExchange', dh, hSh: this.transcript.current() };
        return serverHello;
      }
      // Resumed (§7.5): no KEY_EXCHANGE; H_ke = H_sh and ikm = psk ‖ dh. CLIENT_FINISHED comes next.
      const hKe = this.transcript.current();
      const keys = deriveKeys(ticket.psk, dh, hKe);
      ticket.psk.fill(0);
      dh.fill(0);
      const server = this.recordLayer(keys, hKe, KEYS_DIFFER);
      this.state = { kind: 'AwaitClientFinished', keys, hKe, rejected: false, resumed: { identity: ticket.identity, server } };
      return serverHello;
    });
  }

  /**
   * A resumed handshake's keys and record layer (§7.5), once onClientHello() accepted the ticket
   * (SERVER_HELLO `resumed`); null for a full handshake, which goes on with KEY_EXCHANGE.
   */
  resumedKeys(): ServerKeys | null {
    const s = this.state;
    return s.kind === 'AwaitClientFinished' && s.resumed !== null ? s.resumed.server : null;
  }

  /**
   * The ticket's contents if this server issued it, it is good now, and the client it names would
   * get in now (the lists and admitsResumed); else null: declined, never an error (§7.5).
   */
  private acceptTicket(ticket: Buffer): TicketContents | null {
    const contents = this.tickets.open(ticket, this.now());
    if (contents === null) return null;
    const fp = contents.identity === null ? null : identityFingerprint(contents.identity);
    const listed = fp === null ? this.anonymous : this.authorizedKeys === null || this.authorizedKeys.has(fp);
    if (listed && this.admitsResumed(fp)) return contents;
    contents.psk.fill(0);
    return null;
  }

  private recordLayer(keys: SessionKeys, hKe: Buffer, message: string): ServerKeys {
    const sealer = new RecordSealer(keys.s2cKey, keys.s2cIv);
    const opener = new RecordOpener(keys.c2sKey, keys.c2sIv, { firstRecordError: { code: 'HANDSHAKE_FAILED', message } });
    return { keys, sealer, opener, transcriptHash: hKe };
  }

  /**
   * Takes KEY_EXCHANGE (whole frame and decoded form), decrypts rsa_secret and derives the keys
   * (§7.1, §7.2). An OAEP failure or a secret that is not 32 bytes does not throw here: the server
   * goes on with a random secret, so the failure shows only when CLIENT_FINISHED fails to open,
   * exactly like a wrong secret or transcript (HANDSHAKE_FAILED), and leaks nothing more. Both ways
   * do the same work, as TLS servers do against Bleichenbacher-style timing: the random secret is
   * drawn before decrypting, chosen under a mask (oaepDecryptSecret), and the keys derived once
   * from whichever secret it is; nothing throws, nothing returns early.
   */
  onKeyExchange(frameBytes: Buffer, frame: KeyExchange): ServerKeys {
    const s = this.state;
    if (s.kind !== 'AwaitKeyExchange') throw this.outOfOrder('AwaitKeyExchange');
    checkFrameBytes(frameBytes, 'KEY_EXCHANGE');
    return this.guard(() => {
      this.transcript.add(frameBytes);
      const hKe = this.transcript.current();
      const fallback = randomBytes(RSA_SECRET_BYTES);
      const { secret, decrypted } = oaepDecryptSecret(this.serverKey, frame.encrypted_secret, s.hSh, fallback);
      fallback.fill(0);
      const keys = deriveKeys(secret, s.dh, hKe);
      secret.fill(0);
      s.dh.fill(0);
      // The detail goes to the local log only; on the wire every case is HANDSHAKE_FAILED (§10).
      const server = this.recordLayer(keys, hKe, decrypted ? KEYS_DIFFER : REJECTED);
      this.state = { kind: 'AwaitClientFinished', keys, hKe, rejected: !decrypted, resumed: null };
      return server;
    });
  }

  /**
   * Checks CLIENT_FINISHED (§7.3, §7.4): `verify` first (HANDSHAKE_FAILED), then the identity
   * and signature (AUTH_REFUSED). Returns the SERVER_FINISHED body and who the client is.
   */
  onClientFinished(frame: ClientFinished): ClientAccepted {
    const s = this.state;
    if (s.kind !== 'AwaitClientFinished') throw this.outOfOrder('AwaitClientFinished');
    return this.guard(() => {
      // verify is checked whether or not KEY_EXCHANGE was rejected (§7.1: the same work either way).
      const verified = verifyFinished(s.keys.cFinishedKey, s.hKe, frame.verify);
      if (s.rejected || !verified) {
        throw new CryptoError('HANDSHAKE_FAILED', s.rejected ? 'KEY_EXCHANGE was rejected' : 'CLIENT_FINISHED.verify does not match');
      }
      const accepted = s.resumed === null ? this.checkIdentity(frame, s.hKe) : resumedIdentity(frame, s.resumed);
      const serverFinished = encodeBody({ type: 'SERVER_FINISHED', verify: finishedMac(s.keys.sFinishedKey, s.hKe) });
      const newTicket = this.askedTicket ? this.newTicket(accepted.identity, s.keys.resumption) : null;
      eraseKeys(s.keys);
      this.state = { kind: 'Done' };
      return { ...accepted, serverFinished, newTicket, resumed: s.resumed !== null };
    });
  }

  /** NEW_TICKET (§7.5): the client's identity and this session's psk, sealed under the ticket key. */
  private newTicket(identity: Buffer | null, psk: Buffer): Buffer {
    const contents = { issuedAt: Math.floor(this.now()), identity, psk };
    const ticket = this.ticketNonce === undefined ? this.tickets.seal(contents) : this.tickets.seal(contents, this.ticketNonce);
    return encodeBody({ type: 'NEW_TICKET', ticket, lifetime: this.tickets.lifetimeS });
  }

  private checkIdentity(frame: ClientFinished, hKe: Buffer): Identified {
    const { identity, signature } = frame;
    if (identity === undefined || signature === undefined) {
      if (!this.anonymous) throw new CryptoError('AUTH_REFUSED', 'anonymous client, but this server requires an authorized key');
      return { clientFingerprint: null, identity: null };
    }
    const clientFingerprint = identityFingerprint(identity);
    // The signature is checked with or without an authorized-keys file (a claimed identity must
    // be proven, §7.4), and before the lookup: an unlisted key and a listed key with a bad
    // signature cost the same work and get the same message, so a refusal does not tell an
    // attacker which keys are listed (§10).
    const proven = verifyTranscriptSignature({ identity, signature }, hKe);
    const listed = this.authorizedKeys === null || this.authorizedKeys.has(clientFingerprint);
    if (!proven || !listed) {
      throw new CryptoError('AUTH_REFUSED', `client key ${clientFingerprint} is not authorized, or its signature does not verify`);
    }
    return { clientFingerprint, identity };
  }

  /** A call out of order is a bug in the caller's state machine, not peer input. */
  private outOfOrder(expected: State['kind']): Error {
    return new Error(`ServerHandshake: called in state ${this.state.kind}, expected ${expected}`);
  }

  /** Runs a step; any failure leaves the handshake Failed with its secrets erased. */
  private guard<T>(step: () => T): T {
    try {
      return step();
    } catch (err) {
      const s = this.state;
      if (s.kind === 'AwaitKeyExchange') s.dh.fill(0);
      if (s.kind === 'AwaitClientFinished') eraseKeys(s.keys);
      this.state = { kind: 'Failed' };
      throw err;
    }
  }
}
