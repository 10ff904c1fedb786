#!/usr/bin/env node
// stx-get: download files from stx-recv, or list them. `stx-get HOST PORT NAME... [--to DIR]`,
// `stx-get --list HOST PORT [PREFIX]` (README.md, "Download and list").
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadIdentity, stxHome } from '../keystore/index.js';
import { MAX_TIMER_MS, parseDuration } from '../proto/duration.js';
import { ERRORS, type ErrorCode } from '../proto/errors.js';
import { conventions, usage, UsageError } from '../cli/conventions.js';
import { tuneRuntime } from '../runtime/tuning.js';
import type { Listed } from './commands/list.js';
import { connectionOptions, describeFailure, exists, failureText, fingerprintArg, type Failure } from './cli-common.js';
import { fetchRemote, listRemote, type SessionOptions } from './get.js';
import { printable } from './printable.js';
import { loadAgeIdentities, Unsealing } from './seal.js';
import { formatBytes } from './progress.js';

/** What to do about each error the user can meet (the message says what happened). */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  SERVER_KEY_MISMATCH: 'Do not fetch until you know why the key changed.',
  AUTH_REFUSED: "Ask the server's admin to add the line printed by 'stx-keygen' to its authorized-keys file, or pass --identity.",
  NOT_ALLOWED: "The server does not let this client download; its admin can start stx-recv with --allow-download, or give this key the download option in the authorized-keys file.",
  NOT_FOUND: "Check the name with 'stx-get --list HOST PORT'.",
  BAD_NAME: 'The name cannot be fetched to a place inside --to (or is not a valid remote name).',
  INTEGRITY_FAILED: 'The data that arrived does not match the file; nothing was published. Run the command again.',
  IO_ERROR: 'The server could not read the file (or it changed while being sent); run the command again.',
  TIMEOUT: 'Check that the server is running and reachable, then run the same command again: it resumes.',
  TOO_MANY_CONNECTIONS: 'The server is busy; run the same command again later: it resumes.',
  SHUTTING_DOWN: 'The server is restarting; run the same command again: it resumes.',
  USAGE: "Run 'stx-get --help' for the options.",
};

let json = hideBin(process.argv).includes('--json');

