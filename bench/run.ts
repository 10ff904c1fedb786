// Entry point of `npm run bench`: every contender sends the same file, N times, interleaved;
// each received copy is checked by SHA-256; medians go to RESULTS.md and results.json.
//
//   node dist/bench/run.js [--size 1G] [--runs 3] [--only raw,scp,sftp,tus,stx] [--out bench/] [--keep]
//                          [--extras handshake,concurrency,memory|none] [--handshakes 200] [--parallel-clients 8]
//                          [--concurrent-clients 100,1000] [--concurrent-size 8M,1M] [--concurrent-rounds 3]
//                          [--concurrent-daemons warm,fresh]
//                          [--profile-daemon DIR] [--memory-sizes 256M,4G]
//                          [--tuning on|off|LIST] [--compare REF]
//   node dist/bench/run.js --wan RTT,RATE [...]   (bench/wan.ts: the contenders over an emulated long link)
//   node dist/bench/run.js --store s3 [...]       (bench/s3.ts: stx into Ceph RGW vs @aws-sdk/lib-storage)
//   node dist/bench/run.js --tree [...]           (bench/tree.ts: whole trees against rsync, scp -r, tar)
//
// The extras (bench/extras) measure stx alone: handshake latency and rate, many concurrent clients,
// and peak memory by file size; RESULTS.md checks the targets against this run.
import { mkdir, mkdtemp, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { availableParallelism, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { raw } from './contenders/raw.js';
import { scp } from './contenders/scp.js';
import { sftp } from './contenders/sftp.js';
import { stx, stxBuild } from './contenders/stx.js';
import { stxSealed } from './contenders/stx-sealed.js';
import { tus } from './contenders/tus.js';
import type { Contender, RunResult } from './contenders/types.js';
import { DAEMON_STATES, type DaemonState } from './extras/concurrency.js';
import { EXTRAS, runExtras, type ExtraName, type ExtrasOptions, type ExtrasResults } from './extras/index.js';
import { ensureTools } from './lib/apt.js';
import { renderExtras, targets } from './lib/extras-report.js';
import { GNU_TIME_PATH } from './lib/measure.js';
import { checkContenders, prepareTestFile, syncDisks } from './lib/prepare.js';
import { buildRef, compareRuns, renderComparison } from './lib/compare.js';
import { costFloor, costTarget, renderCost, type FloorRecord } from './lib/cost.js';
import { cryptoFloor } from './lib/floor.js';
import { ratios, renderMarkdown, summarise, type RunRecord } from './lib/report.js';
import { sha256File } from './lib/testfile.js';
import { stxCommands } from './lib/paths.js';
import { isWanRun, runWan, WAN_USAGE } from './wan.js';
import { isS3Run, runS3Bench, S3_USAGE } from './s3.js';
import { parseTuning } from '../src/runtime/tuning.js';

const CONTENDERS: readonly Contender[] = [raw, scp, sftp, tus, stx, stxSealed];
const DEFAULT_SIZE = '1G';
/** Issue 15 asks for medians of at least 5 runs, with their spread. */
const DEFAULT_RUNS = 5;
const MAX_RUNS = 20;
const MAX_SIZE_BYTES = 64 * 1024 ** 3;
/** Room needed besides the file and one received copy. */
const DISK_MARGIN_BYTES = 256 * 1024 * 1024;
const UNITS: Readonly<Record<string, number>> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };
const DEFAULT_HANDSHAKES = 200;
const DEFAULT_PARALLEL_CLIENTS = 8;
/** Each parallel client runs this many handshakes one after the other. */
const DEFAULT_HANDSHAKES_PER_CLIENT = 50;
const DEFAULT_CONCURRENT_CLIENTS = '100,1000';
const DEFAULT_CONCURRENT_SIZE = '8M,1M';
const DEFAULT_CONCURRENT_ROUNDS = 3;
const DEFAULT_MEMORY_SIZES = '256M,4G';
const MAX_COUNT = 10_000;

const USAGE = `usage: node dist/bench/run.js [options]
  --size SIZE     file size, binary units: 256M, 1G, 4G, 1048576 (default ${DEFAULT_SIZE})
  --runs N        runs per contender, median reported (default ${DEFAULT_RUNS}, max ${MAX_RUNS})
  --only LIST     comma-separated subset of ${CONTENDERS.map((c) => c.name).join(',')} (default: all)
  --out DIR       where RESULTS.md and results.json go (default bench/)
  --keep          keep the temp dir (test file) afterwards
  --extras LIST   stx-only measurements: ${EXTRAS.join(',')} (default: all), or none
  --handshakes N  sequential handshakes for the latency median and p99 (default ${DEFAULT_HANDSHAKES})
  --parallel-clients N   clients handshaking at once for handshakes/s (default ${DEFAULT_PARALLEL_CLIENTS})
  --handshakes-per-client N   handshakes each of them makes (default ${DEFAULT_HANDSHAKES_PER_CLIENT})
  --concurrent-clients LIST  uploads at once, one case each (default ${DEFAULT_CONCURRENT_CLIENTS});
                            a count ending in r (1000r): returning clients, each resuming with a ticket
  --concurrent-size LIST     file size of each upload, per case (default ${DEFAULT_CONCURRENT_SIZE})
  --concurrent-rounds N      rounds of the cases and their single-stream reference, interleaved,
                             each against a daemon of its own (default ${DEFAULT_CONCURRENT_ROUNDS})
  --concurrent-daemons LIST  the daemons each case runs against: warm (the same load once first,
                             untimed), fresh (the measured load is its
                             first); the targets are checked on the first (default warm,fresh)
  --profile-daemon DIR       the concurrency daemons write a CPU profile (node --cpu-prof) into DIR
  --memory-sizes LIST    file sizes for the peak-memory transfers (default ${DEFAULT_MEMORY_SIZES})
  --tuning VALUE  STX_TUNING for stx-send and stx-recv: on, off, or a list of the runtime tricks to
                  keep (src/runtime/tuning.ts), to measure what each buys (default on)
  --compare REF   also build stx from git REF (a temporary worktree) and run it interleaved with this
                  checkout's (contenders: stx unless --only says; extras: none unless --extras says);
                  writes COMPARE.md and compare.json instead of RESULTS.md and results.json
${WAN_USAGE}
${S3_USAGE}
  --tree          instead of the above: the tree bench (bench/tree.ts): 10,000 files of 4 KiB and a
                  mixed tree of 1,000 files, stx against rsync -a, scp -r and tar over ssh;
                  [--tree-runs N] (default 2) [--tree-scale F] (0 < F <= 1, fewer files) [--out DIR];
                  writes RESULTS-tree.md`;

/** "256M", "1G", "1.5GiB", "4096" → bytes. */
function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const unit = UNITS[(m?.[2] ?? '').toUpperCase()];
  if (m === null || unit === undefined) throw new Error(`bad --size ${text}`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (!(bytes >= 1 && bytes <= MAX_SIZE_BYTES)) throw new Error(`--size must be 1 B .. 64 GiB`);
  return bytes;
}

interface Options {
  readonly size: number;
  readonly runs: number;
  readonly contenders: readonly Contender[];
  readonly outDir: string;
  readonly keep: boolean;
  readonly extras: ExtrasOptions;
  /** STX_TUNING for the stx processes (they inherit this process's environment). */
  readonly tuning: string | undefined;
  /** --compare: the git ref to build and run beside this checkout. */
  readonly compare: string | undefined;
}

function parseCount(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > MAX_COUNT) throw new Error(`${flag} must be 1..${MAX_COUNT}`);
  return n;
}

