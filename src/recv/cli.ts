#!/usr/bin/env node
// stx-recv: the daemon. `stx-recv --listen [HOST:]PORT --out DIR` (README.md lists every flag).
import { connectionsWithin, FDS_PER_CONNECTION, openFileLimit } from './process-limits.js';
import { realpath } from 'node:fs/promises';
import { totalmem } from 'node:os';
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fingerprint, serverKeySpki } from '../crypto/index.js';
import { loadOrCreateServerKey, loadServerKey, stxHome } from '../keystore/index.js';
import { HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS } from '../proto/limits.js';
import { MAX_TIMER_MS, parseDuration } from '../proto/duration.js';
import { parseListen, parseSize } from './args.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_PARTIAL_TTL_MS, defaultMaxMemoryBytes, MIN_MAX_MEMORY_BYTES } from './config.js';
import { DEFAULT_HANDSHAKE_RATE_PER_SOURCE, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE } from './config.js';
import { acquireInstanceLock } from './instance-lock.js';
import { checkServerKeyFile } from './key-file.js';
import { chooseLogFormat, createLog, LOG_FORMATS } from './log.js';
import { prepareOutDir } from './out-dir.js';
import { AuthorizedKeysReloader, readAuthorizedKeys } from './reload.js';
import { checkNamespaceTemplate, parseNamespace } from './access.js';
import { startServer } from './server.js';
import { StartupError } from './startup-error.js';
import { tuneRuntime } from '../runtime/tuning.js';
import type { StorageBackend } from '../storage/backend.js';
import { DEFAULT_LEASE_MS, MAX_S3_DEFAULT_MEMORY_BYTES, MIN_S3_MAX_MEMORY_BYTES, parseS3Url } from '../storage/s3/config.js';
import { conventions, usage, UsageError } from '../cli/conventions.js';

