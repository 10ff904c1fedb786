#!/usr/bin/env node
// stx-send: the client. `stx-send HOST PORT PATH` (README.md lists every flag and exit code).
import { access } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadIdentity, stxHome } from '../crypto/index.js';
import { parseDuration } from '../proto/duration.js';
import { StxError, type ErrorCode } from '../proto/errors.js';
import { Progress } from './progress.js';
import { LocalFileError, upload } from './upload.js';
import { keygen } from './keygen.js';
import { packageVersion } from './version.js';

/** What to do about each error the user can meet (the message says what happened). */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  SERVER_KEY_MISMATCH: 'Do not send until you know why the key changed.',
  AUTH_REFUSED: "Ask the server's admin to add the line printed by 'stx-keygen' (or 'stx-send --keygen') to its authorized-keys file, or pass --identity.",
  BAD_NAME: 'Choose another remote name with --as (a relative path without .., control characters or .stx).',
  BUSY: 'Another client is uploading the same name right now; try again when it is done.',
  EXISTS: 'The server is append-only and the name exists; pick another name with --as.',
  NO_SPACE: 'The server is out of disk space; the partial upload is kept, run the same command again once space is freed.',
  TOO_LARGE: 'The file is larger than the server allows.',
  INTEGRITY_FAILED: 'The data that arrived does not match the file; the server discarded it. Run the command again.',
  TIMEOUT: 'Check that the server is running and reachable, then run the same command again: it resumes.',
  TOO_MANY_CONNECTIONS: 'The server is busy; run the same command again later: it resumes.',
  SHUTTING_DOWN: 'The server is restarting; run the same command again: it resumes.',
  IO_ERROR: "The server could not write to its disk; ask its admin to check the server's log.",
};

const EXIT_USAGE = 2;
const EXIT_CONNECT = 3;
const EXIT_LOCAL = 1;

class UsageError extends Error {}

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('stx-send')
    .usage('$0 HOST PORT PATH [options]\n$0 --keygen [--identity FILE]\n\nSend a file to stx-recv; resumes by itself after interruptions.')
    .option('as', { type: 'string', describe: 'remote name (relative path) [default: the file name]' })
    .option('fingerprint', { type: 'string', describe: "pin the server key (SHA256:…, as stx-recv prints it)" })
    .option('known-hosts', { type: 'string', describe: 'known-hosts file [default: $STX_HOME/known_hosts]' })
    .option('identity', { type: 'string', describe: 'Ed25519 identity to authenticate with [default: $STX_HOME/id_ed25519 if present]' })
    .option('retries', { type: 'number', default: 8, describe: 'attempts without progress before giving up' })
    .option('backoff', { type: 'number', default: 250, describe: 'first reconnect delay in ms (doubles, max 10 s)' })
    .option('handshake-timeout', { type: 'string', default: '10s', describe: 'give up a connection whose handshake takes longer (retried)' })
    .option('idle-timeout', { type: 'string', default: '60s', describe: 'drop a connection on which the server sends nothing for this long (retried)' })
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON line with the result' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress or notices' })
    .option('keygen', { type: 'boolean', default: false, describe: 'write an Ed25519 identity and print its authorized-keys line' })
    .strictOptions()
    .exitProcess(false)
    // yargs passes no error for its own validation failures, whatever its types say.
    .fail((msg: string, err: Error | undefined) => {
      throw err ?? new UsageError(msg);
    })
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .alias('version', 'V')
    .parseAsync();
  if (argv.help === true || argv.version === true) return 0;

  const identityFile = argv.identity ?? path.join(stxHome(), 'id_ed25519');
  if (argv.keygen) {
    process.stdout.write(`${await keygen(identityFile)}\n`);
    return 0;
  }
  const [host, portText, file, ...extra] = argv._.map(String);
  if (host === undefined || portText === undefined || file === undefined || extra.length > 0) {
    throw new UsageError('expected HOST PORT PATH');
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`not a port: ${portText}`);
  const retries = argv.retries;
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError('--retries must be a whole number');
  const identity = argv.identity !== undefined || (await exists(identityFile)) ? await loadIdentity(identityFile) : undefined;

  const tty = process.stderr.isTTY && !argv.quiet && !argv.json;
  const name = argv.as ?? path.basename(file);
  if (name === '') throw new UsageError('the remote name (--as) must not be empty');
  const bar = tty ? new Progress(process.stderr, name) : null;
  const result = await upload({
    host,
    port,
    file,
    name,
    ...(argv.fingerprint === undefined ? {} : { fingerprint: argv.fingerprint }),
    knownHostsFile: argv['known-hosts'] ?? path.join(stxHome(), 'known_hosts'),
    ...(identity === undefined ? {} : { identity }),
    retries,
    backoffMs: argv.backoff,
    handshakeTimeoutMs: durationArg(argv['handshake-timeout'], '--handshake-timeout'),
    idleTimeoutMs: durationArg(argv['idle-timeout'], '--idle-timeout'),
    onProgress: bar === null ? undefined : (p) => bar.update(p.sent, p.size, p.reconnects, p.sent === p.size),
    onEvent: argv.quiet ? undefined : (m) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}stx-send: ${m}\n`),
  });
  bar?.done();
  if (argv.json) {
    process.stdout.write(
      `${JSON.stringify({
        file: result.file,
        name: result.name,
        bytes: result.bytes,
        sha256: result.sha256,
        seconds: result.seconds,
        bytes_per_second: result.bytes_per_second,
        resumed_from: result.resumed_from,
        reconnects: result.reconnects,
      })}\n`,
    );
  } else if (!argv.quiet) {
    process.stderr.write(`stx-send: ${name}: ${result.bytes} bytes verified, sha256 ${result.sha256}\n`);
  }
  return 0;
}

function durationArg(text: string, flag: string): number {
  try {
    return parseDuration(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    let code = EXIT_LOCAL;
    let text: string;
    if (err instanceof UsageError) {
      code = EXIT_USAGE;
      text = `${err.message}\nRun 'stx-send --help' for the options.`;
    } else if (err instanceof StxError) {
      code = err.code === 'TIMEOUT' || err.code === 'TRUNCATED' ? EXIT_CONNECT : err.exitCode;
      const advice = ADVICE[err.code];
      text = `${err.code}: ${err.message}${advice === undefined ? '' : `\n${advice}`}`;
    } else if (err instanceof LocalFileError) {
      text = err.message;
    } else {
      text = err instanceof Error ? err.message : String(err);
    }
    process.stderr.write(`stx-send: error: ${text}\n`);
    process.exit(code);
  },
);
