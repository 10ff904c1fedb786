// Many clients at once against one stx-recv (issue 15): for each case, `clients` uploads of the same
// file under different names, all started together from this process (the client's own upload(),
// so no process start-up per client), each received file checked by SHA-256. Each case runs
// against its own daemon, and so does a single-stream reference (one client, one file of the
// first case's total bytes, the same harness); rounds are interleaved (reference, case 1, case 2,
// reference, …) and each figure is a median over the rounds with its spread (min–max).
//
// A fleet's receiver is a long-running daemon, so each case (and the reference) is measured against
// a warm one: started for the sample and given the same load once, untimed, first (as many
// clients, the same file, other names; a returning case's warm-up uploads are its clients' first
// visits and leave their tickets), so the code the measured load runs is compiled before it, as a
// receiver that served last night's backups has it. A smaller warm-up (64 KiB per client) left
// TurboFan compiling an 8 MiB upload's paths during the measured load. The same cases against a
// fresh daemon (the measured load is its first: it pays the compiler's warm-up) are kept as rows
// of their own (`daemons`).
//
// What is measured of the daemon: CPU seconds (user + sys, all its threads) from /proc/PID/stat
// between the first connect and the last confirmed upload of the measured load, so start-up, the
// warm-up and shutdown are left out; and its peak resident set (/proc/PID/status VmHWM at the end of
// the measured load: for a warm daemon reset by clear_refs after its warm-up, so the peak of the
// measured load over what the warm-up left resident; for a fresh one from its start). Both are
// robust under a shared machine's load; aggregate MiB/s is not, so it is compared with the
// reference of the same round and the same kind of daemon only.
import { readFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { startStxDaemon, type Build } from '../contenders/stx.js';
import type { Rusage } from '../lib/measure.js';
import { emptyFilesUnder } from '../lib/fileio.js';
import { median } from '../lib/measure.js';
import { LOCAL } from '../lib/placement.js';
import { makeTestFile, sha256File, type TestFile } from '../lib/testfile.js';
import { Connection } from '../../src/send/connection.js';
import { handshake } from '../../src/send/handshake.js';
import { upload } from '../../src/send/upload.js';

/** Attempts without progress before one upload gives up (the CLI's default)... */
const RETRIES = 8;
/**
 * ...and for how long it keeps retrying anyway (the CLI's --retry-for): a thousand clients that
 * start together meet the daemon's bound on handshakes in progress (§9.6), and those it refuses
 * retry with backoff; on a loaded 2-core machine 8 attempts did not always outlast the crowd.
 */
const RETRY_FOR_MS = 10 * 60 * 1000;
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const USER_HZ = 100;
/** Generous bound for a daemon that serves one case. */
const DAEMON_TIMEOUT_MS = 20 * 60 * 1000;
/** Failures kept per sample for the report. */
const MAX_FAILURES_KEPT = 10;

/**
 * Every client comes from 127.0.0.1, so the daemon's per-source handshake limits
 * (recv/admission.ts), there against one flooding address, would measure themselves instead of
 * the daemon: they are lifted here. The total bounds (connections, handshakes in progress,
 * --max-memory) stay at their defaults.
 */
const ONE_SOURCE_FLAGS = ['--max-handshakes-per-source', '100000', '--handshake-rate-per-source', '0'];

/** Warm: the same load once first, untimed; fresh: the measured load is the daemon's first. */
export type DaemonState = 'warm' | 'fresh';
export const DAEMON_STATES: readonly DaemonState[] = ['warm', 'fresh'];

export interface ConcurrencyCase {
  readonly clients: number;
  readonly fileBytes: number;
  /**
   * Returning clients (`--concurrent-clients 1000r`): each has connected to this daemon once
   * before (an unmeasured handshake per client, first) and resumes with the ticket it left
   * (§7.5), as a fleet that backs up every night does; else first contacts, full handshakes.
   */
  readonly returning?: boolean | undefined;
}

/** The case's label in logs and tables: `1000 × 1 MiB`, `1000 returning × 1 MiB`. */
export function caseLabel(c: { readonly clients: number; readonly fileBytes: number; readonly returning?: boolean | undefined }): string {
  return `${c.clients}${c.returning === true ? ' returning' : ''} × ${c.fileBytes / MiB} MiB`;
}

/** One case against one daemon. */
export interface ConcurrencySample {
  readonly clients: number;
  readonly fileBytes: number;
  readonly returning: boolean;
  readonly daemonState: DaemonState;
  readonly seconds: number;
  readonly aggregateMiBPerSecond: number;
  /** Received files whose SHA-256 matched, out of `clients`. */
  readonly verified: number;
  readonly failures: readonly string[];
  /** Daemon CPU (all threads) from the first connect to the last confirmed upload, per GiB received. */
  readonly daemonCpuSecondsPerGiB: number;
  /**
   * Daemon peak resident set (VmHWM) at the end of the measured load: warm, since the warm-up
   * ended (reset then); fresh, since its start.
   */
  readonly daemonPeakRssMiB: number;
  /** The daemon's totals under GNU time (start-up and shutdown included). */
  readonly daemon: Rusage | null;
  /**
   * Handshakes the daemon completed while measured (its log's "authenticated" events, less a
   * returning case's first visits): above `clients`, some retried.
   */
  readonly handshakes: number;
  /** Of those, resumed with a ticket (§7.5). */
  readonly resumed: number;
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface CaseSummary {
  readonly clients: number;
  readonly fileBytes: number;
  readonly returning?: boolean | undefined;
  readonly rounds: number;
  readonly verified: number;
  readonly attempted: number;
  readonly aggregateMiBPerSecond: Spread;
  readonly daemonCpuSecondsPerGiB: Spread;
  readonly daemonPeakRssMiB: Spread;
  readonly handshakes: Spread;
  /** Per round: aggregate ÷ the same round's single-stream reference; null for the reference itself. */
  readonly throughputVsSingle: Spread | null;
  /** Per round: daemon CPU s/GiB ÷ the same round's reference. */
  readonly cpuVsSingle: Spread | null;
  readonly failures: readonly string[];
}

/** The reference and the cases against one kind of daemon. */
export interface DaemonSummary {
  readonly daemonState: DaemonState;
  readonly single: CaseSummary;
  readonly cases: readonly CaseSummary[];
}

export interface ConcurrencyResult {
  /** The kind of daemon of `single` and `cases`, the figures the targets are checked on (warm, unless not measured). */
  readonly daemonState: DaemonState;
  readonly single: CaseSummary;
  readonly cases: readonly CaseSummary[];
  /** The same cases against the other kind of daemon, if measured (fresh). */
  readonly others: readonly DaemonSummary[];
  readonly samples: readonly (ConcurrencySample & { readonly round: number })[];
  /** Under --compare: the other build's daemons against this checkout's, round by round. */
  readonly compared?: BuildComparison | undefined;
}

export interface ConcurrencyOptions {
  readonly cases: readonly ConcurrencyCase[];
  readonly rounds: number;
  /** The kinds of daemon each case is measured against, the first the one the targets are checked on. */
  readonly daemons: readonly DaemonState[];
  /** Node options for the daemons only (e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile them). */
  readonly daemonNodeArgs?: readonly string[] | undefined;
  /**
   * --compare: stx-recv built from another commit, run as a second daemon for every sample of
   * every round (the two builds alternate which goes first); the clients are this checkout's.
   */
  readonly ref?: { readonly name: string; readonly build: Build } | undefined;
}

/** Per case, per round: this checkout's figure ÷ the other build's of the same round (the first kind of daemon). */
export interface BuildComparison {
  readonly ref: string;
  readonly daemonState: DaemonState;
  readonly rows: readonly {
    readonly clients: number;
    readonly fileBytes: number;
    readonly returning: boolean;
    readonly pairs: number;
    /** Daemon CPU s/GiB, this ÷ ref: below 1, this is cheaper. */
    readonly cpuPerGiB: Spread;
    /** Aggregate MiB/s, this ÷ ref: above 1, this is faster. */
    readonly throughput: Spread;
    /** Daemon peak RSS, this ÷ ref. */
    readonly peakRss: Spread;
  }[];
  /** The other build's own summary, like `cases` (its cpuVsSingle against its own single stream). */
  readonly single: CaseSummary;
  readonly cases: readonly CaseSummary[];
}

const name = (i: number): string => `c${String(i).padStart(4, '0')}.bin`;
const warmUpName = (i: number): string => `w${String(i).padStart(4, '0')}.bin`;
/** Each returning client's own ticket store, as if on a machine of its own. */
const ticketDirOf = (dir: string, i: number): string => join(dir, 'tickets', String(i));
/** First visits of returning clients run this many at a time (below the daemon's --max-handshakes). */
const FIRST_VISITS_AT_ONCE = 16;
const FIRST_VISIT_LIMIT_MS = 30_000;

/** Each of `clients` returning clients connects once (a handshake, nothing sent) and keeps the ticket it gets. */
async function firstVisits(dir: string, port: number, fingerprint: string, clients: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(FIRST_VISITS_AT_ONCE, clients) }, async () => {
      for (let i = next++; i < clients; i = next++) {
        const conn = await Connection.connect('127.0.0.1', port, FIRST_VISIT_LIMIT_MS);
        try {
          await handshake(conn, { host: '127.0.0.1', port, fingerprint, knownHostsFile: '/dev/null', ticketDir: ticketDirOf(dir, i) });
        } finally {
          conn.close();
        }
      }
    }),
  );
}

