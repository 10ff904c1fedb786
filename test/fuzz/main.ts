// `npm run fuzz`: runs every fuzz target (or those named) for a time each, one child process per
// target with NODE_V8_COVERAGE set, then prints executions per second and the V8 block coverage
// of the targeted sources (the metric is defined in coverage.ts).
//
//   node dist/test/fuzz/main.js [--seconds N] [--target NAME]... [--seed N] [--jobs N]
//                               [--shrink-seconds N] [--json FILE] [--no-vectors]
//
// A failure prints its minimal counterexample and the seed/path that replays it, and (unless
// --no-vectors) appends its regression vector to spec/vectors/*-fuzz.json. Exit code 1 if any
// target failed or could not run.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { coveredFiles, mergeCoverage, readCoverage, summarize, uncoveredSourceLines, type FileCoverage } from './coverage.js';
import { appendRegression } from './regressions.js';
import { runTarget, type TargetReport } from './runner.js';
import { targetByName, TARGETS } from './targets.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '30' },
    target: { type: 'string', multiple: true },
    seed: { type: 'string' },
    jobs: { type: 'string', default: '1' },
    'shrink-seconds': { type: 'string', default: '30' },
    json: { type: 'string' },
    'no-vectors': { type: 'boolean', default: false },
    child: { type: 'string' },
    out: { type: 'string' },
  },
});

