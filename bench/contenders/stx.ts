// Contender "stx": the hook for our own stx-recv / stx-send, once they are built.
//
//   node dist/src/recv/cli.js --listen 127.0.0.1:0 --out DIR --key KEYFILE
//     logs "listening on 127.0.0.1:PORT" and "fingerprint SHA256:…" on stderr, runs until SIGTERM.
//   node dist/src/send/cli.js 127.0.0.1 PORT FILE --fingerprint FP --json --quiet
//     exits once the receiver has confirmed the whole file.
// Until dist/src/recv/cli.js exists, available() says so and the runner skips stx.
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { describeExit, startMeasured, type MeasuredProcess } from '../lib/measure.js';
import { commandLine, stxCommands } from '../lib/paths.js';
import { LOCAL, type Placement } from '../lib/placement.js';
import type { TestFile } from '../lib/testfile.js';
import { READY_TIMEOUT_MS, transferTimeoutMs, type Contender, type RunResult } from './types.js';

/** Where a build's compiled CLIs are: this checkout's dist/ by default, another's under --compare. */
export interface Build {
  readonly recvCli: string;
  readonly sendCli: string;
}

const THIS_BUILD: Build = stxCommands();
const RECV_CLI = THIS_BUILD.recvCli;
/** Upper bound for the one-off key generation. */
const KEYGEN_TIMEOUT_MS = 60_000;

/** A stx-recv daemon running under GNU time, with the port and fingerprint it announced. */
export interface StxDaemon {
  readonly proc: MeasuredProcess;
  readonly port: number;
  readonly fingerprint: string;
}

/**
 * Starts stx-recv on the placement's host (127.0.0.1 by default; port picked by the daemon)
 * receiving into `recvDir` (null: no --out, for a daemon whose `extraArgs` name a --store), with the bench's server key; `nodeArgs` go to node before the script
 * (--cpu-prof is not allowed in NODE_OPTIONS). `{ failed }` (after killing it) when it
 * announced no port and fingerprint.
 */
export async function startStxDaemon(
  recvDir: string | null,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  place: Placement = LOCAL,
  extraArgs: readonly string[] = [],
  nodeArgs: readonly string[] = [],
  build: Build = THIS_BUILD,
  logFile?: string,
): Promise<StxDaemon | { failed: string }> {
  const keyFile = await serverKey();
  const recvArgs = [...nodeArgs, build.recvCli, '--listen', `${place.host}:0`, ...(recvDir === null ? [] : ['--out', recvDir]), '--key', keyFile, ...extraArgs];
  const proc = startMeasured(...place.command('server', process.execPath, recvArgs), { timeoutMs, env, stdoutFile: logFile });
  const listening = await proc.waitForMatch('stderr', /listening on \S+:(\d+)/, READY_TIMEOUT_MS);
  const fingerprint = await proc.waitForMatch('stderr', /fingerprint (SHA256:\S+)/, READY_TIMEOUT_MS);
  const port = Number(listening?.[1]);
  const fp = fingerprint?.[1];
  if (!(port > 0) || fp === undefined) {
    await proc.signal('SIGKILL');
    return { failed: describeExit('stx-recv gave no port and fingerprint;', await proc.done) };
  }
  return { proc, port, fingerprint: fp };
}

/** What a run adds to the plain transfer: stx-send options, and something that runs while it sends. */
export interface StxRunOptions {
  /** More stx-send arguments, e.g. --streams 8. */
  readonly sendArgs?: readonly string[];
  /** Started as stx-send starts; the function it returns stops it once stx-send exited. */
  readonly whileSending?: () => () => void;
}

/** One stx transfer of `file` into `outDir`/received; the server key is reused across runs. */
export async function runStx(file: TestFile, outDir: string, place: Placement = LOCAL, build: Build = THIS_BUILD, options: StxRunOptions = {}): Promise<RunResult> {
  const recvDir = join(outDir, 'received');
  await mkdir(recvDir, { recursive: true });
  const timeoutMs = transferTimeoutMs(file.size);
  // Known hosts, identities and default keys stay in this run's directory, not ~/.config/stx.
  const env = { ...process.env, STX_HOME: outDir };
  const daemon = await startStxDaemon(recvDir, env, timeoutMs, place, [], [], build);
  if ('failed' in daemon) return { kind: 'failed', reason: daemon.failed };
  const recv = daemon.proc;
  const sendArgs = [place.host, String(daemon.port), file.path, '--fingerprint', daemon.fingerprint, '--json', '--quiet', ...(options.sendArgs ?? [])];
  const t0 = performance.now();
  const sending = startMeasured(...place.command('client', ...commandLine(build.sendCli, sendArgs)), { timeoutMs, env });
  const stopAside = options.whileSending?.();
  const sent = await sending.done;
  stopAside?.();
  const wallSeconds = (performance.now() - t0) / 1000;
  // A daemon: it stays up after the transfer, so stop it to get its totals.
  await recv.signal('SIGTERM');
  const received = await recv.done;

  if (sent.exitCode !== 0 || sent.rusage === null) return { kind: 'failed', reason: describeExit('stx-send', sent) };
  if (received.rusage === null) return { kind: 'failed', reason: describeExit('stx-recv', received) };
  const receivedPath = await findReceived(recvDir, file);
  if (receivedPath === null) return { kind: 'failed', reason: `no ${file.size}-byte file in ${recvDir}` };
  return { kind: 'ok', wallSeconds, sender: sent.rusage, receiver: received.rusage, receivedPath, notes: [await idleDaemonNote(env, build)] };
}

