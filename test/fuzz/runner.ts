// Runs one target for a bounded time and count with fast-check: the seeds first (as examples),
// then generated inputs; on a failure, a second bounded phase shrinks it to a minimal one.
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import type { Regression, Target } from './target.js';

export interface RunOptions {
  /** Wall-clock budget of the fuzzing phase. */
  readonly seconds: number;
  readonly seed: number;
  /** Upper bound on generated inputs, whatever the time (every loop is bounded in count too). */
  readonly maxRuns?: number;
  /** Wall-clock budget for shrinking a failure. */
  readonly shrinkSeconds?: number;
}

export interface Failure {
  readonly message: string;
  /** The minimal input found, as the target shows it. */
  readonly counterexample: string;
  readonly regression: Regression | null;
  /** Replays it: fast-check's seed and path. */
  readonly seed: number;
  readonly path: string;
  readonly shrinks: number;
}

export interface TargetReport {
  readonly name: string;
  readonly seed: number;
  /** Executions of the target during the fuzzing phase (seeds included, shrinking excluded). */
  readonly execs: number;
  readonly seconds: number;
  readonly execsPerSecond: number;
  readonly slowestMs: number;
  readonly failure: Failure | null;
}

/** An execution slower than this is a finding too (a hang or a quadratic path). */
export const SLOW_EXEC_MS = 2000;
const DEFAULT_MAX_RUNS = 50_000_000;

export function runTarget<I>(target: Target<I>, opts: RunOptions): TargetReport {
  const seeds = target.seeds();
  const arbitrary = target.arbitrary(seeds);
  let execs = 0;
  let slowest = 0;
  const property = fc.property(arbitrary, (input) => {
    execs += 1;
    const t0 = performance.now();
    target.run(input);
    const ms = performance.now() - t0;
    slowest = Math.max(slowest, ms);
    if (ms > SLOW_EXEC_MS) throw new Error(`slow execution: ${ms.toFixed(0)} ms`);
  });
  const t0 = performance.now();
  const found = fc.check<[I]>(property, {
    seed: opts.seed,
    numRuns: opts.maxRuns ?? DEFAULT_MAX_RUNS,
    endOnFailure: true,
    examples: seeds.map((s): [I] => [s]),
    interruptAfterTimeLimit: opts.seconds * 1000,
  });
  const seconds = (performance.now() - t0) / 1000;
  const fuzzExecs = execs;
  const base = {
    name: target.name,
    seed: opts.seed,
    execs: fuzzExecs,
    seconds,
    execsPerSecond: fuzzExecs / Math.max(seconds, 1e-9),
    slowestMs: slowest,
  };
  if (!found.failed || found.counterexamplePath === null) return { ...base, failure: null };

  const shrunk = fc.check<[I]>(property, {
    seed: found.seed,
    path: found.counterexamplePath,
    numRuns: DEFAULT_MAX_RUNS,
    interruptAfterTimeLimit: (opts.shrinkSeconds ?? 30) * 1000,
  });
  const best: fc.RunDetails<[I]> = shrunk.failed && shrunk.counterexample !== null ? shrunk : found;
  const [input] = best.counterexample;
  const error = best.errorInstance;
  return {
    ...base,
    failure: {
      message: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      counterexample: target.show(input),
      regression: target.regression?.(input) ?? null,
      seed: best.seed,
      path: best.counterexamplePath,
      shrinks: shrunk.numShrinks,
    },
  };
}
