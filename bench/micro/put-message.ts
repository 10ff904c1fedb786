// What a publishing batch's message costs (src/storage/local/put-pool.ts → put-thread.ts, 256
// files), with its files as an object each (the form before put-jobs.ts) or in columns
// (put-jobs.ts): CPU centiseconds of the sending thread (build the message, postMessage: the
// structured clone) and of the worker (receive, read every field of every file), per 2,000
// messages, each form in turn in one process. On the shared 2-core machine (2026-12-03, load
// ~9, 5 runs): objects sender 24-32 worker 32-42, columns sender 9-12 worker 12-16: about
// 80 µs less per message on the sender and 120 µs on the worker, ~8 ms per 10,000 files of 4 KiB
// (~40 batches).
//
//   node dist/bench/micro/put-message.js [--runs N]
import { Worker } from 'node:worker_threads';
import { newPutJobs, setJob, type PutJob } from '../../src/storage/local/put-jobs.js';
import { runsArg, threadCpu } from './lib.js';

const FILES = 256;
const MESSAGES = 2000;

/** The worker: reads every field of every file of each message, as put-thread.ts does, and answers. */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
import(workerData).then(({ jobCount, jobOf }) => {
  let sink = 0;
  const use = (j) => { sink += j.name.length + j.temp.length + j.id + j.at + j.size + j.mode + j.mtime + j.sha256At + (j.how === 'replace' ? 1 : 0); };
  parentPort.on('message', (m) => {
    if (Array.isArray(m.jobs)) for (const j of m.jobs) use(j);
    else for (let i = 0; i < jobCount(m.jobs); i++) use(jobOf(m.jobs, i));
    parentPort.postMessage(sink);
  });
  parentPort.postMessage('ready');
});`;

const worker = new Worker(WORKER, { eval: true, workerData: new URL('../../src/storage/local/put-jobs.js', import.meta.url).href });
const next = (): Promise<unknown> => new Promise((resolve) => worker.once('message', resolve));
await next();

const names = Array.from({ length: FILES }, (_, i) => `d${i % 100}/file-${i}.dat`);
const temps = Array.from({ length: FILES }, (_, i) => `${'ab'.repeat(32)}${i}.put`);
let id = 1;
const jobAt = (i: number): PutJob => ({ id: id++, name: names[i] ?? '', temp: temps[i] ?? '', at: i * 4096, size: 4096, mode: 0o644, mtime: 1.7e12 + i, how: 'replace', sha256At: -1 });
const target = { kind: 'batch', outDir: '/tmp/x/out', realOutDir: '/tmp/x/out', sumsDir: '/tmp/x/out/.stx/sums', partialsDir: '/tmp/x/out/.stx/partials', shownPartialsDir: '.stx/partials' };

function message(form: 'objects' | 'columns', seq: number): object {
  if (form === 'objects') return { ...target, seq, jobs: names.map((_, i) => jobAt(i)) };
  const jobs = newPutJobs(FILES);
  for (let i = 0; i < FILES; i++) setJob(jobs, i, jobAt(i));
  return { ...target, seq, jobs };
}

/** [sender, worker] CPU centiseconds for MESSAGES messages of `form`. */
async function run(form: 'objects' | 'columns'): Promise<[number, number]> {
  const before = threadCpu();
  for (let seq = 0; seq < MESSAGES; seq++) {
    worker.postMessage(message(form, seq));
    await next();
  }
  const after = threadCpu();
  const used = [...after].map(([tid, cs]) => [tid, cs - (before.get(tid) ?? 0)] as const);
  const self = used.find(([tid]) => tid === String(process.pid))?.[1] ?? 0;
  const others = used.filter(([tid]) => tid !== String(process.pid)).map(([, cs]) => cs);
  return [self, Math.max(0, ...others)];
}

const runs = runsArg(process.argv.slice(2));
process.stdout.write(`${MESSAGES} messages of ${FILES} files, CPU cs (sender / worker)\n`);
for (let r = 0; r < runs; r++) {
  const objects = await run('objects');
  const columns = await run('columns');
  process.stdout.write(`run ${r + 1}: objects ${objects[0]} / ${objects[1]}, columns ${columns[0]} / ${columns[1]}\n`);
}
await worker.terminate();
