// `npm run bench -- --compare REF` (issue 15): this checkout's stx against stx built from REF, both
// run in one bench, interleaved, so that the machine's load falls on both alike. REF is checked
// out into a temporary git worktree (detached) and compiled there with this checkout's
// node_modules (linked) and TypeScript; the worktree is removed afterwards.
import { spawnSync } from 'node:child_process';
import { existsSync, symlinkSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';

import type { RunRecord, Spread } from './report.js';
import { spread } from './report.js';
import { PROJECT_ROOT } from './paths.js';

/** Checking out and compiling a commit: generous, but finite. */
const BUILD_TIMEOUT_MS = 10 * 60 * 1000;
const GiB = 1024 ** 3;
const fmt = (n: number, digits = 2): string => n.toFixed(digits);

export interface RefBuild {
  /** The commit REF named, short. */
  readonly commit: string;
  /** Its compiled tree (holds src/recv/cli.js, src/send/cli.js). */
  readonly distRoot: string;
  /** Removes the worktree. */
  remove(): void;
}

function run(command: string, args: readonly string[], cwd: string): string {
  const r = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: BUILD_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').slice(-5).join(' | ')}`);
  return r.stdout.trim();
}

/** REF checked out under `tmpRoot` and compiled; throws with the reason if it cannot be. */
export async function buildRef(ref: string, tmpRoot: string, log: (line: string) => void): Promise<RefBuild> {
  const commit = run('git', ['rev-parse', '--short', '--verify', `${ref}^{commit}`], PROJECT_ROOT);
  const dir = join(await mkdtemp(join(tmpRoot, 'compare-')), 'tree');
  log(`--compare: checking out ${ref} (${commit}) into ${dir}`);
  run('git', ['worktree', 'add', '--detach', dir, commit], PROJECT_ROOT);
  const remove = (): void => {
    const r = spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: PROJECT_ROOT, timeout: BUILD_TIMEOUT_MS });
    // Already deleted with the bench's temp dir: forget its bookkeeping.
    if (r.status !== 0) spawnSync('git', ['worktree', 'prune'], { cwd: PROJECT_ROOT, timeout: BUILD_TIMEOUT_MS });
  };
  try {
    // Its own dependencies would need a network install; this checkout's serve unless they changed.
    symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    log(`--compare: compiling ${commit}`);
    run(process.execPath, [join(PROJECT_ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json')], dir);
    const distRoot = join(dir, 'dist');
    if (!existsSync(join(distRoot, 'src/recv/cli.js'))) throw new Error(`${commit} compiled, but has no dist/src/recv/cli.js`);
    return { commit, distRoot, remove };
  } catch (err) {
    remove();
    throw err;
  }
}

export interface Comparison {
  readonly ref: string;
  readonly pairs: number;
  /** Per run: this checkout ÷ REF. Throughput above 1: this is faster; CPU below 1: this is cheaper. */
  readonly throughput: Spread;
  readonly senderCpu: Spread;
  readonly receiverCpu: Spread;
  readonly bothCpu: Spread;
}

/** Paired by run: each run's ratio of `mine` to `theirs`, then the median and min–max. */
export function compareRuns(records: readonly RunRecord[], mine: string, theirs: string, fileBytes: number, ref: string): Comparison | null {
  const gib = fileBytes / GiB;
  const rows: { t: number; s: number; r: number; b: number }[] = [];
  for (const a of records) {
    if (a.contender !== mine || a.result.kind !== 'ok' || a.verified !== true) continue;
    const b = records.find((x) => x.contender === theirs && x.run === a.run);
    if (b === undefined || b.result.kind !== 'ok' || b.verified !== true) continue;
    const A = a.result;
    const B = b.result;
    rows.push({
      t: B.wallSeconds / A.wallSeconds,
      s: A.sender.cpuSeconds / B.sender.cpuSeconds,
      r: A.receiver.cpuSeconds / B.receiver.cpuSeconds,
      b: (A.sender.cpuSeconds + A.receiver.cpuSeconds) / gib / ((B.sender.cpuSeconds + B.receiver.cpuSeconds) / gib),
    });
  }
  if (rows.length === 0) return null;
  return {
    ref,
    pairs: rows.length,
    throughput: spread(rows.map((x) => x.t)),
    senderCpu: spread(rows.map((x) => x.s)),
    receiverCpu: spread(rows.map((x) => x.r)),
    bothCpu: spread(rows.map((x) => x.b)),
  };
}

/** Whether a ratio's spread holds 1: the difference is within what the runs vary by. */
const verdict = (x: Spread, better: 'up' | 'down'): string => {
  if (x.min <= 1 && x.max >= 1) return 'within the spread';
  const improved = better === 'up' ? x.min > 1 : x.max < 1;
  return improved ? 'better in every run' : '**worse in every run**';
};

export function renderComparison(c: Comparison | null, mine: string, theirs: string): string[] {
  const lines = ['', `## This checkout against ${theirs}`, ''];
  if (c === null) return [...lines, 'No run pair where both verified.'];
  const row = (label: string, x: Spread, better: 'up' | 'down'): string =>
    `| ${label} | **${fmt(x.median)}** | ${fmt(x.min)}–${fmt(x.max)} | ${verdict(x, better)} |`;
  lines.push(
    `| ${mine} ÷ ${theirs}, per run | Median | Min–max | |`,
    '| --- | ---: | ---: | --- |',
    row('Throughput (>1: this checkout faster)', c.throughput, 'up'),
    row('Sender CPU s/GiB (<1: cheaper)', c.senderCpu, 'down'),
    row('Receiver CPU s/GiB (<1: cheaper)', c.receiverCpu, 'down'),
    row('CPU s/GiB, both sides (<1: cheaper)', c.bothCpu, 'down'),
    '',
    `Ratios of the two builds' runs paired by round (${c.pairs} pairs); the two alternate which goes first.`,
    'A ratio whose min–max holds 1 differs by less than the runs vary.',
  );
  return lines;
}
