#!/usr/bin/env node
// stx-send: the client. `stx-send HOST PORT PATH...`, `stx-send HOST PORT - --as NAME` (README.md
// lists every flag and exit code). One regular file keeps its own report; trees and several paths
// are tree-cli.ts's, stdin is too.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { loadIdentity, stxHome } from '../keystore/index.js';
import { MAX_TIMER_MS, parseDuration } from '../proto/duration.js';
import { MAX_STREAMS_PER_UPLOAD } from '../proto/limits.js';
import { AUTO_MAX_STREAMS, AUTO_MIN_BYTES, AUTO_ONE_STREAM_RTT_MS } from './ranged.js';
import { ERRORS, type ErrorCode } from '../proto/errors.js';
import { connectionOptions, describeFailure, exists, failureText, fingerprintArg, type Failure } from './cli-common.js';
import { printable } from './printable.js';
import { formatBytes, ProgressBar } from './progress.js';
import { upload, type Progress } from './upload.js';
import { keygen } from './keygen.js';
import { Sealing, sealRecipients } from './seal.js';
import { runStream, runTree, type CommonOptions } from './tree-cli.js';
import { tuneRuntime } from '../runtime/tuning.js';
import { keepFreedMemory } from '../runtime/young-gc.js';
import { conventions, usage, UsageError } from '../cli/conventions.js';

/** What to do about each error the user can meet (the message says what happened). */
const ADVICE: Partial<Record<ErrorCode, string>> = {
  SERVER_KEY_MISMATCH: 'Do not send until you know why the key changed.',
  AUTH_REFUSED: "Ask the server's admin to add the line printed by 'stx-keygen' (or 'stx-send --keygen') to its authorized-keys file, or pass --identity.",
  BAD_NAME: 'Choose another remote name with --as (a relative path without .., control characters or .stx).',
  BUSY: 'Another client is uploading the same name right now; try again when it is done.',
  SUPERSEDED: 'Another stx-send with your identity took this upload over (is the same command running twice?); that one goes on, this one stops.',
  EXISTS: 'The server is append-only and the name exists; pick another name with --as.',
  NO_SPACE: 'The server is out of disk space; the partial upload is kept, run the same command again once space is freed.',
  TOO_LARGE: 'The file is larger than the server allows.',
  INTEGRITY_FAILED: 'The data that arrived does not match the file; the server discarded it. Run the command again.',
  TIMEOUT: 'Check that the server is running and reachable, then run the same command again: it resumes.',
  TOO_MANY_CONNECTIONS: 'The server is busy; run the same command again later: it resumes.',
  RATE_LIMITED: 'The server limits how much it reads back for one client; run the same command again later: it resumes.',
  HELD_ELSEWHERE: 'Another server of the same store still holds this upload (your last connection went to it); run the same command again shortly: it resumes.',
  SHUTTING_DOWN: 'The server is restarting; run the same command again: it resumes.',
  IO_ERROR: "The server could not write to its disk; ask its admin to check the server's log.",
  USAGE: "Run 'stx-send --help' for the options.",
};

/** What the run has learnt so far, for a failure report (--json, Ctrl-C). */
interface Known {
  host: string | null;
  port: number | null;
  /** Bytes the server confirmed durable, once it said (OPEN_OK, then ACKs), and the file's size. */
  held: { readonly durable: number; readonly size: number } | null;
  json: boolean;
  bar: ProgressBar | null;
}

// --json is looked for in the raw arguments too, so that a usage error is reported as JSON as well.
const known: Known = { host: null, port: null, held: null, json: hideBin(process.argv).includes('--json'), bar: null };