function parseExtras(text: string): Set<ExtraName> {
  if (text.trim() === 'none') return new Set();
  const names = text.split(',').map((n) => n.trim()).filter((n) => n !== '');
  const known = new Set<string>(EXTRAS);
  const unknown = names.filter((n) => !known.has(n));
  if (unknown.length > 0) throw new Error(`--extras: unknown ${unknown.join(',')}`);
  return new Set(EXTRAS.filter((e) => names.includes(e)));
}

/**
 * `--concurrent-clients 100,1000 --concurrent-size 8M,1M` → 100 × 8 MiB and 1000 × 1 MiB; a count
 * ending in `r` (`1000r`) stands for returning clients, which resume with a ticket (§7.5).
 */
function parseCases(clients: string, sizes: string): { clients: number; fileBytes: number; returning: boolean }[] {
  const entries = clients.split(',').map((c) => c.trim());
  const bytes = sizes.split(',').map((s) => parseSize(s.trim()));
  if (entries.length !== bytes.length) throw new Error('--concurrent-clients and --concurrent-size need as many entries each');
  return entries.map((c, i) => {
    const returning = c.endsWith('r');
    return { clients: parseCount(returning ? c.slice(0, -1) : c, '--concurrent-clients'), fileBytes: bytes[i] ?? 0, returning };
  });
}

