#!/usr/bin/env node
// stx-recv: the daemon. `stx-recv --listen [HOST:]PORT --out DIR` (README.md lists every flag).
import { realpath, readFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { fingerprint, loadOrCreateServerKey, parseAuthorizedKeys, serverKeySpki, stxHome } from '../crypto/index.js';
import { HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS } from '../proto/limits.js';
import { parseDuration } from '../proto/duration.js';
import { parseListen, parseSize } from './args.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_PARTIAL_TTL_MS } from './config.js';
import { startServer } from './server.js';

async function main(): Promise<number> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('stx-recv')
    .usage('$0 --listen [HOST:]PORT --out DIR [options]\n\nReceive files from stx-send over an authenticated, encrypted connection.')
    .option('listen', { type: 'string', demandOption: true, describe: '[HOST:]PORT to listen on (port 0 picks a free one)' })
    .option('out', { type: 'string', demandOption: true, describe: 'directory that receives the files' })
    .option('key', { type: 'string', describe: 'server RSA key (PEM); generated if missing [default: $STX_HOME/server_key.pem]' })
    .option('authorized-keys', { type: 'string', describe: 'only clients whose Ed25519 key is listed here may upload' })
    .option('append-only', { type: 'boolean', default: false, describe: 'refuse to replace any existing file' })
    .option('max-connections', { type: 'number', default: DEFAULT_MAX_CONNECTIONS, describe: 'connections served at once' })
    .option('max-file-size', { type: 'string', describe: 'refuse uploads larger than this (e.g. 10G)' })
    .option('partial-ttl', { type: 'string', default: '24h', describe: 'remove partial uploads not resumed within this time' })
    .option('handshake-timeout', { type: 'string', default: `${HANDSHAKE_TIMEOUT_MS / 1000}s`, describe: 'close clients that do not finish the handshake in time' })
    .option('idle-timeout', { type: 'string', default: `${IDLE_TIMEOUT_MS / 1000}s`, describe: 'close clients that send nothing for this long' })
    .option('log-level', { choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' })
    .strict()
    .exitProcess(false)
    // yargs passes no error for its own validation failures, whatever its types say.
    .fail((msg: string, err: Error | undefined) => {
      throw err ?? new UsageError(msg);
    })
    .help()
    .version(false)
    .parseAsync();
  if (argv.help === true) return 0;

  const { host, port } = parseListen(argv.listen);
  const maxConnections = argv['max-connections'];
  if (!Number.isInteger(maxConnections) || maxConnections < 1) throw new UsageError('--max-connections must be a positive integer');
  const log = pino({ level: argv['log-level'], base: { svc: 'stx-recv' } }, pino.destination({ fd: 1, sync: true }));

  await mkdir(argv.out, { recursive: true, mode: 0o755 });
  const outDir = await realpath(argv.out);
  const keyFile = argv.key ?? path.join(stxHome(), 'server_key.pem');
  const { key, created } = await loadOrCreateServerKey(keyFile);
  if (created) process.stderr.write(`stx-recv: generated a new server key in ${keyFile}\n`);
  const authFile = argv['authorized-keys'];
  const authorizedKeys = authFile === undefined ? null : parseAuthorizedKeys(await readFile(authFile, 'utf8'), authFile);

  const server = await startServer({
    host,
    port,
    outDir,
    serverKey: key,
    authorizedKeys,
    appendOnly: argv['append-only'],
    maxConnections,
    ...(argv['max-file-size'] === undefined ? {} : { maxFileBytes: parseSize(argv['max-file-size']) }),
    partialTtlMs: argv['partial-ttl'] === '24h' ? DEFAULT_PARTIAL_TTL_MS : parseDuration(argv['partial-ttl']),
    handshakeTimeoutMs: parseDuration(argv['handshake-timeout']),
    idleTimeoutMs: parseDuration(argv['idle-timeout']),
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
  const shown = server.address.host.includes(':') ? `[${server.address.host}]` : server.address.host;
  process.stderr.write(`stx-recv: listening on ${shown}:${server.address.port}\n`);
  process.stderr.write(`stx-recv: fingerprint ${fp}\n`);
  process.stderr.write(`stx-recv: writing into ${outDir}${authorizedKeys === null ? ' (anonymous clients allowed)' : ` (${authorizedKeys.size} authorized keys)`}\n`);
  log.info({ event: 'listening', host: server.address.host, port: server.address.port, fingerprint: fp, out: outDir }, 'listening');
  return stopped;
}

class UsageError extends Error {}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const usage = err instanceof UsageError;
    process.stderr.write(`stx-recv: ${err instanceof Error ? err.message : String(err)}\n${usage ? "Run 'stx-recv --help' for the options.\n" : ''}`);
    process.exit(usage ? 2 : 1);
  },
);
