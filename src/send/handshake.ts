// The client's side of the handshake (spec/PROTOCOL.md §5, §6, §7.5) on a fresh connection: hello,
// the server key checked against the pin or known_hosts before anything about the upload is sent,
// key exchange (or a ticket of an earlier session, resumed), FINISHED both ways, and a new ticket.
// Afterwards the connection carries records.
import type { KeyObject } from 'node:crypto';
import path from 'node:path';
import { ClientHandshake, identityFingerprint, type ClientKeys } from '../crypto/index.js';
import { checkServerKey, hostPortKey, knownFingerprints, recordServerKey, stxHome, TicketStore, type StoredTicket } from '../keystore/index.js';
import { CryptoError, LocalError, ProtocolError, StxError } from '../proto/errors.js';
import { HANDSHAKE_TIMEOUT_MS } from '../proto/limits.js';
import { Connection, type ConnectionOptions } from './connection.js';

export interface HandshakeOptions {
  readonly host: string;
  readonly port: number;
  /** Pinned server fingerprint (§5); when set, known_hosts is not consulted. */
  readonly fingerprint?: string | undefined;
  readonly knownHostsFile: string;
  readonly identity?: KeyObject | undefined;
  readonly onEvent?: ((message: string) => void) | undefined;
  readonly handshakeTimeoutMs?: number | undefined;
  /**
   * Where resumption tickets are kept (§7.5): $STX_HOME/tickets unless given; null: no tickets
   * (neither asked for nor offered).
   */
  readonly ticketDir?: string | null | undefined;
}

/**
 * Servers (host:port) that answered a CLIENT_HELLO with ticket fields with MALFORMED_FRAME before
 * SERVER_HELLO: revision 1.12 servers, which know no tickets (§7.5). This process asks them no more.
 */
const NO_TICKETS = new Set<string>();

/** A 1.12 server refused the ticket fields (§7.5): reconnect without them, once. */
class TicketsUnknown extends LocalError {
  constructor() {
    super('CONNECTION_LOST', 'the server does not know resumption tickets (revision 1.12); reconnecting without');
  }
}

/** The tickets of this run's server and identity, or null when off. */
function storeOf(opts: HandshakeOptions, hostPort: string): TicketStore | null {
  if (opts.ticketDir === null || NO_TICKETS.has(hostPort)) return null;
  return new TicketStore(opts.ticketDir ?? path.join(stxHome(), 'tickets'));
}

/** A ticket of a key this host is known (or pinned) by, claimed for this connection alone; null if none. */
async function claimTicket(store: TicketStore, opts: HandshakeOptions, hostPort: string, client: string | null): Promise<StoredTicket | null> {
  const keys = opts.fingerprint === undefined ? await knownFingerprints(opts.knownHostsFile, hostPort) : [opts.fingerprint];
  for (const key of keys) {
    const ticket = store.take(key, client);
    if (ticket !== null) return ticket;
  }
  return null;
}

function sendKeyExchange(conn: Connection, keys: ClientKeys): ClientKeys {
  conn.sendRaw('KEY_EXCHANGE', [keys.keyExchange]);
  return keys;
}

/** The tickets of one handshake (§7.5): where they are kept, whose, and the one claimed for it. */
export interface TicketPlan {
  readonly store: TicketStore | null;
  readonly client: string | null;
  readonly ticket: StoredTicket | null;
}

/**
 * Claims a ticket for the next connection to this server, before it is made: a server that refuses
 * at once (over its limits, §9.6) finds the client waiting for its answer, not reading its store.
 */
export async function planTickets(opts: HandshakeOptions): Promise<TicketPlan> {
  const hostPort = hostPortKey(opts.host, opts.port);
  const store = storeOf(opts, hostPort);
  const client = opts.identity === undefined ? null : identityFingerprint(opts.identity);
  return { store, client, ticket: store === null ? null : await claimTicket(store, opts, hostPort, client) };
}

/**
 * Gives a claimed ticket back when the connection ended before SERVER_HELLO for a transient reason
 * (refused over the server's limits, shutting down, cut): the server used none, so a retry may.
 * Otherwise a refusal at --max-handshakes would cost a returning client its ticket.
 */
export function returnTicket(plan: TicketPlan, err: unknown): void {
  if (err instanceof StxError && err.transient) giveBack(plan);
}

/** Puts the plan's ticket, unused, back in its store (failing that, it is lost: a full handshake next). */
function giveBack(plan: TicketPlan): void {
  try {
    if (plan.store !== null && plan.ticket !== null) plan.store.putBack(plan.client, plan.ticket);
  } catch {
    // Lost: a full handshake next.
  }
}

