// `npm run bench -- --compare REF` (issue 15): this checkout's stx against stx built from REF, both
// run in one bench, interleaved, so that the machine's load falls on both alike. REF is checked
// out into a temporary git worktree (detached) and compiled there with this checkout's
// node_modules (linked) and TypeScript; the worktree is removed afterwards.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, symlinkSync } from 'node:fs';
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
  /** Its compiled tree (holds src/recv/cli.js, src/send/cli.js, and bin/ if that commit bundles). */
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
    // Bundled like this checkout's commands when that commit has the step (stxCommands picks).
    const pkg: unknown = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'scripts' in pkg && typeof pkg.scripts === 'object' && pkg.scripts !== null && 'bundle' in pkg.scripts) run('npm', ['run', '--silent', 'bundle'], dir);
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
  /**
   * How much each measure varies between runs of one build: the larger of the two builds'
   * (max − min) ÷ median, for throughput, sender, receiver and both sides' CPU.
   */
  readonly noise: { readonly throughput: number; readonly senderCpu: number; readonly receiverCpu: number; readonly bothCpu: number };
}

/** Paired by run: each run's ratio of `mine` to `theirs`, then the median and min–max. */
export function compareRuns(records: readonly RunRecord[], mine: string, theirs: string, fileBytes: number, ref: string): Comparison | null {
  const gib = fileBytes / GiB;
  const rows: { t: number; s: number; r: number; b: number }[] = [];
  const own: Record<'mine' | 'theirs', { t: number[]; s: number[]; r: number[]; b: number[] }> = {
    mine: { t: [], s: [], r: [], b: [] },
    theirs: { t: [], s: [], r: [], b: [] },
  };
  for (const a of records) {
    if (a.contender !== mine || a.result.kind !== 'ok' || a.verified !== true) continue;
    const b = records.find((x) => x.contender === theirs && x.run === a.run);
    if (b === undefined || b.result.kind !== 'ok' || b.verified !== true) continue;
    const A = a.result;
    const B = b.result;
    for (const [side, x] of [['mine', A], ['theirs', B]] as const) {
      own[side].t.push(1 / x.wallSeconds);
      own[side].s.push(x.sender.cpuSeconds);
      own[side].r.push(x.receiver.cpuSeconds);
      own[side].b.push(x.sender.cpuSeconds + x.receiver.cpuSeconds);
    }
    rows.push({
      t: B.wallSeconds / A.wallSeconds,
      s: A.sender.cpuSeconds / B.sender.cpuSeconds,
      r: A.receiver.cpuSeconds / B.receiver.cpuSeconds,
      b: (A.sender.cpuSeconds + A.receiver.cpuSeconds) / gib / ((B.sender.cpuSeconds + B.receiver.cpuSeconds) / gib),
    });
  }
  if (rows.length === 0) return null;
  const relative = (v: number[]): number => {
    const x = spread(v);
    return (x.max - x.min) / x.median;
  };
  const noise = (k: 't' | 's' | 'r' | 'b'): number => Math.max(relative(own.mine[k]), relative(own.theirs[k]));
  return {
    ref,
    noise: { throughput: noise('t'), senderCpu: noise('s'), receiverCpu: noise('r'), bothCpu: noise('b') },
    pairs: rows.length,
    throughput: spread(rows.map((x) => x.t)),
    senderCpu: spread(rows.map((x) => x.s)),
    receiverCpu: spread(rows.map((x) => x.r)),
    bothCpu: spread(rows.map((x) => x.b)),
  };
}

/**
 * A ratio is a difference only where it is further from 1 than either build varies between its
 * own runs (`noise`, relative); else the two are alike as far as these runs can tell.
 */
const verdict = (x: Spread, noise: number, better: 'up' | 'down'): string => {
  if (Math.abs(x.median - 1) <= noise) return 'within the spread';
  const improved = better === 'up' ? x.median > 1 : x.median < 1;
  return improved ? 'better, beyond the spread' : '**worse, beyond the spread**';
};

export function renderComparison(c: Comparison | null, mine: string, theirs: string): string[] {
  const lines = ['', `## This checkout against ${theirs}`, ''];
  if (c === null) return [...lines, 'No run pair where both verified.'];
  const row = (label: string, x: Spread, noise: number, better: 'up' | 'down'): string =>
    `| ${label} | **${fmt(x.median)}** | ${fmt(x.min)}–${fmt(x.max)} | ±${fmt(100 * noise, 0)} % | ${verdict(x, noise, better)} |`;
  lines.push(
    `| ${mine} ÷ ${theirs}, per run | Median | Min–max | Spread of one build | |`,
    '| --- | ---: | ---: | ---: | --- |',
    row('Throughput (>1: this checkout faster)', c.throughput, c.noise.throughput, 'up'),
    row('Sender CPU s/GiB (<1: cheaper)', c.senderCpu, c.noise.senderCpu, 'down'),
    row('Receiver CPU s/GiB (<1: cheaper)', c.receiverCpu, c.noise.receiverCpu, 'down'),
    row('CPU s/GiB, both sides (<1: cheaper)', c.bothCpu, c.noise.bothCpu, 'down'),
    '',
    `Ratios of the two builds' runs paired by round (${c.pairs} pairs); the two alternate which goes first.`,
    "Spread of one build = the larger of the two builds' (max − min) ÷ median over their own runs; a",
    'median ratio closer to 1 than that is no difference these runs can show.',
  );
  return lines;
}