/** `clients` uploads of `file` at once, as `nameOf(i)`; returning clients keep tickets in their own stores. */
function uploadAll(port: number, fingerprint: string, file: TestFile, clients: number, nameOf: (i: number) => string, ticketDir: ((i: number) => string) | null): Promise<PromiseSettledResult<{ sha256: string }>[]> {
  return Promise.allSettled(
    Array.from({ length: clients }, (_, i) =>
      upload({
        host: '127.0.0.1',
        port,
        file: file.path,
        name: nameOf(i),
        fingerprint,
        knownHostsFile: '/dev/null',
        // First contacts: no ticket asked for or offered (§7.5), the same flight a 1.12 client
        // sends; returning clients offer the ticket their first visit left.
        ticketDir: ticketDir === null ? null : ticketDir(i),
        retries: RETRIES,
        retryForMs: RETRY_FOR_MS,
      }),
    ),
  );
}

/** The daemon's peak resident set so far (VmHWM), in bytes. */
async function peakRssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmHWM:\s*(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

/** The daemon log's "authenticated" events: [all, resumed]. */
function handshakesIn(log: string): [number, number] {
  const lines = log.split('\n').filter((l) => l.includes('"event":"authenticated"'));
  return [lines.length, lines.filter((l) => l.includes('"resumed":true')).length];
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** CPU seconds (user + sys, every thread) the process has used so far, from /proc. */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/**
 * `clients` uploads of `file` at once against a daemon of its own in `dir`: fresh, or warmed
 * first by the same uploads under other names (untimed).
 */
async function oneSample(dir: string, file: TestFile, c: ConcurrencyCase, daemonState: DaemonState, options: ConcurrencyOptions, build?: Build): Promise<ConcurrencySample> {
  const { clients } = c;
  const returning = c.returning === true;
  const recvDir = join(dir, 'received');
  await mkdir(recvDir, { recursive: true });
  const env = { ...process.env, STX_HOME: dir };
  // Its log (a few lines per connection) goes to a file: through a pipe to this busy process, the
  // daemon would wait whenever the pipe is full (its log writes are synchronous).
  const daemon = await startStxDaemon(recvDir, env, DAEMON_TIMEOUT_MS, LOCAL, ONE_SOURCE_FLAGS, options.daemonNodeArgs, build, join(dir, 'daemon.log'));
  if ('failed' in daemon) throw new Error(daemon.failed);
  const pid = await daemon.proc.childPid();
  try {
    if (pid === undefined) throw new Error('no pid for stx-recv');
    const tickets = returning ? (i: number): string => ticketDirOf(dir, i) : null;
    if (daemonState === 'warm') {
      // The warm-up: for returning clients, their first visits (each leaves its ticket).
      const warmUp = await uploadAll(daemon.port, daemon.fingerprint, file, clients, warmUpName, tickets);
      const failed = warmUp.find((o) => o.status === 'rejected');
      if (failed !== undefined) throw new Error(`warm-up upload failed: ${failed.reason instanceof Error ? failed.reason.message : String(failed.reason)}`);
      // From here VmHWM is the peak of the measured load (over what the warm-up left resident).
      await writeFile(`/proc/${pid}/clear_refs`, '5');
    } else if (returning) await firstVisits(dir, daemon.port, daemon.fingerprint, clients);
    const [visits, visitsResumed] = handshakesIn(await readFile(join(dir, 'daemon.log'), 'utf8').catch(() => ''));
    const cpu0 = await cpuSecondsOf(pid);
    const t0 = performance.now();
    const outcomes = await uploadAll(daemon.port, daemon.fingerprint, file, clients, name, tickets);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = (await cpuSecondsOf(pid)) - cpu0;
    const peakRss = await peakRssOf(pid);
    await daemon.proc.signal('SIGTERM');
    const exit = await daemon.proc.done;
    const failures: string[] = [];
    let verified = 0;
    for (const [i, o] of outcomes.entries()) {
      if (o.status === 'rejected') {
        failures.push(`${name(i)}: ${o.reason instanceof Error ? o.reason.message : String(o.reason)}`);
        continue;
      }
      const sha = await sha256File(join(recvDir, name(i))).catch(() => '');
      if (sha === file.sha256 && o.value.sha256 === file.sha256) verified++;
      else failures.push(`${name(i)}: received file's SHA-256 does not match`);
    }
    const bytes = clients * file.size;
    const [all, resumed] = handshakesIn(await readFile(join(dir, 'daemon.log'), 'utf8').catch(() => ''));
    return {
      handshakes: all - visits,
      resumed: resumed - visitsResumed,
      clients,
      returning,
      daemonState,
      fileBytes: file.size,
      seconds,
      aggregateMiBPerSecond: bytes / MiB / seconds,
      verified,
      failures: failures.slice(0, MAX_FAILURES_KEPT),
      daemonCpuSecondsPerGiB: cpu / (bytes / GiB),
      daemonPeakRssMiB: peakRss / MiB,
      daemon: exit.rusage,
    };
  } catch (err) {
    await daemon.proc.signal('SIGKILL');
    await daemon.proc.done;
    throw err;
  }
}

function summarise(samples: readonly (ConcurrencySample & { round: number })[], reference: readonly (ConcurrencySample & { round: number })[] | null): Omit<CaseSummary, 'clients' | 'fileBytes'> {
  const refOf = (round: number): ConcurrencySample | undefined => reference?.find((r) => r.round === round);
  const paired = samples.map((s) => ({ s, ref: refOf(s.round) })).filter((p): p is { s: typeof p.s; ref: ConcurrencySample } => p.ref !== undefined);
  return {
    rounds: samples.length,
    verified: samples.reduce((n, s) => n + s.verified, 0),
    attempted: samples.reduce((n, s) => n + s.clients, 0),
    aggregateMiBPerSecond: spread(samples.map((s) => s.aggregateMiBPerSecond)),
    daemonCpuSecondsPerGiB: spread(samples.map((s) => s.daemonCpuSecondsPerGiB)),
    daemonPeakRssMiB: spread(samples.map((s) => s.daemonPeakRssMiB)),
    handshakes: spread(samples.map((s) => s.handshakes)),
    throughputVsSingle: reference === null || paired.length === 0 ? null : spread(paired.map((p) => p.s.aggregateMiBPerSecond / p.ref.aggregateMiBPerSecond)),
    cpuVsSingle: reference === null || paired.length === 0 ? null : spread(paired.map((p) => p.s.daemonCpuSecondsPerGiB / p.ref.daemonCpuSecondsPerGiB)),
    failures: samples.flatMap((s) => s.failures.map((f) => `round ${s.round}, ${s.clients} clients: ${f}`)).slice(0, MAX_FAILURES_KEPT),
  };
}

/**
 * The cases and the single-stream reference, `options.rounds` times interleaved, each sample
 * against its own daemon of each kind in `options.daemons`; files are made in `tmpRoot` and
 * removed. A sample that fails throws.
 */
export async function concurrentUploads(
  options: ConcurrencyOptions,
  tmpRoot: string,
  log: (line: string) => void,
  syncDisks: () => void,
): Promise<ConcurrencyResult> {
  const [first] = options.cases;
  if (first === undefined) throw new Error('no concurrency cases');
  const [primary] = options.daemons;
  if (primary === undefined) throw new Error('no kind of daemon to measure against');
  const dir = await mkdtemp(join(tmpRoot, 'concurrency-'));
  try {
    const singleBytes = first.clients * first.fileBytes;
    const plan: ConcurrencyCase[] = [{ clients: 1, fileBytes: singleBytes }, ...options.cases];
    const sizes = new Set(plan.map((c) => c.fileBytes));
    const files = new Map<number, TestFile>();
    for (const size of sizes) files.set(size, await makeTestFile(join(dir, `payload-${size}.bin`), size));
    const fileOf = (size: number): TestFile => {
      const f = files.get(size);
      if (f === undefined) throw new Error(`no ${size}-byte file`);
      return f;
    };
    const samples: (ConcurrencySample & { round: number })[] = [];
    const refSamples: (ConcurrencySample & { round: number })[] = [];
    const ref = options.ref;
    for (let round = 1; round <= options.rounds; round++) {
      for (const c of plan) {
        for (const state of options.daemons) {
          // Under --compare each sample runs on both builds, which alternate going first.
          const builds = ref === undefined ? [null] : round % 2 === 1 ? [null, ref] : [ref, null];
          for (const b of builds) {
            syncDisks();
            const runDir = await mkdtemp(join(dir, `run-${c.clients}-`));
            const s = await oneSample(runDir, fileOf(c.fileBytes), c, state, options, b?.build);
            (b === null ? samples : refSamples).push({ ...s, round });
            log(
              `concurrency round ${round}/${options.rounds}${b === null ? '' : ` ${b.name}`}: ${caseLabel(c)}, ${state} daemon: ${s.aggregateMiBPerSecond.toFixed(1)} MiB/s, ` +
                `daemon ${s.daemonCpuSecondsPerGiB.toFixed(2)} CPU s/GiB, peak RSS ${s.daemonPeakRssMiB.toFixed(1)} MiB, ${s.handshakes} handshakes (${s.resumed} resumed), ${s.verified}/${c.clients} verified`,
            );
            // Its files emptied, not removed, until every sample is done (emptyFilesUnder).
            await emptyFilesUnder(runDir);
          }
        }
      }
    }
    const ofIn =
      (all: readonly (ConcurrencySample & { round: number })[], state: DaemonState) =>
      (c: ConcurrencyCase): (ConcurrencySample & { round: number })[] =>
        all.filter((s) => s.daemonState === state && s.clients === c.clients && s.fileBytes === c.fileBytes && s.returning === (c.returning === true));
    const summaryOf = (all: readonly (ConcurrencySample & { round: number })[], state: DaemonState): DaemonSummary => {
      const of = ofIn(all, state);
      const reference = of(plan[0] ?? first);
      return {
        daemonState: state,
        single: { clients: 1, fileBytes: singleBytes, ...summarise(reference, null) },
        cases: options.cases.map((c) => ({ ...c, ...summarise(of(c), reference) })),
      };
    };
    let compared: BuildComparison | undefined;
    if (ref !== undefined) {
      const of = ofIn(samples, primary);
      const refOf = ofIn(refSamples, primary);
      const ratio = (c: ConcurrencyCase, f: (s: ConcurrencySample) => number): Spread | null => {
        const pairs = of(c).flatMap((s) => {
          const r = refOf(c).find((x) => x.round === s.round);
          return r === undefined ? [] : [f(s) / f(r)];
        });
        return pairs.length === 0 ? null : spread(pairs);
      };
      compared = {
        ref: ref.name,
        rows: plan.flatMap((c) => {
          const cpuPerGiB = ratio(c, (s) => s.daemonCpuSecondsPerGiB);
          const throughput = ratio(c, (s) => s.aggregateMiBPerSecond);
          const peakRss = ratio(c, (s) => s.daemonPeakRssMiB);
          if (cpuPerGiB === null || throughput === null || peakRss === null) return [];
          return [{ clients: c.clients, fileBytes: c.fileBytes, returning: c.returning === true, pairs: of(c).length, cpuPerGiB, throughput, peakRss }];
        }),
        ...summaryOf(refSamples, primary),
      };
    }
    return {
      ...summaryOf(samples, primary),
      others: options.daemons.slice(1).map((state) => summaryOf(samples, state)),
      samples,
      compared,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
    syncDisks();
  }
}