async function main(): Promise<number> {
  const argv = await connectionOptions(
    conventions(yargs(hideBin(process.argv)))
      .scriptName('stx-send')
      .usage(
        '$0 HOST PORT PATH... [--to DIR] [options]\n$0 HOST PORT - --as NAME [options]\n$0 --keygen [--identity FILE]\n\n' +
          'Send files and directory trees (or stdin) to stx-recv on one connection; resumes by itself after interruptions. ' +
          'A PATH a/b/dir is sent as dir/… (a/b/dir/ sends what dir holds), under --to DIR when given.',
      )
      .option('as', {
        type: 'string',
        describe:
          'remote name, a relative path; ending in "/" puts the file into that directory under its own name. ' +
          'Names are sent in Unicode NFC (macOS file names are NFD) [default: the file name]',
      })
      .option('to', { type: 'string', describe: 'remote directory to send everything under (created as needed)' })
      .option('checksum', { alias: 'c', type: 'boolean', default: false, describe: 'skip files the server already holds identical (same bytes, mtime and mode), comparing SHA-256: each file is read once more to hash it' })
      .option('streams', { type: 'string', default: 'auto', describe: `send a file over N connections at once, a range each (1..${MAX_STREAMS_PER_UPLOAD}): for long links, where one TCP connection cannot fill the link. Each range resumes by itself; the whole file is verified once. auto: one connection below ${AUTO_ONE_STREAM_RTT_MS} ms of round trip (or for a file under ${AUTO_MIN_BYTES / 1024 / 1024} MiB), up to ${AUTO_MAX_STREAMS} on longer links` })
      .option('links', { type: 'boolean', default: false, describe: 'send symbolic links inside trees as links (only those whose target stays inside the tree); without it they are skipped' })
      .option('seal', { type: 'string', array: true, describe: 'seal every file (and stdin) for this age recipient (age1…) before it leaves; stored as NAME.age. Repeatable' })
      .option('seal-to', { type: 'string', array: true, describe: "seal for the recipients in FILE (one age1… per line, # comments), as age's -R. Repeatable" }),
  )
    .option('json', { type: 'boolean', default: false, describe: 'print one JSON object on stdout with the result, on failure too' })
    .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'no progress or notices' })
    .option('keygen', { type: 'boolean', default: false, describe: 'write an Ed25519 identity and print its authorized-keys line' })
    .epilogue(
      'A refused connection or an unknown host fails at once (exit 3) unless a handshake with the server ' +
        'already worked; a connection lost after that is retried (--retries, --retry-for).',
    )
    .strictOptions()
    .parseAsync();
  if (argv.help === true || argv.version === true) return 0;
  known.json = argv.json;

  const identityFile = argv.identity ?? path.join(stxHome(), 'id_ed25519');
  if (argv.keygen) {
    process.stdout.write(`${await keygen(identityFile)}\n`);
    return 0;
  }
  const [host, portText, ...paths] = argv._.map(String);
  const file = paths[0];
  if (host === undefined || portText === undefined || file === undefined) {
    throw new UsageError('expected HOST PORT PATH...');
  }
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`not a port: ${portText}`);
  known.host = host;
  known.port = port;
  const streams = argv.streams === 'auto' ? 'auto' : Number(argv.streams);
  if (streams !== 'auto' && (!/^\d+$/.test(argv.streams) || streams < 1 || streams > MAX_STREAMS_PER_UPLOAD)) {
    throw new UsageError(`--streams must be auto or a whole number from 1 to ${MAX_STREAMS_PER_UPLOAD}`);
  }
  const retries = argv.retries;
  if (!Number.isInteger(retries) || retries < 0) throw new UsageError('--retries must be a whole number');
  const fingerprint = argv.fingerprint === undefined ? undefined : fingerprintArg(argv.fingerprint);
  const retryForMs = argv['retry-for'] === undefined ? undefined : durationArg(argv['retry-for'], '--retry-for');
  const handshakeTimeoutMs = durationArg(argv['handshake-timeout'], '--handshake-timeout', MAX_TIMER_MS);
  const idleTimeoutMs = durationArg(argv['idle-timeout'], '--idle-timeout', MAX_TIMER_MS);
  const to = argv.to === undefined ? undefined : remoteDir(argv.to);
  const mode = await jobOf(paths, argv.as);
  const as = argv.as === undefined ? (to === undefined ? undefined : `${to}/`) : to === undefined ? argv.as : `${to}/${argv.as}`;
  const plainName = mode === 'file' ? remoteName(as, file) : '';
  usage(() => tuneRuntime(['aligned-memory', 'young-gc', 'keep-freed-memory']));
  // Without it, each young collection's freed memory went back to the kernel and was faulted in again.
  keepFreedMemory();
  const identity = argv.identity !== undefined || (await exists(identityFile)) ? await loadIdentity(identityFile) : undefined;
  const sealing = argv.seal === undefined && argv['seal-to'] === undefined ? undefined : new Sealing(await sealRecipients(argv.seal ?? [], argv['seal-to'] ?? []));

  const tty = process.stderr.isTTY && !argv.quiet && !argv.json;
  const common: CommonOptions = {
    host,
    port,
    ...(fingerprint === undefined ? {} : { fingerprint }),
    knownHostsFile: argv['known-hosts'] ?? path.join(stxHome(), 'known_hosts'),
    // --no-tickets: neither offered nor asked for (§7.5), nothing kept.
    ...(argv.tickets ? {} : { ticketDir: null }),
    ...(identity === undefined ? {} : { identity }),
    retries,
    retryForMs,
    backoffMs: argv.backoff,
    handshakeTimeoutMs,
    idleTimeoutMs,
    sealing,
  };
  if (mode !== 'file') {
    const output = { json: argv.json, quiet: argv.quiet, tty };
    process.once('SIGINT', interrupted);
    if (mode === 'stream') return runStream(common, (to === undefined ? '' : `${to}/`) + (argv.as ?? '').normalize('NFC'), output);
    return runTree(common, paths, to, argv.links, output, argv.checksum);
  }
  const name = sealing?.name(plainName) ?? plainName;
  const bar = tty ? new ProgressBar(process.stderr, name, `${host}:${port}`) : null;
  known.bar = bar;
  process.once('SIGINT', interrupted);
  const result = await upload({
    ...common,
    file,
    name,
    files: sealing,
    checksum: argv.checksum,
    streams,
    onProgress: (p) => {
      remember(p);
      bar?.update(p);
    },
    onEvent: argv.quiet ? undefined : (m) => process.stderr.write(`${tty ? '\r\x1b[K' : ''}stx-send: ${printable(m)}\n`),
  });
  bar?.done();
  if (argv.json) {
    process.stdout.write(
      `${JSON.stringify({
        ok: true,
        file: result.file,
        name: result.name,
        host,
        port,
        server_fingerprint: result.server_fingerprint,
        bytes: result.bytes,
        sha256: result.sha256,
        seconds: result.seconds,
        bytes_per_second: result.bytes_per_second,
        resumed_from: result.resumed_from,
        reconnects: result.reconnects,
        held_elsewhere: result.held_elsewhere,
        held_elsewhere_seconds: result.held_elsewhere_seconds,
        ...(sealing === undefined ? {} : { sealed: true }),
        ...(argv.checksum ? { skipped: result.identical ? 'identical' : null } : {}),
      })}\n`,
    );
  } else if (!argv.quiet && result.identical) {
    process.stderr.write(`stx-send: ${printable(name)}: skipped, the server holds it identical (sha256 ${result.sha256})\n`);
  } else if (!argv.quiet) {
    const sealed = sealing === undefined ? '' : ` (sealed for ${sealing.recipients.length} recipient${sealing.recipients.length === 1 ? '' : 's'})`;
    process.stderr.write(`stx-send: ${printable(name)}${sealed}: ${result.bytes} bytes (${formatBytes(result.bytes)}) verified, sha256 ${result.sha256}\n`);
  }
  return 0;
}

