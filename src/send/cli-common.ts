// What stx-send (cli.ts) and stx-get (get-cli.ts) share on their command lines: the --fingerprint
// argument, the identity file's presence, and how a failure is described and worded (§10).
import { access } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError } from '../cli/conventions.js';
import { ERRORS, StxError, type ErrorCode } from '../proto/errors.js';
import { ConnectFailed } from './connection.js';
import { printable } from './printable.js';

/** A fingerprint as stx-recv prints it (§5): "SHA256:" and 43 unpadded base64 characters (32 bytes). */
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Codes whose message says it all: no "CODE:" before it on the terminal. */
const UNPREFIXED: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['USAGE', 'INTERRUPTED']);

/** How to reach the server and when to give up on it: the same options for stx-send and stx-get. */
export function connectionOptions<T>(y: Argv<T>) {
  return y
    .option('fingerprint', { type: 'string', describe: 'pin the server key (SHA256:… as stx-recv prints it: 43 base64 characters)' })
    .option('known-hosts', { type: 'string', describe: 'known-hosts file [default: $STX_HOME/known_hosts]' })
    .option('identity', { type: 'string', describe: 'Ed25519 identity to authenticate with [default: $STX_HOME/id_ed25519 if present]' })
    .option('tickets', { type: 'boolean', default: true, describe: 'resume with and keep resumption tickets in $STX_HOME/tickets (spec §7.5); --no-tickets: full handshakes, nothing stored' })
    .option('retries', { type: 'number', default: 8, describe: 'attempts without progress before giving up on a lost connection' })
    .option('retry-for', { type: 'string', describe: 'keep retrying a lost connection for this long without progress, e.g. 10m (even past --retries)' })
    .option('backoff', { type: 'number', default: 250, describe: 'first reconnect delay in ms (doubles, max 10 s)' })
    .option('handshake-timeout', { type: 'string', default: '10s', describe: 'give up a connection whose handshake takes longer (retried)' })
    .option('idle-timeout', { type: 'string', default: '60s', describe: 'drop a connection on which the server sends nothing for this long (retried)' });
}

export function fingerprintArg(text: string): string {
  const b64 = text.slice('SHA256:'.length);
  // The pattern admits 43 characters whose last one carries 2 bits too many: only one in four decodes
  // back to itself, as a real SHA-256 does.
  const shape = FINGERPRINT.test(text);
  if (!shape || Buffer.from(b64, 'base64').toString('base64').replace(/=+$/, '') !== b64) {
    throw new UsageError(
      `--fingerprint ${JSON.stringify(printable(text))} is not a fingerprint: ` +
        `${shape ? 'its last character makes it more than 32 bytes' : 'expected SHA256: and 43 base64 characters'}, ` +
        'as stx-recv prints at start (e.g. SHA256:O9UlaE9oA7VAMXz64RECuVfVF5ErVjQYhCFP9uP8AHc)',
    );
  }
  return text;
}

export async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

export interface Failure {
  /** The §10 code, local ones (usage, the file, the network, Ctrl-C) included. */
  readonly code: ErrorCode;
  readonly message: string;
  readonly advice: string | undefined;
  readonly exit: number;
}

/** The code, exit status (§10's table) and advice (from the tool's own table) for any failure; anything untyped is a bug. */
export function describeFailure(err: unknown, advice: Partial<Record<ErrorCode, string>>): Failure {
  if (err instanceof ConnectFailed) {
    const connectAdvice =
      err.reason === 'refused'
        ? `Check that stx-recv is running on ${err.host} and listening on port ${err.port} (it prints "listening on HOST:PORT" at start).`
        : 'Check the host name for a typo, or use its IP address.';
    return { code: err.code, message: err.message, advice: connectAdvice, exit: err.exitCode };
  }
  if (err instanceof StxError) return { code: err.code, message: err.message, advice: advice[err.code], exit: err.exitCode };
  return { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err), advice: undefined, exit: ERRORS.INTERNAL.exit };
}

/**
 * A failure in words for stderr (after "stx-…: "), and its message made printable for a JSON report:
 * peer-chosen text (a server's ERROR message, a name) reaches the terminal only as printable text.
 */
export function failureText(f: Failure): { readonly text: string; readonly message: string } {
  const message = printable(f.message);
  const said = `${UNPREFIXED.has(f.code) ? '' : `${f.code}: `}${message}${f.advice === undefined ? '' : `\n${f.advice}`}`;
  return { text: `${f.code === 'INTERRUPTED' ? '' : 'error: '}${said}`, message };
}
