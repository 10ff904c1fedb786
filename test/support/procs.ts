// Real processes for end-to-end tests: the built stx-recv / stx-send, temp dirs and files.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, open, readFile, rm, utimes } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { DIST_DIR } from './paths.js';

// The commands as users run them: the bundles `npm run build` writes to dist/bin/.
export const RECV_CLI = path.join(DIST_DIR, 'bin', 'stx-recv.js');
export const GET_CLI = path.join(DIST_DIR, 'bin', 'stx-get.js');
export const SEND_CLI = path.join(DIST_DIR, 'bin', 'stx-send.js');
export const KEYGEN_CLI = path.join(DIST_DIR, 'bin', 'stx-keygen.js');

/** A temp dir removed by `cleanup()`. */
export async function tempDir(prefix = 'stx-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A tree under `root`: each [relative name, size, mode, mtime in ms] a file of makeFile's bytes (seeded by its size). */
export async function makeTree(root: string, files: readonly (readonly [string, number, number, number])[]): Promise<void> {
  for (const [name, size, mode, mtime] of files) {
    const p = path.join(root, name);
    await mkdir(path.dirname(p), { recursive: true });
    await makeFile(p, size, size);
    await chmod(p, mode);
    await utimes(p, mtime / 1000, mtime / 1000);
  }
}

/** Writes `size` bytes of seeded pseudo-random content; returns its SHA-256 hex. */
export async function makeFile(file: string, size: number, seed = 1): Promise<string> {
  const block = createHash('sha512').update(`seed ${seed}`).digest();
  const unit = Buffer.alloc(1 << 20);
  for (let i = 0; i < unit.length; i += block.length) block.copy(unit, i);
  randomBytes(4096).copy(unit, 0);
  const hash = createHash('sha256');
  const fh = await open(file, 'w', 0o644);
  try {
    let written = 0;
    let n = 0;
    while (written < size) {
      const len = Math.min(unit.length, size - written);
      unit.writeUInt32BE(n++ >>> 0, 4096);
      const piece = unit.subarray(0, len);
      hash.update(piece);
      await fh.write(piece, 0, len, written);
      written += len;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ; ) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      pos += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

export interface Daemon {
  readonly proc: ChildProcess;
  readonly port: number;
  readonly fingerprint: string;
  stderr(): string;
  stdout(): string;
  /** Sends a signal and waits for exit; returns the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | string>;
}

/**
 * A server key for the n-th daemon a test process starts, from a cache shared by the test files
 * (made once per machine): a daemon left to make its own spends 0.3–2 s of CPU on an RSA 3072
 * key, and a suite starts about a hundred. Daemons of one process get distinct keys, as they
 * would have; a test of key creation asks for `freshKey`.
 */
let keysHanded = 0;
const KEY_CACHE = path.join(os.tmpdir(), `stx-test-server-keys-${process.getuid?.() ?? 0}`);

function installCachedKey(keyFile: string): void {
  const n = keysHanded++;
  mkdirSync(KEY_CACHE, { recursive: true, mode: 0o700 });
  const cached = path.join(KEY_CACHE, `${n}.pem`);
  if (!existsSync(cached)) {
    const pem = generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
    const tmp = `${cached}.${process.pid}.tmp`;
    writeFileSync(tmp, pem, { mode: 0o600 });
    renameSync(tmp, cached);
  }
  const dir = path.dirname(keyFile);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  writeFileSync(keyFile, readFileSync(cached), { mode: 0o600 });
  chmodSync(keyFile, 0o600);
}

export interface DaemonSpawnOptions {
  /** Let the daemon make its own server key (tests of key creation); else one comes from the cache. */
  readonly freshKey?: boolean;
  /**
   * Raise (or set) the daemon's open-file limit: it is then started as
   * `sh -c 'ulimit -n N && exec node …'`, which keeps the daemon's pid (for /proc/<pid>/status).
   */
  readonly fdLimit?: number;
}

/**
 * Every test client comes from 127.0.0.1, and a suite makes hundreds of handshakes a second: the
 * daemon's per-source handshake limits (recv/admission.ts, against one flooding address) would
 * refuse them. They are lifted unless a test sets them itself (test/admission.test.ts and
 * hostile/handshake-flood.test.ts test them).
 */
const ONE_SOURCE_FLAGS: readonly (readonly [string, string])[] = [
  ['--max-handshakes-per-source', '100000'],
  ['--handshake-rate-per-source', '0'],
];

/** Starts stx-recv on 127.0.0.1:0 and waits for its listening and fingerprint lines. */
export async function startDaemon(out: string, keyFile: string, extra: string[] = [], port = 0, options: DaemonSpawnOptions = {}): Promise<Daemon> {
  if (options.freshKey !== true && !existsSync(keyFile)) installCachedKey(keyFile);
  const lifted = ONE_SOURCE_FLAGS.filter(([flag]) => !extra.includes(flag)).flat();
  // An s3:// store goes to --store (its --s3-endpoint comes in `extra`).
  const store = out.startsWith('s3://') ? ['--store', out] : ['--out', out];
  const args = [RECV_CLI, '--listen', `127.0.0.1:${port}`, ...store, '--key', keyFile, ...lifted, ...extra];
  const env = { ...process.env, STX_HOME: path.dirname(keyFile) };
  const proc =
    options.fdLimit === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env })
      : spawn('sh', ['-c', `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  let outText = '';
  proc.stdout.setEncoding('utf8').on('data', (d: string) => (outText += d.length > 0 && outText.length < 4_000_000 ? d : ''));
  proc.stderr.setEncoding('utf8');
  const exited = new Promise<number | string>((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig ?? -1)));
  const ready = await new Promise<{ port: number; fingerprint: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`stx-recv did not start in 30 s:\n${err}`)), 30_000);
    proc.stderr.on('data', (d: string) => {
      err += d;
      const p = /listening on \S+:(\d+)/.exec(err);
      const f = /fingerprint (SHA256:\S+)/.exec(err);
      if (p?.[1] !== undefined && f?.[1] !== undefined) {
        clearTimeout(timer);
        resolve({ port: Number(p[1]), fingerprint: f[1] });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`stx-recv exited (${code}) before listening:\n${err}`));
    });
  });
  return {
    proc,
    ...ready,
    stderr: () => err,
    stdout: () => outText,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode ?? proc.signalCode ?? -1;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export interface SendResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs stx-send to completion (killed after `timeoutMs`). */
export function runSend(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): Promise<SendResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [SEND_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    // 'close', not 'exit': at 'exit' the last of stdout may still be in the pipe (seen under load:
    // exit code 0 and no --json line).
    proc.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig === null ? -1 : 128), stdout, stderr });
    });
  });
}

/** A running stx-send's output so far and its end. */
export interface WatchedSend {
  readonly proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** The exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** The exit code with all the output. */
  readonly result: Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Collects a spawned stx-send's output and exit (spawnSend). */
export function watchSend(proc: ChildProcess): WatchedSend {
  let stdout = '';
  let stderr = '';
  proc.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  proc.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  // 'close': the process has exited and its output is all read.
  const exited = new Promise<number | null>((r) => proc.on('close', (c) => r(c)));
  return { proc, stdout: () => stdout, stderr: () => stderr, exited, result: exited.then((code) => ({ code, stdout, stderr })) };
}

/** Starts stx-send without waiting (for kill-mid-upload tests). */
export function spawnSend(args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, [SEND_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
}

export function readJsonLine(text: string): Record<string, unknown> {
  const line = text.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  if (line === undefined) throw new Error(`no JSON line in: ${text}`);
  const v: unknown = JSON.parse(line);
  if (typeof v !== 'object' || v === null) throw new Error('JSON line is not an object');
  return Object.fromEntries(Object.entries(v));
}

export { readFile };

export interface GetResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs stx-get with `args` and STX_HOME=`home`; killed (and failed) after `timeoutMs`. */
export function runGet(args: readonly string[], home: string, timeoutMs = 60_000): Promise<GetResult> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [GET_CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STX_HOME: home } });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    proc.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig === null ? -1 : 128), stdout, stderr });
    });
  });
}