/** `--concurrent-daemons warm,fresh` → ['warm', 'fresh']. */
function parseDaemonStates(text: string): DaemonState[] {
  const names = [...new Set(text.split(',').map((n) => n.trim()).filter((n) => n !== ''))];
  // In the order given: the first is the one the targets are checked on.
  const states = names.flatMap((n) => DAEMON_STATES.filter((d) => d === n));
  if (states.length !== names.length || states.length === 0) throw new Error(`--concurrent-daemons: a list of ${DAEMON_STATES.join(',')}`);
  return states;
}

function parseOptions(argv: readonly string[]): Options | null {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      size: { type: 'string', default: DEFAULT_SIZE },
      runs: { type: 'string', default: String(DEFAULT_RUNS) },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench' },
      keep: { type: 'boolean', default: false },
      extras: { type: 'string' },
      handshakes: { type: 'string', default: String(DEFAULT_HANDSHAKES) },
      'parallel-clients': { type: 'string', default: String(DEFAULT_PARALLEL_CLIENTS) },
      'handshakes-per-client': { type: 'string', default: String(DEFAULT_HANDSHAKES_PER_CLIENT) },
      'concurrent-clients': { type: 'string', default: DEFAULT_CONCURRENT_CLIENTS },
      'concurrent-size': { type: 'string', default: DEFAULT_CONCURRENT_SIZE },
      'concurrent-rounds': { type: 'string', default: String(DEFAULT_CONCURRENT_ROUNDS) },
      'concurrent-daemons': { type: 'string', default: DAEMON_STATES.join(',') },
      'profile-daemon': { type: 'string' },
      'memory-sizes': { type: 'string', default: DEFAULT_MEMORY_SIZES },
      tuning: { type: 'string' },
      compare: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return null;
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) throw new Error(`--runs must be 1..${MAX_RUNS}`);
  const compare = values.compare;
  let contenders = compare === undefined ? CONTENDERS : CONTENDERS.filter((c) => c.name === 'stx');
  if (values.only !== undefined) {
    const names = values.only.split(',').map((n) => n.trim()).filter((n) => n !== '');
    const unknown = names.filter((n) => !CONTENDERS.some((c) => c.name === n));
    if (unknown.length > 0 || names.length === 0) throw new Error(`--only: unknown contender(s) ${unknown.join(',')}`);
    contenders = CONTENDERS.filter((c) => names.includes(c.name));
  }
  const extras: ExtrasOptions = {
    // The extras measure stx: they run when stx is one of the contenders.
    which: contenders.some((c) => c.name === 'stx') ? parseExtras(values.extras ?? (compare === undefined ? EXTRAS.join(',') : 'none')) : new Set(),
    handshakes: parseCount(values.handshakes, '--handshakes'),
    parallelClients: parseCount(values['parallel-clients'], '--parallel-clients'),
    handshakesPerParallelClient: parseCount(values['handshakes-per-client'], '--handshakes-per-client'),
    concurrencyCases: parseCases(values['concurrent-clients'], values['concurrent-size']),
    concurrencyRounds: parseCount(values['concurrent-rounds'], '--concurrent-rounds'),
    concurrencyDaemons: parseDaemonStates(values['concurrent-daemons']),
    concurrencyDaemonNodeArgs: values['profile-daemon'] === undefined ? undefined : ['--cpu-prof', `--cpu-prof-dir=${resolve(values['profile-daemon'])}`],
    memorySizes: values['memory-sizes'].split(',').filter((x) => x.trim() !== '').map(parseSize),
  };
  if (values.tuning !== undefined) parseTuning(values.tuning); // refuses an unknown name before anything runs
  return { size: parseSize(values.size), runs, contenders, outDir: resolve(values.out), keep: values.keep, extras, tuning: values.tuning, compare };
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