function number(name: string, text: string | undefined, min: number, max: number): number {
  const n = Number(text);
  if (text === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in ${min}..${max}`);
  return n;
}

const seconds = number('seconds', values.seconds, 0.1, 24 * 3600);
const shrinkSeconds = number('shrink-seconds', values['shrink-seconds'], 0, 3600);
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : number('seed', values.seed, -(2 ** 31), 2 ** 31 - 1);

/** Child mode: run one target, write its report as JSON. */
function child(name: string, out: string): void {
  const target = targetByName(name);
  if (target === undefined) throw new Error(`unknown target ${name}`);
  const report = target.use((t) => runTarget(t, { seconds, seed, shrinkSeconds }));
  writeFileSync(out, JSON.stringify(report));
}

interface Result {
  readonly name: string;
  readonly report: TargetReport | null;
  readonly error: string | null;
  readonly coverage: Map<string, FileCoverage>;
}

/** The child's report, as child() wrote it. */
function isReport(x: unknown): x is TargetReport {
  if (typeof x !== 'object' || x === null) return false;
  const r = new Map(Object.entries(x));
  return ['execs', 'seconds', 'execsPerSecond', 'slowestMs', 'seed'].every((k) => typeof r.get(k) === 'number') && typeof r.get('name') === 'string' && r.has('failure');
}

/** Runs one target in a child process with coverage on; bounded by the budgets plus a margin. */
function runChild(name: string): Promise<Result> {
  const dir = mkdtempSync(path.join(tmpdir(), `stx-fuzz-${name}-`));
  const out = path.join(dir, 'report.json');
  const covDir = path.join(dir, 'coverage');
  const args = [fileURLToPath(import.meta.url), '--child', name, '--out', out, '--seconds', String(seconds), '--seed', String(seed), '--shrink-seconds', String(shrinkSeconds)];
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, args, { env: { ...process.env, NODE_V8_COVERAGE: covDir }, stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    const limit = setTimeout(() => proc.kill('SIGKILL'), (seconds + shrinkSeconds + 120) * 1000);
    proc.on('close', (code) => {
      clearTimeout(limit);
      let report: TargetReport | null = null;
      let error: string | null = null;
      let coverage = new Map<string, FileCoverage>();
      try {
        const parsed: unknown = JSON.parse(readFileSync(out, 'utf8'));
        if (!isReport(parsed)) throw new Error(`malformed report ${out}`);
        report = parsed;
        coverage = readCoverage(covDir, coveredFiles());
      } catch (err) {
        error = `child exited with ${code ?? 'a signal'}: ${stderr.trim() || String(err)}`;
      }
      rmSync(dir, { recursive: true, force: true });
      resolve({ name, report, error, coverage });
    });
  });
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function printResults(results: readonly Result[]): void {
  const files = coveredFiles();
  console.log(`\nseed ${seed}, ${seconds} s per target\n`);
  console.log(`${pad('target', 18)} ${pad('execs', 10, true)} ${pad('execs/s', 9, true)} ${pad('slowest', 9, true)} ${pad('body cov', 9, true)}  result`);
  for (const r of results) {
    const all = [...r.coverage.values()].map(summarize);
    const counted = all.reduce((a, s) => a + s.counted, 0);
    const covered = all.reduce((a, s) => a + s.covered, 0);
    const rep = r.report;
    const status = r.error !== null ? `ERROR ${r.error.split('\n')[0] ?? ''}` : rep?.failure ? `FAIL ${rep.failure.message}` : 'ok';
    console.log(
      `${pad(r.name, 18)} ${pad(String(rep?.execs ?? '-'), 10, true)} ${pad(rep ? rep.execsPerSecond.toFixed(0) : '-', 9, true)} ` +
        `${pad(rep ? `${rep.slowestMs.toFixed(1)}ms` : '-', 9, true)} ${pad(counted ? `${((100 * covered) / counted).toFixed(1)}%` : '-', 9, true)}  ${status}`,
    );
  }
  const total = results.reduce((a, r) => a + (r.report?.execs ?? 0), 0);
  console.log(`${pad('total', 18)} ${pad(String(total), 10, true)}`);

  console.log(`\nV8 block coverage by file (body coverage, see test/fuzz/coverage.ts); columns: ${results.map((r, i) => `[${i + 1}] ${r.name}`).join(', ')}\n`);
  console.log(`${pad('file', 24)} ${results.map((_, i) => pad(`[${i + 1}]`, 7, true)).join('')} ${pad('union', 7, true)} ${pad('fns', 7, true)} ${pad('gaps', 5, true)}`);
  const union: FileCoverage[] = [];
  for (const file of files) {
    const per = results.map((r) => r.coverage.get(file));
    const merged = mergeCoverage(per.filter((c): c is FileCoverage => c !== undefined));
    const cells = per.map((c) => pad(c && summarize(c).counted > 0 ? `${summarize(c).percent.toFixed(0)}%` : '-', 7, true)).join('');
    if (merged === null || summarize(merged).counted === 0) {
      console.log(`${pad(file, 24)} ${cells} ${pad('-', 7, true)}`);
      continue;
    }
    union.push(merged);
    const s = summarize(merged);
    console.log(`${pad(file, 24)} ${cells} ${pad(`${s.percent.toFixed(1)}%`, 7, true)} ${pad(`${s.coveredFunctions}/${s.functions}`, 7, true)} ${pad(String(s.uncoveredBlocks), 5, true)}`);
  }
  const counted = union.reduce((a, c) => a + summarize(c).counted, 0);
  const covered = union.reduce((a, c) => a + summarize(c).covered, 0);
  console.log(`${pad('all files', 24)} ${' '.repeat(7 * results.length)} ${pad(counted ? `${((100 * covered) / counted).toFixed(1)}%` : '-', 7, true)}`);
  console.log('\nnever executed (union of all targets):');
  for (const c of union) {
    const lines = uncoveredSourceLines(c);
    if (lines.length > 0) console.log(`  ${lines.join(', ')}`);
  }
}

function printFailures(results: readonly Result[]): void {
  for (const r of results) {
    const f = r.report?.failure;
    if (r.error !== null) console.log(`\n${r.name}: could not run: ${r.error}`);
    if (!f) continue;
    console.log(`\n${r.name}: FAILED after ${f.shrinks} shrinks: ${f.message}`);
    console.log(`  counterexample: ${f.counterexample}`);
    console.log(`  replay: seed ${f.seed}, path "${f.path}"`);
    if (f.regression === null) console.log('  (no regression vector fits this target)');
    else if (values['no-vectors']) console.log(`  regression vector (not written): ${JSON.stringify(f.regression.vector)}`);
    else {
      // The name records where it came from; the spec's expected answer is in the vector itself.
      const what = f.message.replace(/^FuzzFailure: /, '').replace(/[^\x20-\x7e]/g, '?').slice(0, 100);
      const name = `fuzz ${r.name} (seed ${f.seed}): ${what}`;
      const added = appendRegression(f.regression, name);
      console.log(`  regression vector ${added ? 'added to' : 'already in'} spec/vectors/${f.regression.file}: ${JSON.stringify({ ...f.regression.vector, name })}`);
    }
  }
}

async function main(): Promise<void> {
  if (values.child !== undefined) {
    if (values.out === undefined) throw new Error('--child needs --out');
    child(values.child, values.out);
    return;
  }
  const names = values.target ?? TARGETS.map((t) => t.name);
  for (const n of names) if (targetByName(n) === undefined) throw new Error(`unknown target ${n}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  const jobs = number('jobs', values.jobs, 1, 8);
  const results: Result[] = [];
  const queue = [...names];
  const worker = async (): Promise<void> => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      console.log(`running ${n} for ${seconds} s…`);
      results.push(await runChild(n));
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, names.length) }, worker));
  results.sort((a, b) => names.indexOf(a.name) - names.indexOf(b.name));
  printResults(results);
  printFailures(results);
  if (values.json !== undefined) {
    const json = results.map((r) => ({
      name: r.name,
      error: r.error,
      report: r.report,
      coverage: [...r.coverage.values()].map(summarize),
    }));
    writeFileSync(values.json, JSON.stringify({ seed, seconds, results: json }, null, 1) + '\n');
  }
  if (results.some((r) => r.error !== null || r.report?.failure)) process.exitCode = 1;
}

await main();
