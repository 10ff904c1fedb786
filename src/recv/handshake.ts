// The server's side of the handshake (spec/PROTOCOL.md §3, §5, §6) on a fresh connection: the
// client's preamble answered with ours, CLIENT_HELLO with SERVER_HELLO, KEY_EXCHANGE switches the
// channel to records, CLIENT_FINISHED names the client. ServerHandshake (src/crypto) does the
// cryptography; this file moves its bytes over the connection, one received frame at a time.
import type { KeyObject } from 'node:crypto';
import type { FrameChannel } from '../crypto/channel.js';
import { ServerHandshake } from '../crypto/handshake.js';
import { ResourceError } from '../proto/errors.js';
import type { Frame, FrameName } from '../proto/frames.js';
import type { HandshakeTicket } from './admission.js';

/**
 * The connection's states while the handshake runs (§11.1), with what each needs; `ticket` is its
 * place among the handshakes in progress (admission.ts), given up once SERVER_FINISHED goes out.
 */
export type HandshakeState =
  /** Before CLIENT_HELLO; `preambleRead` once the client's preamble came and ours went out (§3). */
  | { readonly kind: 'AwaitClientHello'; readonly hs: ServerHandshake; readonly ticket: HandshakeTicket | undefined; readonly preambleRead: boolean }
  | { readonly kind: 'AwaitKeyExchange'; readonly hs: ServerHandshake; readonly ticket: HandshakeTicket | undefined }
  | { readonly kind: 'AwaitClientFinished'; readonly hs: ServerHandshake; readonly ticket: HandshakeTicket | undefined };

/** What the handshake needs of its connection. */
export interface HandshakeLink {
  readonly channel: FrameChannel;
  /** Moves the connection to `next` (its name already checked against §11.1). */
  enter(next: HandshakeState): void;
  /** Bytes that are no frame (the preamble). */
  write(bytes: Buffer): void;
  /** A frame already encoded (the handshake's own bytes), checked against §11.1 as sent. */
  sendRaw(type: FrameName, pieces: readonly Buffer[]): void;
}

/** CLIENT_FINISHED checked out: who the client is, and the SERVER_FINISHED body to seal. */
export interface Accepted {
  /** The client's identity fingerprint (§7.4), or null for an anonymous client. */
  readonly client: string | null;
  readonly serverFinished: Buffer;
  /** NEW_TICKET body to seal right after SERVER_FINISHED, if the client asked (§7.5). */
  readonly newTicket: Buffer | null;
  /** The client resumed a session with a ticket (§7.5). */
  readonly resumed: boolean;
}

export interface HandshakeOptions {
  readonly serverKey: KeyObject;
  readonly authorizedKeys: ReadonlySet<string> | null;
  /** With authorized keys, whether anonymous clients get in too (--anonymous-namespace, §7.4). */
  readonly anonymous?: boolean | undefined;
  /** The admission that let this connection start its handshake (server.ts); none in unit tests. */
  readonly ticket?: HandshakeTicket | undefined;
  /** Whether the client a resumption ticket names would get in now (§7.5: from=, the current file). */
  readonly admitsResumed?: ((client: string | null) => boolean) | undefined;
}

export function beginHandshake(opts: HandshakeOptions): HandshakeState {
  const hs = new ServerHandshake({
    serverKey: opts.serverKey,
    authorizedKeys: opts.authorizedKeys,
    anonymous: opts.anonymous === true,
    ...(opts.admitsResumed === undefined ? {} : { admitsResumed: opts.admitsResumed }),
  });
  return { kind: 'AwaitClientHello', hs, ticket: opts.ticket, preambleRead: false };
}

/** Reads the client's preamble if it is all there and answers with ours; false while it is not. */
export function readPreamble(state: HandshakeState & { readonly kind: 'AwaitClientHello' }, link: HandshakeLink): boolean {
  const preamble = link.channel.readPreamble();
  if (preamble === null) return false;
  link.write(state.hs.onClientPreamble(preamble));
  link.enter({ kind: 'AwaitClientHello', hs: state.hs, ticket: state.ticket, preambleRead: true });
  return true;
}

/**
 * One handshake frame, received in `state` (the connection checked it against §11.1). Returns
 * the accepted client after CLIENT_FINISHED, else null. A step that throws leaves the state as
 * it was: the connection then knows whether an ERROR can still reach the client (§6).
 */
export function respond(state: HandshakeState, frame: Frame, raw: Buffer, link: HandshakeLink): Accepted | null {
  const { hs, ticket } = state;
  if (frame.type === 'CLIENT_HELLO' && state.kind === 'AwaitClientHello') {
    const hello = hs.onClientHello(raw, frame);
    link.enter({ kind: 'AwaitKeyExchange', hs, ticket });
    link.sendRaw('SERVER_HELLO', [hello]);
    // A ticket taken (§7.5): no KEY_EXCHANGE and no RSA; records both ways from here on.
    const resumed = hs.resumedKeys();
    if (resumed !== null) {
      link.channel.startOpening(resumed.opener);
      link.channel.startSealing(resumed.sealer);
      link.enter({ kind: 'AwaitClientFinished', hs, ticket });
    }
    return null;
  }
  if (frame.type === 'KEY_EXCHANGE' && state.kind === 'AwaitKeyExchange') {
    ticket?.decrypting();
    const keys = hs.onKeyExchange(raw, frame);
    link.channel.startOpening(keys.opener);
    link.channel.startSealing(keys.sealer);
    link.enter({ kind: 'AwaitClientFinished', hs, ticket });
    return null;
  }
  if (frame.type === 'CLIENT_FINISHED' && state.kind === 'AwaitClientFinished') {
    const accepted = hs.onClientFinished(frame);
    // The expensive part is over: this connection no longer counts as a handshake in progress.
    ticket?.end();
    return { client: accepted.clientFingerprint, serverFinished: accepted.serverFinished, newTicket: accepted.newTicket, resumed: accepted.resumed };
  }
  // The tables admit nothing else here; reaching this is a bug of ours, not the client's.
  throw new ResourceError('INTERNAL', `${frame.type} reached the handshake in state ${state.kind}`);
}
