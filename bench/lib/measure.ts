// Run a child process under GNU time and report its wall time, CPU seconds and peak RSS.
//
// Why GNU time: a process's own rusage can't be read after it exits, and /proc sampling misses
// the last interval. GNU time waits for the child with wait4(), whose rusage is exact and, on
// Linux, also covers every descendant the child itself reaped (CPU times are summed, maxrss is
// the largest single process). That is what lets us measure a forking server such as sshd.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

export const GNU_TIME_PATH = '/usr/bin/time';

/** Last characters of each output stream kept for readiness lines and error messages. */
const OUTPUT_TAIL_CHARS = 64 * 1024;
/** How long to look for the real child under GNU time before giving up. */
const CHILD_PID_TIMEOUT_MS = 2_000;
const POLL_INTERVAL_MS = 10;

const RUSAGE_MARKER = 'STXBENCH-RUSAGE';
// %e wall s, %U user s, %S sys s, %M max RSS KiB.
const RUSAGE_FORMAT = `${RUSAGE_MARKER} %e %U %S %M`;

export interface Rusage {
  /** Parent's clock, from spawn to exit. */
  readonly wallSeconds: number;
  readonly userSeconds: number;
  readonly sysSeconds: number;
  /** user + sys. */
  readonly cpuSeconds: number;
  /** Largest resident set of the child or any descendant it reaped. */
  readonly maxRssBytes: number;
}

interface MeasuredExit {
  /** Null when GNU time wrote no report (it was itself killed). */
  readonly rusage: Rusage | null;
  /** GNU time passes the child's code on; 128 + N when the child died of signal N. */
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

interface StartOptions {
  /** The child is killed (SIGKILL) after this long. */
  readonly timeoutMs: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /**
   * The child's stdout goes to this file instead of a pipe to us: a daemon that logs a line per
   * event would otherwise wait on a full pipe whenever this process is too busy to read it.
   */
  readonly stdoutFile?: string | undefined;
}

type StreamName = 'stdout' | 'stderr';

export interface MeasuredProcess {
  /** Resolves once the child has exited and GNU time has reported. */
  readonly done: Promise<MeasuredExit>;
  /** First match of `pattern` in the stream, or null if the child exits or `timeoutMs` passes. */
  waitForMatch(stream: StreamName, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | null>;
  /** Pid of the measured command itself (GNU time's child). */
  childPid(): Promise<number | undefined>;
  /** Signal the measured command (not GNU time, which would die without reporting). */
  signal(sig: NodeJS.Signals): Promise<void>;
}

export function startMeasured(command: string, args: readonly string[], options: StartOptions): MeasuredProcess {
  const reportDir = mkdtemp(join(tmpdir(), 'stx-bench-time-'));
  const output: Record<StreamName, string> = { stdout: '', stderr: '' };
  let exited = false;
  const listeners = new Set<() => void>();
  const notify = (): void => {
    for (const l of listeners) l();
  };

  const started = reportDir.then((dir) => {
    const reportPath = join(dir, 'rusage');
    const t0 = performance.now();
    const stdoutFd = options.stdoutFile === undefined ? null : openSync(options.stdoutFile, 'a');
    const child = spawn(GNU_TIME_PATH, ['-f', RUSAGE_FORMAT, '-o', reportPath, '--', command, ...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', stdoutFd ?? 'pipe', 'pipe'],
    });
    if (stdoutFd !== null) closeSync(stdoutFd); // the child has its own copy
    for (const name of ['stdout', 'stderr'] as const) {
      const stream = child[name];
      if (stream === null) continue;
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        output[name] = (output[name] + text).slice(-OUTPUT_TAIL_CHARS);
        notify();
      });
    }
    return { child, reportPath, dir, t0 };
  });

