// What the micro-benchmarks share: run two variants of one job in turn (A B A B …) so that a
// drifting machine moves both alike, take the median of each, and print one table row per job.
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

export const MiB = 1024 * 1024;
const DEFAULT_RUNS = 5;
const MAX_RUNS = 25;

/** One run's figures: wall and CPU milliseconds, and whatever else the job reports. */
export interface Sample {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly extra?: Readonly<Record<string, number>>;
}

export interface Row {
  readonly job: string;
  readonly variant: string;
  /** Medians over the runs. */
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly extra: Readonly<Record<string, number>>;
  /** Median wall and CPU time relative to the job's first variant. */
  readonly wallRatio: number;
  readonly cpuRatio: number;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? NaN) : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** Times `fn` in this process: wall clock and this process's CPU (every thread's). */
export function timed(fn: () => void): Sample {
  const cpu = process.cpuUsage();
  const start = performance.now();
  fn();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/**
 * Runs every variant of a job `runs` times, in turn, after one warm-up round that is not counted;
 * rows are the medians, the first variant is the reference of the ratios.
 */
export async function compare(
  job: string,
  runs: number,
  variants: readonly { readonly name: string; readonly run: () => Sample | Promise<Sample> }[],
): Promise<Row[]> {
  const samples = variants.map(() => [] as Sample[]);
  for (let round = 0; round <= runs; round++) {
    for (const [i, v] of variants.entries()) {
      const s = await v.run();
      if (round > 0) samples[i]?.push(s);
    }
  }
  const rows = variants.map((v, i) => {
    const got = samples[i] ?? [];
    const keys = Object.keys(got[0]?.extra ?? {});
    const extra = Object.fromEntries(keys.map((k) => [k, median(got.map((s) => s.extra?.[k] ?? NaN))]));
    return { job, variant: v.name, wallMs: median(got.map((s) => s.wallMs)), cpuMs: median(got.map((s) => s.cpuMs)), extra };
  });
  const wall = rows[0]?.wallMs ?? NaN;
  const cpu = rows[0]?.cpuMs ?? NaN;
  return rows.map((r) => ({ ...r, wallRatio: r.wallMs / wall, cpuRatio: r.cpuMs / cpu }));
}

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : '–');

/** A Markdown table of `rows`; `extras` names the extra columns to show and their headers. */
export function table(title: string, runs: number, rows: readonly Row[], extras: readonly (readonly [string, string])[] = []): string {
  const head = ['job', 'variant', 'wall ms', '÷ first', 'CPU ms', '÷ first', ...extras.map(([, h]) => h)];
  const lines = [
    `### ${title} (median of ${runs} runs)`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...rows.map((r) =>
      `| ${[r.job, r.variant, fmt(r.wallMs), fmt(r.wallRatio, 2), fmt(r.cpuMs), fmt(r.cpuRatio, 2), ...extras.map(([k]) => fmt(r.extra[k] ?? NaN, 1))].join(' | ')} |`,
    ),
    '',
  ];
  return lines.join('\n');
}

/** `--runs N` from argv, bounded. */
export function runsArg(argv: readonly string[]): number {
  const i = argv.indexOf('--runs');
  if (i < 0) return DEFAULT_RUNS;
  const n = Number(argv[i + 1]);
  if (!Number.isInteger(n) || n < 1 || n > MAX_RUNS) throw new RangeError(`--runs must be an integer in 1..${MAX_RUNS}`);
  return n;
}

/** CPU centiseconds (user + system) per thread id of this process. */
export function threadCpu(): Map<string, number> {
  const cpu = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const fields = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
      cpu.set(tid, Number(fields[11]) + Number(fields[12]));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return cpu;
}