const idleNotes = new Map<Build, Promise<string>>();

/**
 * What one stx-recv costs with no transfer at all (start-up, hashing thread, shutdown), measured
 * once per bench process with a daemon that is started and stopped: the receiver column includes
 * it, as it includes every server's start and stop.
 */
function idleDaemonNote(env: NodeJS.ProcessEnv, build: Build): Promise<string> {
  const known = idleNotes.get(build);
  if (known !== undefined) return known;
  const note = (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stx-bench-idle-'));
    try {
      const daemon = await startStxDaemon(dir, env, READY_TIMEOUT_MS, LOCAL, [], [], build);
      if ('failed' in daemon) return `an idle stx-recv could not be measured (${daemon.failed})`;
      await daemon.proc.signal('SIGTERM');
      const exit = await daemon.proc.done;
      if (exit.rusage === null) return `an idle stx-recv could not be measured (${describeExit('stx-recv', exit)})`;
      return `stx-recv started and stopped with no transfer costs ${exit.rusage.cpuSeconds.toFixed(2)} CPU s, which the receiver column includes`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  idleNotes.set(build, note);
  return note;
}

let keyFile: Promise<string> | undefined;

/**
 * The receiver's key, made once per bench process by an unmeasured stx-recv (which creates a
 * missing key, then prints its fingerprint): a daemon keeps its key, so key generation must not
 * land in a run's numbers.
 */
function serverKey(): Promise<string> {
  keyFile ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stx-bench-key-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'server_key.pem');
    const args = [RECV_CLI, '--listen', '127.0.0.1:0', '--out', dir, '--key', path];
    const recv = startMeasured(process.execPath, args, { timeoutMs: KEYGEN_TIMEOUT_MS, env: { ...process.env, STX_HOME: dir } });
    const made = await recv.waitForMatch('stderr', /fingerprint SHA256:/, KEYGEN_TIMEOUT_MS);
    await recv.signal('SIGKILL');
    const exit = await recv.done;
    if (made === null) throw new Error(describeExit('stx-recv made no key;', exit));
    return path;
  })();
  return keyFile;
}

/** The file under its own name, else the one regular file of the right size. */
async function findReceived(dir: string, file: TestFile): Promise<string | null> {
  const named = join(dir, basename(file.path));
  if (existsSync(named)) return named;
  const matches: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(dir, entry.name);
    if ((await stat(path)).size === file.size) matches.push(path);
  }
  const [only] = matches;
  return matches.length === 1 && only !== undefined ? only : null;
}

export const stx: Contender = {
  name: 'stx',
  measures: 'stx-send → stx-recv daemon (this project); wall = sender start → sender exit',
  available: () =>
    Promise.resolve(
      existsSync(THIS_BUILD.recvCli) && existsSync(THIS_BUILD.sendCli)
        ? null
        : 'not available: stx-recv or stx-send not built yet (npm run build)',
    ),
  version: () => Promise.resolve('this checkout'),
  run: (file, workdir, place) => runStx(file, workdir, place),
};

/** stx-send --streams N (§9.13): one file over N connections at once. */
export function stxStreams(streams: number): Contender {
  return {
    name: `stx --streams ${streams}`,
    measures: `stx-send --streams ${streams} → stx-recv daemon: ${streams} connections, a range of the file each; wall = sender start → sender exit`,
    available: () => stx.available(),
    version: () => stx.version(),
    run: (file, workdir, place) => runStx(file, workdir, place, THIS_BUILD, { sendArgs: ['--streams', String(streams)] }),
  };
}

/** stx as built from another commit into `distRoot` (bench/lib/compare.ts), named `name`. */
export function stxBuild(name: string, distRoot: string, version: string): Contender {
  const build: Build = stxCommands(distRoot);
  return {
    name,
    measures: `stx-send → stx-recv daemon, built from ${version}; wall = sender start → sender exit`,
    available: () => Promise.resolve(existsSync(build.recvCli) && existsSync(build.sendCli) ? null : `not available: ${distRoot} has no stx CLIs`),
    version: () => Promise.resolve(version),
    run: (file, workdir, place) => runStx(file, workdir, place, build),
  };
}
