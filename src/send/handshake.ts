// The client's side of the handshake (spec/PROTOCOL.md §5, §6) on a fresh connection: hello,
// the server key checked against the pin or known_hosts before anything about the upload is sent,
// key exchange, FINISHED both ways. Afterwards the connection carries records.
import type { KeyObject } from 'node:crypto';
import { ClientHandshake } from '../crypto/index.js';
import { checkServerKey, hostPortKey, recordServerKey } from '../keystore/index.js';
import { CryptoError, LocalError } from '../proto/errors.js';
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
}

/** Runs the handshake on `conn`; returns the server's fingerprint once both FINISHED checked out. */
export async function handshake(conn: Connection, opts: HandshakeOptions): Promise<string> {
  const hs = new ClientHandshake(opts.identity === undefined ? {} : { identity: opts.identity });
  const timeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  conn.sendRaw('CLIENT_HELLO', [hs.preamble(), hs.clientHello()]);
  hs.onServerPreamble(await conn.preamble(timeoutMs));
  const hello = await conn.next(timeoutMs);
  if (hello.frame.type !== 'SERVER_HELLO') throw new CryptoError('HANDSHAKE_FAILED', 'expected SERVER_HELLO');
  const info = hs.onServerHello(hello.raw, hello.frame);
  // Trust (§5) before anything about the upload is sent.
  if (opts.fingerprint !== undefined) {
    if (opts.fingerprint !== info.fingerprint) {
      throw new CryptoError(
        'SERVER_KEY_MISMATCH',
        `the server at ${hostPortKey(opts.host, opts.port)} presented key ${info.fingerprint}, but you pinned ${opts.fingerprint}. ` +
          'Someone may be intercepting the connection, or the server key was replaced. Check the fingerprint stx-recv prints at start.',
      );
    }
  }
  const trust =
    opts.fingerprint === undefined
      ? await checkServerKey({ file: opts.knownHostsFile, hostPort: hostPortKey(opts.host, opts.port), fingerprint: info.fingerprint })
      : { status: 'pinned' as const };
  const keys = hs.finish();
  conn.sendRaw('KEY_EXCHANGE', [keys.keyExchange]);
  conn.channel.startSealing(keys.sealer);
  conn.sendSealedBody('CLIENT_FINISHED', keys.clientFinished);
  conn.channel.startOpening(keys.opener);
  const fin = await conn.next(timeoutMs);
  if (fin.frame.type !== 'SERVER_FINISHED') throw new CryptoError('HANDSHAKE_FAILED', 'expected SERVER_FINISHED');
  hs.verifyServerFinished(fin.frame);
  // Only now has the server proven it holds the key (§7.3): trust on first use records it here.
  if (trust.status === 'new') {
    await recordServerKey(opts.knownHostsFile, hostPortKey(opts.host, opts.port), info.fingerprint);
    opts.onEvent?.(`trusting ${hostPortKey(opts.host, opts.port)} on first use: ${info.fingerprint} (recorded in ${opts.knownHostsFile})`);
  }
  return info.fingerprint;
}

/**
 * Runs the handshake on a fresh connection; on failure closes it (telling the server where §5 allows).
 * `onHandshake` runs at the connect; `wanted`, asked then, may say the connection is not needed after
 * all: it is closed before the handshake (LocalError INTERNAL).
 */
export async function dial(
  opts: HandshakeOptions & ConnectionOptions & { readonly connectTimeoutMs: number },
  onHandshake?: (connection: Connection) => void,
  wanted?: () => boolean,
): Promise<{ readonly connection: Connection; readonly fingerprint: string }> {
  const connection = await Connection.connect(opts.host, opts.port, opts.connectTimeoutMs, opts);
  if (wanted?.() === false) {
    connection.close();
    throw new LocalError('INTERNAL', 'connection not needed');
  }
  onHandshake?.(connection);
  try {
    return { connection, fingerprint: await handshake(connection, opts) };
  } catch (err) {
    connection.close(err);
    throw err;
  }
}