async function main(): Promise<number> {
  const argv = await conventions(yargs(hideBin(process.argv)))
    .scriptName('stx-recv')
    .usage(
      '$0 --listen [HOST:]PORT --out DIR [options]\n$0 --listen [HOST:]PORT --store s3://BUCKET[/PREFIX] --s3-endpoint URL [options]\n$0 --print-fingerprint [--key FILE]\n\nReceive files from stx-send over an authenticated, encrypted connection.',
    )
    .option('listen', { type: 'string', describe: '[HOST:]PORT to listen on (port 0 picks a free one; no HOST: all interfaces, 0.0.0.0) [required]' })
    .option('out', { type: 'string', describe: 'directory that receives the files; only its last component is created [required]' })
    .option('store', { type: 'string', describe: 'keep the files in S3 instead of --out: s3://BUCKET[/PREFIX]; several daemons may share one (credentials: AWS_* variables or ~/.aws)' })
    .option('s3-endpoint', { type: 'string', describe: 'URL of the S3 endpoint for --store (e.g. http://127.0.0.1:7480 for Ceph RGW)' })
    .option('s3-lease', { type: 'string', default: `${DEFAULT_LEASE_MS / 1000}s`, describe: 'with --store: how long a daemon that died keeps its uploads from the others' })
    .option('key', { type: 'string', describe: 'server RSA key (PEM, mode 0600); generated if missing [default: $STX_HOME/server_key.pem]' })
    .option('authorized-keys', {
      type: 'string',
      describe: 'only clients whose Ed25519 key is listed here may connect; a line may start with options (namespace="DIR", append-only, download, no-download, no-upload, max-size="SIZE", from="ADDRESSES"); SIGHUP re-reads it',
    })
    .option('anonymous-namespace', {
      type: 'string',
      describe: 'anonymous clients (no key) read and write only under DIR; with --authorized-keys they are refused unless this is given',
    })
    .option('default-namespace', {
      type: 'string',
      describe: 'a key without namespace= reads and writes only under this DIR (%k: the key, e.g. clients/%k) [default: the whole --out]',
    })
    .option('append-only', { type: 'boolean', default: false, describe: 'refuse to replace any existing file' })
    .option('allow-download', { type: 'boolean', default: false, describe: 'let clients list and download the published files (stx-get)' })
    .option('max-connections', { type: 'number', default: DEFAULT_MAX_CONNECTIONS, describe: 'connections served at once' })
    .option('max-handshakes', { type: 'number', default: DEFAULT_MAX_HANDSHAKES, describe: 'handshakes in progress at once, from all addresses' })
    .option('max-handshakes-per-source', { type: 'number', default: DEFAULT_MAX_HANDSHAKES_PER_SOURCE, describe: 'handshakes in progress at once from one IPv4 address or IPv6 /64' })
    .option('handshake-rate-per-source', { type: 'number', default: DEFAULT_HANDSHAKE_RATE_PER_SOURCE, describe: 'handshakes one address (or /64) may start per second, bursts of twice that; 0: no limit' })
    .option('max-file-size', { type: 'string', describe: 'refuse uploads larger than this (e.g. 10G)' })
    .option('max-partial-bytes', {
      type: 'string',
      describe: 'disk the unfinished uploads of one client (key, or source address if anonymous) may reserve [default: 10G or a quarter of the free space, whichever is larger]',
    })
    .option('max-memory', {
      type: 'string',
      describe: 'memory all connections may hold (queued data, hashing, incomplete records, unread output); when reached, those holding the most are not read [default: a quarter of RAM, 32M–64M]',
    })
    .option('partial-ttl', { type: 'string', default: '24h', describe: 'remove partial uploads not resumed within this time' })
    .option('handshake-timeout', { type: 'string', default: `${HANDSHAKE_TIMEOUT_MS / 1000}s`, describe: 'close clients that do not finish the handshake in time' })
    .option('idle-timeout', { type: 'string', default: `${IDLE_TIMEOUT_MS / 1000}s`, describe: 'close clients that send nothing for this long' })
    .option('log-level', { choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, default: 'info' as const })
    .option('log-format', { choices: LOG_FORMATS, describe: 'log lines on stdout [default: pretty on a terminal, else json]' })
    .option('print-fingerprint', { type: 'boolean', default: false, describe: "print the server key's fingerprint and exit (generates nothing)" })
    .strict()
    .parseAsync();
  if (argv.help === true || argv.version === true) return 0;

  const keyFile = path.resolve(argv.key ?? path.join(stxHome(), 'server_key.pem'));
  if (argv['print-fingerprint']) return printFingerprint(keyFile);

  if (argv.listen === undefined) throw new UsageError('Missing required argument: --listen [HOST:]PORT');
  const s3Args = usage(() => s3Store(argv.store, argv['s3-endpoint'], argv['s3-lease']));
  if (s3Args !== undefined && argv.out !== undefined) throw new UsageError('--out and --store are alternatives: give one');
  if (argv.out === undefined && s3Args === undefined) throw new UsageError('Missing required argument: --out DIR');
  const { host, port } = usage(() => parseListen(argv.listen ?? ''));
  // Runtime tricks (src/runtime), as STX_TUNING allows; malloc keeps freed memory only once many clients are in (server.ts).
  usage(() => tuneRuntime(['aligned-memory', 'young-gc', 'keep-freed-memory']));
  let maxConnections = argv['max-connections'];
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new UsageError('--max-connections must be a positive integer');
  const fdLimit = openFileLimit();
  if (fdLimit !== null && connectionsWithin(fdLimit) < maxConnections) {
    const fit = connectionsWithin(fdLimit);
    process.stderr.write(
      `stx-recv: warning: serving at most ${fit} connections, not ${maxConnections}: the open-file limit is ${fdLimit} and each upload holds ${FDS_PER_CONNECTION}; raise it (ulimit -n, LimitNOFILE=) to serve more\n`,
    );
    maxConnections = fit;
  }
  const handshakes = {
    maxHandshakes: positiveInteger(argv['max-handshakes'], '--max-handshakes'),
    maxHandshakesPerSource: positiveInteger(argv['max-handshakes-per-source'], '--max-handshakes-per-source'),
    handshakeRatePerSource: argv['handshake-rate-per-source'],
  };
  if (!Number.isFinite(handshakes.handshakeRatePerSource) || handshakes.handshakeRatePerSource < 0) {
    throw new UsageError('--handshake-rate-per-source must be a number ≥ 0 (0: no limit)');
  }
  const maxFileSize = argv['max-file-size'];
  const maxFileBytes = maxFileSize === undefined ? undefined : usage(() => parseSize(maxFileSize));
  const maxPartial = argv['max-partial-bytes'];
  const maxPartialBytes = maxPartial === undefined ? undefined : usage(() => parseSize(maxPartial), '--max-partial-bytes');
  const maxMemory = argv['max-memory'];
  // With --store the S3 client's own memory comes on top: a smaller default keeps the daemon within ~256 MiB.
  const s3DefaultMemory = s3Args === undefined ? undefined : Math.min(MAX_S3_DEFAULT_MEMORY_BYTES, defaultMaxMemoryBytes(totalmem()));
  const maxMemoryBytes = maxMemory === undefined ? s3DefaultMemory : usage(() => parseSize(maxMemory), '--max-memory');
  if (maxMemoryBytes !== undefined && maxMemoryBytes < MIN_MAX_MEMORY_BYTES) throw new UsageError(`--max-memory must be at least ${MIN_MAX_MEMORY_BYTES / 1024 / 1024}M`);
  if (s3Args !== undefined && maxMemoryBytes !== undefined && maxMemoryBytes < MIN_S3_MAX_MEMORY_BYTES) {
    throw new UsageError(`with --store, --max-memory must be at least ${MIN_S3_MAX_MEMORY_BYTES / 1024 / 1024}M (each S3 upload holds an 8 MiB segment in memory)`);
  }
  const partialTtlMs = argv['partial-ttl'] === '24h' ? DEFAULT_PARTIAL_TTL_MS : usage(() => parseDuration(argv['partial-ttl']));
  const handshakeTimeoutMs = usage(() => parseDuration(argv['handshake-timeout'], MAX_TIMER_MS), '--handshake-timeout');
  const idleTimeoutMs = usage(() => parseDuration(argv['idle-timeout'], MAX_TIMER_MS), '--idle-timeout');
  const stdoutIsTty = process.stdout.isTTY;
  const log = await createLog(argv['log-level'], chooseLogFormat(argv['log-format'], stdoutIsTty), stdoutIsTty);
  // SIGHUP's default action ends the process: take it over at once (systemd may reload a unit
  // as soon as it started).
  const authFile = argv['authorized-keys'];
  const anonymousNamespace = argv['anonymous-namespace'];
  const defaultNamespace = argv['default-namespace'] ?? null;
  const accessFlags = {
    anonymousNamespace: anonymousNamespace === undefined ? null : usage(() => parseNamespace(anonymousNamespace), '--anonymous-namespace'),
    defaultNamespace,
  };
  if (defaultNamespace !== null) usage(() => checkNamespaceTemplate(defaultNamespace), '--default-namespace');
  const reloader = new AuthorizedKeysReloader(authFile, accessFlags, log);
  process.on('SIGHUP', () => reloader.request());

  // Before anything is created: a key others may read, a typo'd --out or authorized-keys line, fails here.
  const keys = authFile === undefined ? null : await readAuthorizedKeys(authFile);
  const authorizedKeys = keys === null ? null : new Set(keys.keys());
  await checkServerKeyFile(keyFile);
  // The S3 SDK is loaded only for --store: it adds ~0.3 s to a start.
  const s3 = s3Args === undefined ? undefined : { url: s3Args.url, backend: await s3Backend(s3Args) };
  let outDir: string;
  if (s3 === undefined) {
    await prepareOutDir(argv.out ?? '');
    outDir = await realpath(argv.out ?? '');
    const lock = await acquireInstanceLock(outDir);
    process.on('exit', () => lock.release());
  } else {
    // Several daemons may serve one store: no instance lock (the store's leases keep uploads apart).
    outDir = s3.url;
  }

  const { key, created } = await loadOrCreateServerKey(keyFile);
  if (created) process.stderr.write(`stx-recv: generated a new server key in ${keyFile}\n`);

  const server = await startServer({
    host,
    port,
    outDir,
    ...(s3 === undefined ? {} : { backend: s3.backend }),
    serverKey: key,
    authorizedKeys,
    access: { ...accessFlags, keys },
    appendOnly: argv['append-only'],
    allowDownload: argv['allow-download'],
    maxConnections,
    handshakes,
    ...(maxFileBytes === undefined ? {} : { maxFileBytes }),
    ...(maxPartialBytes === undefined ? {} : { maxPartialBytes }),
    ...(maxMemoryBytes === undefined ? {} : { maxMemoryBytes }),
    partialTtlMs,
    handshakeTimeoutMs,
    idleTimeoutMs,
    log,
  });
  const fp = fingerprint(serverKeySpki(key));
  // The handlers go in before "listening" is printed: whoever reads that line may signal at once.
  const stopped = new Promise<number>((resolve) => {
    let signals = 0;
    const stop = (sig: NodeJS.Signals): void => {
      if (++signals > 1) {
        process.stderr.write(`stx-recv: second ${sig}, exiting now\n`);
        resolve(1);
        return;
      }
      process.stderr.write(`stx-recv: ${sig}: finishing writes and telling clients to come back later\n`);
      log.info({ event: 'shutdown', signal: sig, connections: server.connections }, 'shutting down');
      void server.shutdown().then(() => resolve(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  reloader.attach(server);
  const shown = server.address.host.includes(':') ? `[${server.address.host}]` : server.address.host;
  process.stderr.write(`stx-recv: listening on ${shown}:${server.address.port}\n`);
  process.stderr.write(`stx-recv: fingerprint ${fp}\n`);
  const anonymous = accessFlags.anonymousNamespace === null ? (authorizedKeys === null ? 'anonymous clients allowed' : '') : `anonymous clients under ${accessFlags.anonymousNamespace.join('/')}`;
  const who = [authorizedKeys === null ? '' : `${authorizedKeys.size} authorized keys`, anonymous].filter((w) => w !== '').join('; ');
  process.stderr.write(`stx-recv: writing into ${outDir} (${who})\n`);
  if (authorizedKeys === null && (server.address.host === '0.0.0.0' || server.address.host === '::')) {
    process.stderr.write('stx-recv: warning: listening on all interfaces without --authorized-keys: anyone who can reach this port may upload\n');
  }
  log.info({ event: 'listening', host: server.address.host, port: server.address.port, fingerprint: fp, out: outDir }, 'listening');
  return stopped;
}

interface S3Args {
  readonly url: string;
  readonly endpoint: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly leaseMs: number;
}

async function s3Backend(args: S3Args): Promise<StorageBackend> {
  const [{ S3Backend }, { createS3Client }] = await Promise.all([import('../storage/s3/backend.js'), import('../storage/s3/client.js')]);
  return new S3Backend({ client: createS3Client({ endpoint: args.endpoint }), bucket: args.bucket, prefix: args.prefix, leaseMs: args.leaseMs });
}

/** What --store asks for, or undefined without --store. */
function s3Store(store: string | undefined, endpoint: string | undefined, lease: string): S3Args | undefined {
  if (store === undefined) {
    if (endpoint !== undefined) throw new UsageError('--s3-endpoint goes with --store s3://BUCKET[/PREFIX]');
    return undefined;
  }
  if (endpoint === undefined) throw new UsageError('--store needs --s3-endpoint URL');
  if (!/^https?:\/\/[^/]+\/?$/.test(endpoint)) throw new UsageError(`--s3-endpoint wants http(s)://HOST[:PORT], not "${endpoint}"`);
  const { bucket, prefix } = parseS3Url(store);
  const leaseMs = parseDuration(lease, MAX_TIMER_MS);
  if (leaseMs < 1000) throw new UsageError('--s3-lease must be at least 1s');
  return { url: `s3://${bucket}/${prefix}`, endpoint, bucket, prefix, leaseMs };
}

function positiveInteger(value: number, flag: string): number {
  if (!Number.isInteger(value) || value < 1) throw new UsageError(`${flag} must be a positive integer`);
  return value;
}

async function printFingerprint(keyFile: string): Promise<number> {
  const { exists } = await checkServerKeyFile(keyFile);
  if (!exists) {
    throw new StartupError('KEY_MISSING', `no server key at ${keyFile} (--print-fingerprint generates nothing); give --key FILE, or start stx-recv once to create it`);
  }
  process.stdout.write(`${fingerprint(serverKeySpki(await loadServerKey(keyFile)))}\n`);
  return 0;
}


main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const isUsage = err instanceof UsageError;
    process.stderr.write(`stx-recv: ${err instanceof Error ? err.message : String(err)}\n${isUsage ? "Run 'stx-recv --help' for the options.\n" : ''}`);
    process.exit(isUsage ? 2 : 1);
  },
);