async function cpuModel(): Promise<string> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown CPU';
}

/** Let one run's dirty pages reach the disk before the next run starts (untimed). */
async function main(): Promise<number> {
  // The tree bench (issue 13 item 7): its own contenders and trees, bench/tree.ts.
  if (process.argv.includes('--tree')) return (await import('./tree.js')).runTreeBench(process.argv.slice(2), log);
  if (isS3Run(process.argv.slice(2))) return runS3Bench(process.argv.slice(2), { parseSize, log });
  if (isWanRun(process.argv.slice(2))) return runWan(process.argv.slice(2), { contenders: CONTENDERS, parseSize, log });
  const options = parseOptions(process.argv.slice(2));
  if (options === null) {
    log(USAGE);
    return 0;
  }
  if (options.tuning !== undefined) {
    process.env['STX_TUNING'] = options.tuning;
    log(`STX_TUNING=${options.tuning} for stx-send and stx-recv`);
  }
  const started = performance.now();
  const noTime = await ensureTools([{ path: GNU_TIME_PATH, pkg: 'time' }], 'measuring CPU and peak RSS');
  if (noTime !== null) throw new Error(`GNU time is required: ${noTime}`);

  const tmpRoot = await mkdtemp(join(tmpdir(), 'stx-bench-'));
  const cleanUp = (): void => {
    if (!options.keep) rmSync(tmpRoot, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  try {
    const { bavail, bsize } = await statfs(tmpRoot);
    const largest = Math.max(options.size, ...(options.extras.which.has('memory') ? options.extras.memorySizes : []));
    if (bavail * bsize < 2 * largest + DISK_MARGIN_BYTES) {
      throw new Error(`not enough free space in ${tmpRoot} for two ${largest}-byte files`);
    }
    const ref = options.compare === undefined ? null : await buildRef(options.compare, tmpRoot, log);
    if (ref !== null) process.once('exit', () => ref.remove());
    const refName = ref === null ? null : `stx@${ref.commit}`;
    const contenders = ref === null || refName === null ? options.contenders : [...options.contenders, stxBuild(refName, ref.distRoot, `${options.compare ?? ''} (${ref.commit})`)];
    const { infos, ready } = await checkContenders(contenders, log);
    const file = await prepareTestFile(tmpRoot, options.size, log);

    const loadAverageAtStart = loadavg()[0] ?? Number.NaN;
    const records: RunRecord[] = [];
    const floors: FloorRecord[] = [];
    for (let run = 1; run <= options.runs; run++) {
      // The crypto floor of this round (bench/lib/floor.ts), beside the contenders' runs.
      floors.push({ run, floor: await cryptoFloor() });
      // Under --compare the two builds alternate which goes first, so that neither always follows the other.
      for (const c of ref !== null && run % 2 === 0 ? [...ready].reverse() : ready) {
        const workdir = await mkdtemp(join(tmpRoot, `${c.name}-${run}-`));
        const result = await c.run(file, workdir).catch(
          (err: unknown): RunResult => ({ kind: 'failed', reason: err instanceof Error ? err.message : String(err) }),
        );
        let verified: boolean | null = null;
        if (result.kind === 'ok') {
          verified = await sha256File(result.receivedPath).then((h) => h === file.sha256, () => false);
          const speed = options.size / 1024 ** 2 / result.wallSeconds;
          log(`run ${run}/${options.runs} ${c.name}: ${speed.toFixed(1)} MiB/s, ${verified ? 'SHA-256 ok' : 'SHA-256 MISMATCH'}`);
        } else {
          log(`run ${run}/${options.runs} ${c.name}: FAILED ${result.reason}`);
        }
        records.push({ contender: c.name, run, result, verified });
        await rm(workdir, { recursive: true, force: true });
        syncDisks();
      }
    }

    // The extras make their own files: free the disk for the largest of them.
    if (!options.keep) await rm(file.path, { force: true });
    let extras: ExtrasResults | null = null;
    if (options.extras.which.size > 0 && ready.some((c) => c.name === 'stx')) {
      // Under --compare the concurrency extra runs the other build's daemon beside this one's.
      // The same entry points as this checkout's (bundled where the commit bundles), not its unbundled modules.
      const concurrencyRef = ref === null || refName === null ? undefined : { name: refName, build: stxCommands(ref.distRoot) };
      extras = await runExtras({ ...options.extras, concurrencyRef }, tmpRoot, log, syncDisks);
    }

    const summaries = infos.map((info) => summarise(info, records, options.size));
    const env = {
      date: new Date().toISOString(),
      cpuModel: await cpuModel(),
      cores: availableParallelism(),
      memoryGiB: totalmem() / 1024 ** 3,
      kernel: release(),
      node: process.version,
      fileBytes: file.size,
      fileSha256: file.sha256,
      runs: options.runs,
      totalSeconds: (performance.now() - started) / 1000,
      loadAverageAtStart,
    };
    const rs = ratios(summaries);
    const checked = [costTarget(summaries), ...targets(summaries, rs, extras)];
    const floor = costFloor(records, floors, options.size);
    const floorNote = floors.map((f) => f.floor).find((f) => 'unavailable' in f)?.unavailable ?? (ready.some((c) => c.name === 'raw') ? null : 'raw did not run');
    const cost = renderCost(summaries, floor, floorNote);
    const comparison = refName === null ? null : compareRuns(records, 'stx', refName, options.size, options.compare ?? '');
    const compared = refName === null ? [] : renderComparison(comparison, 'stx', refName);
    const markdown = `${renderMarkdown(env, summaries, rs)}${[...compared, ...cost].join('\n')}\n${renderExtras(extras, checked).join('\n')}\n`;
    const [mdName, jsonName] = ref === null ? ['RESULTS.md', 'results.json'] : ['COMPARE.md', 'compare.json'];
    await mkdir(options.outDir, { recursive: true });
    await writeFile(join(options.outDir, mdName), markdown);
    await writeFile(
      join(options.outDir, jsonName),
      `${JSON.stringify({ environment: env, summaries, ratios: rs, comparison, floor, floors, targets: checked, extras, runs: records }, null, 2)}\n`,
    );
    process.stdout.write(markdown);
    log(`wrote ${join(options.outDir, mdName)} and ${jsonName}`);
    const extrasBroken =
      extras !== null &&
      ((extras.handshake !== null && 'failed' in extras.handshake) ||
        (extras.concurrency !== null && ('failed' in extras.concurrency || extras.concurrency.cases.some((c) => c.verified < c.attempted))) ||
        (extras.memory ?? []).some((m) => m.failure !== null));
    const broken = extrasBroken || summaries.some((s) => s.unavailable === null && s.failures.length > 0);
    return broken ? 1 : 0;
  } finally {
    cleanUp();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`bench: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(2);
  },
);
