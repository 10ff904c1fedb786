// What the local backend's publishing path (src/storage/local/put-pool.ts, put-thread.ts) costs
// for 10,000 files of 4 KiB in 100 directories, as stx-recv's PUTs hand them over (putPool.run
// per file, in directory order, many waiting at once): CPU centiseconds per thread of this
// process (/proc/self/task), for a first round in a fresh process (the publishing thread starts
// and warms up, as in a fresh daemon: bench/tree.ts starts one per run) and a second round after
// it. Each round writes into new directories under a fresh temporary directory (ext4 creates in
// a directory that just had many files deleted cost up to 3x more), removed at the end.
//
//   node dist/bench/micro/put-pool.js [--rounds N]
//
// On the shared 2-core machine (2026-12-03, load 9, 5 interleaved pairs of fresh processes), all
// threads together, first round: two threads one batch each 178 cs (median 171), one thread two
// batches at once 140 (133); second round ~equal (90 vs 94, noise).
import { mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { newPathCounters } from '../../src/storage/local/paths.js';
import { putPool, type PutTarget } from '../../src/storage/local/put-pool.js';
import { threadCpu } from './lib.js';

const FILES = 10_000;
const FILES_PER_DIR = 100;
const FILE_BYTES = 4096;
/** Files handed over before the event loop turns (stx-recv hands a PUT_PACK's 256 over at once). */
const HANDED_PER_TURN = 256;

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '2' } } });
const rounds = Math.max(1, Math.min(10, Number(values.rounds) || 2));

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'stx-bench-put-pool-')));
try {
  const out = path.join(root, 'out');
  mkdirSync(path.join(out, '.stx', 'partials'), { recursive: true });
  mkdirSync(path.join(out, '.stx', 'sums'), { recursive: true });
  const partialsDir = path.join(out, '.stx', 'partials');
  const target: PutTarget = { outDir: out, realOutDir: out, sumsDir: path.join(out, '.stx', 'sums'), counters: newPathCounters(), partialsDir, shownPartialsDir: '.stx/partials' };
  const data = Buffer.alloc(FILE_BYTES, 7);
  const sha256 = Buffer.alloc(32, 1);
  for (let round = 0; round < rounds; round++) {
    const before = threadCpu();
    const started = Date.now();
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < FILES; i++) {
      const name = `r${round}/d${Math.floor(i / FILES_PER_DIR)}/f${i}`;
      jobs.push(putPool.run({ name, temp: `${round}-${i}.put`, chunks: [data], mode: 0o644, mtime: 1_700_000_000_000, how: 'replace', sha256 }, target));
      if ((i + 1) % HANDED_PER_TURN === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const failed = (await Promise.allSettled(jobs)).filter((r) => r.status === 'rejected').length;
    const wall = Date.now() - started;
    const after = threadCpu();
    const perThread = [...after].map(([tid, cs]) => cs - (before.get(tid) ?? 0)).filter((cs) => cs > 0);
    const total = perThread.reduce((a, b) => a + b, 0);
    process.stdout.write(`round ${round + 1}: ${FILES} files, ${failed} failed, wall ${wall} ms, CPU ${total} cs (threads with CPU: ${perThread.join(' ')})\n`);
  }
} finally {
  rmSync(root, { recursive: true, force: true });
}
process.exit(0);