/** Once the server said what it holds (OPEN_OK), every later report carries it, reconnects included. */
function remember(p: Progress): void {
  if (known.held !== null || p.stage === 'sending' || p.stage === 'finishing') known.held = { durable: p.durable, size: p.size };
}

/**
 * Which job the paths ask for: one regular file (the single-file report of old), stdin ("-",
 * with --as), or a tree job for anything else.
 */
async function jobOf(paths: readonly string[], as: string | undefined): Promise<'file' | 'stream' | 'tree'> {
  if (paths.includes('-')) {
    if (paths.length > 1) throw new UsageError('"-" (stdin) is sent alone');
    if (as === undefined || as === '' || as.endsWith('/')) throw new UsageError('stdin needs a remote name: --as NAME');
    return 'stream';
  }
  const [only] = paths;
  const single = paths.length === 1 && only !== undefined && !only.endsWith('/') && (await stat(only).then((st) => !st.isDirectory(), () => true));
  if (single) return 'file';
  if (as !== undefined) throw new UsageError('--as names one file; for several paths or a directory use --to DIR');
  return 'tree';
}

/** --to: a relative remote directory, without a trailing "/", in NFC. */
function remoteDir(to: string): string {
  const dir = to.replace(/\/+$/, '').normalize('NFC');
  if (dir === '') throw new UsageError('--to must name a remote directory');
  return dir;
}

/**
 * The remote name: --as, or the file's own name; "--as dir/" means dir/<the file's name>. Sent in
 * NFC, which the server requires (§9.3): macOS hands out names in NFD, and the same name typed on
 * another machine is NFC.
 */
function remoteName(as: string | undefined, file: string): string {
  const base = path.basename(file);
  const name = as === undefined ? base : as.endsWith('/') ? `${as}${base}` : as;
  if (name === '') throw new UsageError('the remote name (--as) must not be empty');
  return name.normalize('NFC');
}

function durationArg(text: string, flag: string, maxMs?: number): number {
  return usage(() => parseDuration(text, maxMs), flag);
}

/** Reports a failure on stderr, and as one JSON object on stdout with --json; then exits. */
function fail(f: Failure): never {
  known.bar?.done();
  // The person (or log) watching stderr is told in words, with --json and --quiet too; a script
  // reading stdout gets the one object it parses.
  const { text, message } = failureText(f);
  process.stderr.write(`stx-send: ${text}\n`);
  if (known.json) {
    process.stdout.write(
      `${JSON.stringify({ ok: false, code: f.code, message, exit_code: f.exit, durable_bytes: known.held?.durable ?? null, host: known.host, port: known.port })}\n`,
    );
  }
  process.exit(f.exit);
}

/** Ctrl-C: the partial stays on the server; say how much and how to continue. */
function interrupted(): void {
  const held = known.held;
  const message =
    held === null
      ? 'interrupted before the server said what it holds: run the same command again to resume'
      : `interrupted: run the same command again: the server holds ${held.durable} of ${held.size} bytes (${(held.size === 0 ? 100 : (held.durable / held.size) * 100).toFixed(1)} %)`;
  fail({ code: 'INTERRUPTED', message, advice: undefined, exit: ERRORS.INTERRUPTED.exit });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => fail(describeFailure(err, ADVICE)),
);