/** Runs the handshake on `conn`; returns the server's fingerprint once both FINISHED checked out. */
export async function handshake(conn: Connection, opts: HandshakeOptions, planned?: TicketPlan): Promise<string> {
  const hostPort = hostPortKey(opts.host, opts.port);
  const plan = planned ?? (await planTickets(opts));
  const { store, client, ticket } = plan;
  const hs = new ClientHandshake({
    ...(opts.identity === undefined ? {} : { identity: opts.identity }),
    ...(ticket === null ? {} : { ticket }),
    askTicket: store !== null,
  });
  const timeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const serverHello = async (): Promise<Awaited<ReturnType<Connection['next']>>> => {
    if (store !== null) conn.asksTicket();
    conn.sendRaw('CLIENT_HELLO', [hs.preamble(), hs.clientHello()]);
    hs.onServerPreamble(await conn.preamble(timeoutMs));
    return conn.next(timeoutMs);
  };
  const hello = await serverHello().catch((err: unknown) => {
    // A 1.12 server refuses the unknown ticket fields before SERVER_HELLO (§2.1, §7.5).
    if (store !== null && err instanceof StxError && err.code === 'MALFORMED_FRAME') {
      NO_TICKETS.add(hostPort);
      throw new TicketsUnknown();
    }
    // Refused or cut before the server answered: it used no ticket (§7.5).
    returnTicket(plan, err);
    throw err;
  });
  if (hello.frame.type !== 'SERVER_HELLO') throw new CryptoError('HANDSHAKE_FAILED', 'expected SERVER_HELLO');
  const info = hs.onServerHello(hello.raw, hello.frame);
  // Trust (§5) before anything about the upload is sent; a resumed server's key too (§7.5).
  if (opts.fingerprint !== undefined) {
    if (opts.fingerprint !== info.fingerprint) {
      throw new CryptoError(
        'SERVER_KEY_MISMATCH',
        `the server at ${hostPort} presented key ${info.fingerprint}, but you pinned ${opts.fingerprint}. ` +
          'Someone may be intercepting the connection, or the server key was replaced. Check the fingerprint stx-recv prints at start.',
      );
    }
  }
  const trust =
    opts.fingerprint === undefined
      ? await checkServerKey({ file: opts.knownHostsFile, hostPort, fingerprint: info.fingerprint })
      : { status: 'pinned' as const };
  // Resumed (§7.5): no KEY_EXCHANGE; CLIENT_FINISHED is the first record all the same.
  const keys = info.resumed ? hs.finishResumed() : sendKeyExchange(conn, hs.finish());
  conn.channel.startSealing(keys.sealer);
  conn.sendSealedBody('CLIENT_FINISHED', keys.clientFinished);
  conn.channel.startOpening(keys.opener);
  const fin = await conn.next(timeoutMs);
  if (fin.frame.type !== 'SERVER_FINISHED') throw new CryptoError('HANDSHAKE_FAILED', 'expected SERVER_FINISHED');
  const psk = hs.verifyServerFinished(fin.frame);
  // Only now has the server proven it holds the key (§7.3): trust on first use records it here.
  if (trust.status === 'new') {
    await recordServerKey(opts.knownHostsFile, hostPort, info.fingerprint);
    opts.onEvent?.(`trusting ${hostPort} on first use: ${info.fingerprint} (recorded in ${opts.knownHostsFile})`);
  }
  if (store !== null && psk !== null) {
    // The first record after SERVER_FINISHED, as asked (§7.5); the state table refuses anything else.
    const t = await conn.next(timeoutMs);
    if (t.frame.type !== 'NEW_TICKET') throw new ProtocolError('UNEXPECTED_FRAME', `${t.frame.type} where NEW_TICKET was due`);
    try {
      store.save(info.fingerprint, client, t.frame.ticket, psk, t.frame.lifetime);
    } catch (err) {
      // A ticket not kept costs the next connection a full handshake, nothing more.
      opts.onEvent?.(`could not keep a resumption ticket in ${store.dir}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      psk.fill(0);
    }
  }
  return info.fingerprint;
}

/**
 * Runs the handshake on a fresh connection; on failure closes it (telling the server where §5 allows).
 * `onHandshake` runs at the connect; `wanted`, asked then, may say the connection is not needed after
 * all: it is closed before the handshake (LocalError INTERNAL). A server that does not know tickets
 * (revision 1.12) is dialled once more, without them.
 */
export async function dial(
  opts: HandshakeOptions & ConnectionOptions & { readonly connectTimeoutMs: number },
  onHandshake?: (connection: Connection) => void,
  wanted?: () => boolean,
): Promise<{ readonly connection: Connection; readonly fingerprint: string }> {
  const plan = await planTickets(opts);
  let connection: Connection;
  try {
    connection = await Connection.connect(opts.host, opts.port, opts.connectTimeoutMs, opts);
  } catch (err) {
    returnTicket(plan, err);
    throw err;
  }
  if (wanted?.() === false) {
    connection.close();
    giveBack(plan);
    throw new LocalError('INTERNAL', 'connection not needed');
  }
  onHandshake?.(connection);
  try {
    return { connection, fingerprint: await handshake(connection, opts, plan) };
  } catch (err) {
    connection.close(err);
    // NO_TICKETS now holds the server: the second dial asks for none, so this happens once.
    if (err instanceof TicketsUnknown) return dial(opts, undefined, wanted);
    throw err;
  }
}