  const findChild = async (): Promise<number | undefined> => {
    const { child } = await started;
    const timePid = child.pid;
    if (timePid === undefined) return undefined;
    const deadline = performance.now() + CHILD_PID_TIMEOUT_MS;
    while (!exited && performance.now() < deadline) {
      const [pid] = await childrenOf(timePid);
      if (pid !== undefined) return pid;
      await sleep(POLL_INTERVAL_MS);
    }
    return undefined;
  };
  const childPidPromise = findChild();

  const signalChild = async (sig: NodeJS.Signals): Promise<void> => {
    const pid = await childPidPromise;
    if (pid === undefined || exited) return;
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone: nothing to signal.
    }
  };

  const done = started.then(async ({ child, reportPath, dir, t0 }) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // Kill the command so GNU time still reports; kill GNU time only if the command is unknown.
      void childPidPromise.then(async (pid) => {
        if (pid === undefined) child.kill('SIGKILL');
        else await signalChild('SIGKILL');
      });
    }, options.timeoutMs);
    const exitCode = await new Promise<number | null>((resolve) => {
      child.once('error', () => resolve(null));
      child.once('close', (code) => resolve(code));
    });
    const wallSeconds = (performance.now() - t0) / 1000;
    clearTimeout(timer);
    exited = true;
    notify();
    const report = await readFile(reportPath, 'utf8').catch(() => '');
    await rm(dir, { recursive: true, force: true });
    return {
      rusage: parseRusage(report, wallSeconds),
      exitCode,
      timedOut,
      stdout: output.stdout,
      stderr: output.stderr,
    };
  });

  const waitForMatch = (stream: StreamName, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray | null> =>
    new Promise((resolve) => {
      const check = (): void => {
        const m = output[stream].match(pattern);
        if (m !== null || exited) finish(m);
      };
      const finish = (m: RegExpMatchArray | null): void => {
        clearTimeout(timer);
        listeners.delete(check);
        resolve(m);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      listeners.add(check);
      check();
    });

  return { done, waitForMatch, childPid: () => childPidPromise, signal: signalChild };
}

function parseRusage(report: string, wallSeconds: number): Rusage | null {
  const line = report.split('\n').find((l) => l.startsWith(RUSAGE_MARKER));
  if (line === undefined) return null;
  const [, , user, sys, rssKiB] = line.trim().split(/\s+/).map(Number);
  if (user === undefined || sys === undefined || rssKiB === undefined) return null;
  if (![user, sys, rssKiB].every(Number.isFinite)) return null;
  return { wallSeconds, userSeconds: user, sysSeconds: sys, cpuSeconds: user + sys, maxRssBytes: rssKiB * 1024 };
}

/** Pids whose parent is `pid` (a single-threaded one: GNU time, sshd). */
async function childrenOf(pid: number): Promise<number[]> {
  // One file read where the kernel has CONFIG_PROC_CHILDREN; a scan of /proc otherwise.
  const list = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => null);
  if (list !== null) return list.split(' ').filter((p) => p !== '').map(Number);
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // Field 4 is the ppid; the name before it is parenthesised and may contain spaces.
    const afterName = stat.slice(stat.lastIndexOf(')') + 2);
    if (Number(afterName.split(' ')[1]) === pid) found.push(Number(entry));
  }
  return found;
}

/** Wait until `pid` has no children left (all reaped), at most `timeoutMs`. True if none are left. */
export async function waitForNoChildren(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if ((await childrenOf(pid)).length === 0) return true;
    await sleep(POLL_INTERVAL_MS * 5);
  }
  return false;
}

/** One-line description of a failed child for a report. */
export function describeExit(what: string, exit: MeasuredExit): string {
  const why = exit.timedOut ? 'timed out' : `exited with code ${String(exit.exitCode)}`;
  const tail = (exit.stderr.trim() || exit.stdout.trim()).split('\n').slice(-5).join(' | ');
  return `${what} ${why}${tail === '' ? '' : `: ${tail}`}`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const hi = sorted[mid] ?? Number.NaN;
  const lo = sorted[mid - 1] ?? hi;
  return sorted.length % 2 === 1 ? hi : (lo + hi) / 2;
}