async function main(): Promise<number> {
  const argv = await connectionOptions(
    conventions(yargs(hideBin(process.argv)))
      .scriptName('stx-get')
      .usage(
        '$0 HOST PORT NAME... [--to DIR] [options]\n$0 --list HOST PORT [PREFIX] [options]\n\n' +
          'Fetch files or whole directories from stx-recv (started with --allow-download), verified and resumable; or list them.',
      )
      .option('to', { type: 'string', default: '.', describe: 'local directory to fetch into; a directory NAME arrives as DIR/<its last component>/…' })
      .option('list', { type: 'boolean', default: false, describe: 'list the files and directories under PREFIX (size, mtime, sha256 where the server knows it, name; a directory ends in /)' })
      .option('unseal', {
        type: 'string',
        array: true,
        describe: 'age identity file (stx-keygen --age, age-keygen): NAME.age files are decrypted once verified and saved as NAME. Repeatable; without it they arrive as they are',
      }),
  )
    .option('json', { type: 'boolean', default: false, describe: 'fetch: one JSON object on stdout with the result; --list: one JSON object per file (JSON Lines)' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress or notices' })
    .strictOptions()
    .parseAsync();
  if (argv.help === true || argv.version === true) return 0;
  json = argv.json;
  const [host, portText, ...rest] = argv._.map(String);
  if (host === undefined || portText === undefined) throw new UsageError(argv.list ? 'expected HOST PORT [PREFIX]' : 'expected HOST PORT NAME...');
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`not a port: ${portText}`);
  if (!Number.isInteger(argv.retries) || argv.retries < 0) throw new UsageError('--retries must be a whole number');
  if (argv.list && rest.length > 1) throw new UsageError('--list takes at most one PREFIX');
  if (!argv.list && rest.length === 0) throw new UsageError('expected HOST PORT NAME...');
  usage(() => tuneRuntime(['aligned-memory', 'young-gc', 'keep-freed-memory']));
  const identityFile = argv.identity ?? path.join(stxHome(), 'id_ed25519');
  const identity = argv.identity !== undefined || (await exists(identityFile)) ? await loadIdentity(identityFile) : undefined;
  const unseal = argv.unseal === undefined || argv.list ? undefined : new Unsealing(await loadAgeIdentities(argv.unseal));
  const tty = process.stderr.isTTY && !argv.quiet && !argv.json;
  const session: SessionOptions = {
    host,
    port,
    fingerprint: argv.fingerprint === undefined ? undefined : fingerprintArg(argv.fingerprint),
    knownHostsFile: argv['known-hosts'] ?? path.join(stxHome(), 'known_hosts'),
    // --no-tickets: neither offered nor asked for (§7.5), nothing kept.
    ...(argv.tickets ? {} : { ticketDir: null }),
    identity,
    retries: argv.retries,
    retryForMs: argv['retry-for'] === undefined ? undefined : usage(() => parseDuration(argv['retry-for'] ?? ''), '--retry-for'),
    backoffMs: argv.backoff,
    handshakeTimeoutMs: usage(() => parseDuration(argv['handshake-timeout'], MAX_TIMER_MS), '--handshake-timeout'),
    idleTimeoutMs: usage(() => parseDuration(argv['idle-timeout'], MAX_TIMER_MS), '--idle-timeout'),
    onEvent: argv.quiet ? undefined : (m) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}stx-get: ${printable(m)}\n`),
  };
  process.once('SIGINT', () => fail({ code: 'INTERRUPTED', message: 'interrupted: run the same command again to resume', advice: undefined, exit: ERRORS.INTERRUPTED.exit }));

  if (argv.list) {
    const human = process.stdout.isTTY && !argv.json;
    await listRemote({ ...session, prefix: (rest[0] ?? '').replace(/\/+$/, ''), onEntry: (e) => process.stdout.write(`${argv.json ? jsonEntry(e) : listLine(e, human)}\n`) });
    return 0;
  }

  let lastDraw = 0;
  const result = await fetchRemote({
    ...session,
    names: rest,
    to: argv.to,
    unseal,
    onProgress: tty
      ? (name, received, size) => {
          const now = Date.now();
          if (now - lastDraw < 200 && received < size) return;
          lastDraw = now;
          process.stderr.write(`\r\x1b[K${printable(name)}  ${formatBytes(received)} of ${formatBytes(size)}`);
        }
      : undefined,
    onSkip: (f) => {
      if (argv.quiet || argv.json) return;
      process.stderr.write(`${tty ? '\r\x1b[K' : ''}stx-get: ${printable(f.path)}: skipped, identical to the local copy (size and SHA-256)\n`);
    },
    onFile: (f) => {
      if (argv.quiet || argv.json) return;
      const from = f.resumed_from > 0 ? `, resumed from ${f.resumed_from}` : '';
      const unsealed = f.unsealed_bytes === undefined ? '' : `, unsealed: ${f.unsealed_bytes} bytes`;
      process.stderr.write(`${tty ? '\r\x1b[K' : ''}stx-get: ${printable(f.path)}: ${f.bytes} bytes (${formatBytes(f.bytes)}) verified${from}, sha256 ${f.sha256}${unsealed}\n`);
    },
  });
  if (argv.json) {
    process.stdout.write(`${JSON.stringify({ ok: true, host, port, to: path.resolve(argv.to), ...result })}\n`);
  } else if (!argv.quiet) {
    const skipped = result.skipped_count > 0 ? `, ${result.skipped_count} skipped (identical)` : '';
    process.stderr.write(`stx-get: ${result.files.length} files, ${result.directories} directories${skipped}, ${formatBytes(result.bytes)} received in ${result.seconds.toFixed(1)} s\n`);
  }
  return 0;
}

/** One listing line: size, mtime, sha256 (or -) and the name, made safe for a terminal; a directory's size is `dir`, its name ends in /. */
function listLine(e: Listed, human: boolean): string {
  const dir = e.kind === 'directory';
  const size = dir ? (human ? 'dir'.padStart(10) : 'dir') : human ? formatBytes(e.size).padStart(10) : String(e.size);
  const mtime = new Date(e.mtime).toISOString();
  const sha = dir ? '-' : (e.sha256?.toString('hex') ?? '-');
  return `${size}  ${mtime}  ${human ? sha.slice(0, 16).padEnd(16) : sha}  ${printable(e.name)}${dir ? '/' : ''}`;
}

function jsonEntry(e: Listed): string {
  if (e.kind === 'directory') return JSON.stringify({ name: e.name, kind: 'directory', mtime: e.mtime, mode: e.mode });
  return JSON.stringify({ name: e.name, kind: 'file', size: e.size, mtime: e.mtime, mode: e.mode, sha256: e.sha256?.toString('hex') ?? null });
}

/** Reports a failure on stderr, and as one JSON object on stdout with --json; then exits. */
function fail(f: Failure): never {
  const { text, message } = failureText(f);
  process.stderr.write(`\nstx-get: ${text}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, code: f.code, message, exit_code: f.exit })}\n`);
  process.exit(f.exit);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => fail(describeFailure(err, ADVICE)),
);
