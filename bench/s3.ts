// `npm run bench -- --store s3` (issue 16 item 6): stx uploading into Ceph's RADOS Gateway
// (stx-send → stx-recv --store s3://BUCKET --s3-endpoint URL) against AWS's own multipart
// uploader (@aws-sdk/lib-storage's Upload, bench/s3-upload.ts) sending the same file straight to
// the same RGW; then two stx-recv daemons on one bucket serving many concurrent clients.
//
//   node dist/bench/run.js --store s3 [--size 256M] [--runs 3] [--clients 100]
//                          [--client-sizes 1M,2M,3M,4M] [--part-size 8M] [--queue-size 4] [--out bench/]
//
// The cluster is test/support/ceph.ts's one-node Ceph (1 mon, 1 OSD on memstore, radosgw), started
// and stopped by this bench: memstore keeps objects in RAM (4 GiB device), so the default file is a
// modest 256 MiB and every object is deleted once verified. Each run does both sides, alternating
// which goes first; every object is read back with GetObject and its SHA-256 compared with the file's.
// Client and daemon CPU and peak RSS come from GNU time (bench/lib/measure.ts); the store's CPU
// (radosgw + ceph-osd + ceph-mon, from /proc) is measured around each transfer, the same for both.
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';

import { CreateBucketCommand, DeleteObjectCommand, GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';

import { startStxDaemon } from './contenders/stx.js';
import { transferTimeoutMs } from './contenders/types.js';
import { ensureTools } from './lib/apt.js';
import { describeExit, GNU_TIME_PATH, median, startMeasured, type MeasuredProcess, type Rusage } from './lib/measure.js';
import { benchScript, commandLine, stxCommands } from './lib/paths.js';
import { LOCAL } from './lib/placement.js';
import { prepareTestFile } from './lib/prepare.js';
import { makeTestFile, type TestFile } from './lib/testfile.js';
import { createS3Client } from '../src/storage/s3/client.js';
import { upload } from '../src/send/upload.js';
import { missingCephBinaries, startCeph } from '../test/support/ceph.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BUCKET = 'stx-bench';
const DEFAULT_SIZE = '256M';
const DEFAULT_RUNS = 3;
const MAX_RUNS = 20;
const DEFAULT_CLIENTS = 100;
const MAX_CLIENTS = 1000;
const DEFAULT_CLIENT_SIZES = '1M,2M,3M,4M';
/** stx's S3 segment (src/storage/s3/config.ts SEGMENT_BYTES): lib-storage gets the same part size. */
const DEFAULT_PART_SIZE = '8M';
/** lib-storage's own default: parts in flight at once. */
const DEFAULT_QUEUE_SIZE = 4;
/** memstore's device is 4 GiB of RAM (test/support/ceph.ts); one object at a time must fit well within it. */
const MAX_SIZE_BYTES = 1024 * MiB;
const USER_HZ = 100;
/** Bounds for the concurrent clients, as in bench/extras/concurrency.ts. */
const RETRIES = 8;
const RETRY_FOR_MS = 10 * 60 * 1000;
const FLEET_DAEMON_TIMEOUT_MS = 20 * 60 * 1000;
const MAX_FAILURES_KEPT = 10;
/** Every client comes from 127.0.0.1: the per-source handshake limits are lifted (as in the concurrency extra). */
const ONE_SOURCE_FLAGS = ['--max-handshakes-per-source', '100000', '--handshake-rate-per-source', '0'];

export const S3_USAGE = `  --store s3      the S3 bench (bench/s3.ts): stx into a one-node Ceph RGW vs @aws-sdk/lib-storage,
                  then two daemons on one bucket serving --clients uploads at once; writes RESULTS-s3.md
                  [--size ${DEFAULT_SIZE}] [--runs ${DEFAULT_RUNS}] [--clients ${DEFAULT_CLIENTS}] [--client-sizes ${DEFAULT_CLIENT_SIZES}]
                  [--part-size ${DEFAULT_PART_SIZE}] [--queue-size ${DEFAULT_QUEUE_SIZE}] (lib-storage's parts)`;

/** `--store s3` or `--store=s3` among the arguments. */
export function isS3Run(argv: readonly string[]): boolean {
  return argv.includes('--store=s3') || argv.some((a, i) => a === '--store' && argv[i + 1] === 's3');
}

type Side = 'stx' | 'lib-storage';

interface SideRun {
  readonly side: Side;
  readonly run: number;
  readonly ok: boolean;
  readonly failure: string | null;
  readonly wallSeconds: number;
  readonly client: Rusage | null;
  /** stx-recv's totals (start-up and shutdown included); null for lib-storage, which has none. */
  readonly daemon: Rusage | null;
  /** radosgw + ceph-osd + ceph-mon CPU seconds from the client's start to its exit. */
  readonly storeCpuSeconds: number;
  readonly verified: boolean;
}

interface FleetResult {
  readonly clients: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly aggregateMiBPerSecond: number;
  readonly verified: number;
  readonly perDaemon: readonly { readonly port: number; readonly clients: number; readonly cpuSeconds: number; readonly peakRssMiB: number }[];
  readonly daemonCpuSecondsPerGiB: number;
  readonly storeCpuSecondsPerGiB: number;
  /** This bench process, which runs the clients (src/send/upload.ts, no process per client). */
  readonly clientsCpuSecondsPerGiB: number;
  readonly failures: readonly string[];
}

/** The measured processes running now, killed on Ctrl-C (GNU time would outlive this process). */
const live = new Set<MeasuredProcess>();

/** Tracks `proc` in `live` until it exits. */
function tracked(proc: MeasuredProcess): MeasuredProcess {
  live.add(proc);
  void proc.done.finally(() => live.delete(proc));
  return proc;
}

/** CPU seconds (all threads) of `pid` so far, from /proc; 0 once it is gone. */
async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  if (stat === '') return 0;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
}

/** The Ceph daemons this process started (test/support/ceph.ts spawns them as its children). */
async function storePids(): Promise<number[]> {
  const list = await readFile(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').catch(() => '');
  const pids: number[] = [];
  for (const pid of list.split(' ').filter((p) => p !== '').map(Number)) {
    const comm = (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim();
    if (['radosgw', 'ceph-osd', 'ceph-mon'].includes(comm)) pids.push(pid);
  }
  return pids;
}

async function storeCpu(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await cpuSecondsOf(pid);
  return total;
}

/** SHA-256 of the object as GetObject returns it, or '' when it cannot be read. */
async function objectSha256(s3: S3Client, key: string): Promise<string> {
  try {
    const got = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
    const hash = createHash('sha256');
    for await (const chunk of got.Body as Readable) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return '';
  }
}

/** Verifies and then deletes the object (memstore holds it in RAM). */
async function verifyAndDelete(s3: S3Client, key: string, sha256: string): Promise<boolean> {
  const ok = (await objectSha256(s3, key)) === sha256;
  await s3.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key })).catch(() => undefined);
  return ok;
}

interface Context {
  readonly s3: S3Client;
  readonly endpoint: string;
  readonly env: NodeJS.ProcessEnv;
  readonly file: TestFile;
  readonly store: readonly number[];
  readonly tmpRoot: string;
  readonly partBytes: number;
  readonly queueSize: number;
}

async function runStxSide(ctx: Context, run: number): Promise<SideRun> {
  const dir = await mkdtemp(join(ctx.tmpRoot, `stx-${run}-`));
  const env = { ...ctx.env, STX_HOME: dir };
  const timeoutMs = transferTimeoutMs(ctx.file.size);
  const fail = (failure: string): SideRun => ({ side: 'stx', run, ok: false, failure, wallSeconds: Number.NaN, client: null, daemon: null, storeCpuSeconds: Number.NaN, verified: false });
  const storeArgs = ['--store', `s3://${BUCKET}/stx-${run}`, '--s3-endpoint', ctx.endpoint];
  const daemon = await startStxDaemon(null, env, timeoutMs, LOCAL, storeArgs, [], undefined, join(dir, 'daemon.log'));
  if ('failed' in daemon) return fail(daemon.failed);
  tracked(daemon.proc);
  const args = ['127.0.0.1', String(daemon.port), ctx.file.path, '--fingerprint', daemon.fingerprint, '--json', '--quiet'];
  const store0 = await storeCpu(ctx.store);
  const t0 = performance.now();
  const sent = await tracked(startMeasured(...commandLine(stxCommands().sendCli, args), { timeoutMs, env })).done;
  const wallSeconds = (performance.now() - t0) / 1000;
  const storeCpuSeconds = (await storeCpu(ctx.store)) - store0;
  await daemon.proc.signal('SIGTERM');
  const received = await daemon.proc.done;
  rmSync(dir, { recursive: true, force: true });
  if (sent.exitCode !== 0 || sent.rusage === null) return fail(describeExit('stx-send', sent));
  if (received.rusage === null) return fail(describeExit('stx-recv', received));
  const verified = await verifyAndDelete(ctx.s3, `stx-${run}/payload.bin`, ctx.file.sha256);
  return { side: 'stx', run, ok: true, failure: null, wallSeconds, client: sent.rusage, daemon: received.rusage, storeCpuSeconds, verified };
}

async function runLibSide(ctx: Context, run: number): Promise<SideRun> {
  const key = `lib-${run}/payload.bin`;
  const args = [benchScript('s3-upload.js'), ctx.file.path, ctx.endpoint, BUCKET, key, String(ctx.partBytes), String(ctx.queueSize)];
  const store0 = await storeCpu(ctx.store);
  const t0 = performance.now();
  const done = await tracked(startMeasured(process.execPath, args, { timeoutMs: transferTimeoutMs(ctx.file.size), env: ctx.env })).done;
  const wallSeconds = (performance.now() - t0) / 1000;
  const storeCpuSeconds = (await storeCpu(ctx.store)) - store0;
  if (done.exitCode !== 0 || done.rusage === null) {
    return { side: 'lib-storage', run, ok: false, failure: describeExit('s3-upload', done), wallSeconds: Number.NaN, client: null, daemon: null, storeCpuSeconds: Number.NaN, verified: false };
  }
  const verified = await verifyAndDelete(ctx.s3, key, ctx.file.sha256);
  return { side: 'lib-storage', run, ok: true, failure: null, wallSeconds, client: done.rusage, daemon: null, storeCpuSeconds, verified };
}

const clientName = (i: number): string => `c${String(i).padStart(4, '0')}.bin`;

/** Two daemons on one bucket prefix; `clients` uploads at once, alternately to each daemon's port. */
async function runFleet(ctx: Context, clients: number, sizes: readonly number[], log: (line: string) => void): Promise<FleetResult> {
  const dir = await mkdtemp(join(ctx.tmpRoot, 'fleet-'));
  try {
    const files: TestFile[] = [];
    for (const size of sizes) files.push(await makeTestFile(join(dir, `payload-${size}.bin`), size));
    const fileOf = (i: number): TestFile => {
      const f = files[i % files.length];
      if (f === undefined) throw new Error('no client files');
      return f;
    };
    const env = { ...ctx.env, STX_HOME: dir };
    const storeArgs = ['--store', `s3://${BUCKET}/fleet`, '--s3-endpoint', ctx.endpoint, ...ONE_SOURCE_FLAGS];
    const daemons: Exclude<Awaited<ReturnType<typeof startStxDaemon>>, { failed: string }>[] = [];
    for (const name of ['a', 'b']) {
      const d = await startStxDaemon(null, env, FLEET_DAEMON_TIMEOUT_MS, LOCAL, storeArgs, [], undefined, join(dir, `daemon-${name}.log`));
      if ('failed' in d) {
        for (const started of daemons) await started.proc.signal('SIGKILL');
        throw new Error(d.failed);
      }
      tracked(d.proc);
      daemons.push(d);
    }
    const pids = await Promise.all(daemons.map((d) => d.proc.childPid()));
    try {
      const cpu0 = await Promise.all(pids.map((p) => (p === undefined ? Promise.resolve(0) : cpuSecondsOf(p))));
      const store0 = await storeCpu(ctx.store);
      const self0 = process.cpuUsage();
      log(`fleet: ${clients} clients at once, ${sizes.map((s) => `${s / MiB} MiB`).join('/')} files, over two daemons`);
      const t0 = performance.now();
      const outcomes = await Promise.allSettled(
        Array.from({ length: clients }, (_, i) => {
          const d = daemons[i % daemons.length];
          if (d === undefined) throw new Error('no daemon');
          return upload({ host: '127.0.0.1', port: d.port, file: fileOf(i).path, name: clientName(i), fingerprint: d.fingerprint, knownHostsFile: '/dev/null', retries: RETRIES, retryForMs: RETRY_FOR_MS });
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      const self = process.cpuUsage(self0);
      const cpu = await Promise.all(pids.map((p, i) => (p === undefined ? Promise.resolve(0) : cpuSecondsOf(p).then((c) => c - (cpu0[i] ?? 0)))));
      const storeCpuSeconds = (await storeCpu(ctx.store)) - store0;
      const exits: Awaited<(typeof daemons)[number]['proc']['done']>[] = [];
      for (const d of daemons) {
        await d.proc.signal('SIGTERM');
        exits.push(await d.proc.done);
      }
      const failures: string[] = [];
      let verified = 0;
      let bytes = 0;
      for (const [i, o] of outcomes.entries()) {
        const f = fileOf(i);
        bytes += f.size;
        if (o.status === 'rejected') {
          failures.push(`${clientName(i)}: ${o.reason instanceof Error ? o.reason.message : String(o.reason)}`);
          continue;
        }
        if (o.value.sha256 === f.sha256 && (await verifyAndDelete(ctx.s3, `fleet/${clientName(i)}`, f.sha256))) verified++;
        else failures.push(`${clientName(i)}: the object's SHA-256 does not match`);
      }
      const daemonCpu = cpu.reduce((a, b) => a + b, 0);
      return {
        clients,
        bytes,
        seconds,
        aggregateMiBPerSecond: bytes / MiB / seconds,
        verified,
        perDaemon: daemons.map((d, i) => ({
          port: d.port,
          clients: outcomes.filter((_, j) => j % daemons.length === i).length,
          cpuSeconds: cpu[i] ?? Number.NaN,
          peakRssMiB: (exits[i]?.rusage?.maxRssBytes ?? Number.NaN) / MiB,
        })),
        daemonCpuSecondsPerGiB: daemonCpu / (bytes / GiB),
        storeCpuSecondsPerGiB: storeCpuSeconds / (bytes / GiB),
        clientsCpuSecondsPerGiB: (self.user + self.system) / 1e6 / (bytes / GiB),
        failures: failures.slice(0, MAX_FAILURES_KEPT),
      };
    } catch (err) {
      for (const d of daemons) await d.proc.signal('SIGKILL');
      throw err;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface SideSummary {
  readonly side: Side;
  readonly runs: number;
  readonly verified: number;
  readonly wallSeconds: number;
  readonly wallMin: number;
  readonly wallMax: number;
  readonly mibPerSecond: number;
  readonly clientCpuPerGiB: number;
  readonly daemonCpuPerGiB: number | null;
  readonly storeCpuPerGiB: number;
  readonly clientPeakRssMiB: number;
  readonly daemonPeakRssMiB: number | null;
  readonly failures: readonly string[];
}

function summarise(side: Side, records: readonly SideRun[], bytes: number): SideSummary {
  const mine = records.filter((r) => r.side === side);
  const ok = mine.filter((r) => r.ok);
  const gib = bytes / GiB;
  const walls = ok.map((r) => r.wallSeconds);
  const wall = median(walls);
  const daemons = ok.map((r) => r.daemon).filter((d): d is Rusage => d !== null);
  return {
    side,
    runs: mine.length,
    verified: mine.filter((r) => r.verified).length,
    wallSeconds: wall,
    wallMin: Math.min(...walls),
    wallMax: Math.max(...walls),
    mibPerSecond: bytes / MiB / wall,
    clientCpuPerGiB: median(ok.map((r) => (r.client?.cpuSeconds ?? Number.NaN) / gib)),
    daemonCpuPerGiB: daemons.length === 0 ? null : median(daemons.map((d) => d.cpuSeconds / gib)),
    storeCpuPerGiB: median(ok.map((r) => r.storeCpuSeconds / gib)),
    clientPeakRssMiB: median(ok.map((r) => (r.client?.maxRssBytes ?? Number.NaN) / MiB)),
    daemonPeakRssMiB: daemons.length === 0 ? null : median(daemons.map((d) => d.maxRssBytes / MiB)),
    failures: mine.flatMap((r) => (r.failure === null ? [] : [`run ${r.run}: ${r.failure}`])),
  };
}

const f1 = (n: number | null): string => (n === null || !Number.isFinite(n) ? '—' : n.toFixed(1));
const f2 = (n: number | null): string => (n === null || !Number.isFinite(n) ? '—' : n.toFixed(2));

function render(env: Record<string, string | number>, sides: readonly SideSummary[], fleet: FleetResult | { failed: string }, partBytes: number, queueSize: number): string {
  const [stx, lib] = sides;
  const lines = [
    '# stx into Ceph RGW vs @aws-sdk/lib-storage (issue 16 item 6)',
    '',
    `Written by \`node dist/bench/run.js --store s3\` (bench/s3.ts) on ${String(env['date'])}. ${String(env['cpuModel'])}, ${String(env['cores'])} cores, ${f1(Number(env['memoryGiB']))} GiB RAM, Linux ${String(env['kernel'])}, Node ${String(env['node'])}, ${String(env['ceph'])}.`,
    `Load average (1 min) ${f2(Number(env['loadAtStart']))} at the start and ${f2(Number(env['loadAtEnd']))} at the end: the machine is shared, so wall-clock figures are noisy; the CPU columns are the robust ones.`,
    '',
    `The store is test/support/ceph.ts's one-node cluster on 127.0.0.1 (1 mon, 1 OSD with memstore: objects in RAM, 4 GiB; radosgw, beast frontend), started by the bench. File: ${String(env['fileBytes'])} bytes (${f1(Number(env['fileBytes']) / MiB)} MiB) of random data; ${String(env['runs'])} runs, each doing both sides in turn (the first side alternates); medians shown. Every object was read back with GetObject and its SHA-256 compared with the file's, then deleted.`,
    '',
    `- **stx**: stx-send → stx-recv --store s3://${BUCKET}/stx-N --s3-endpoint URL (a fresh daemon per run). The daemon writes the upload's 8 MiB segments as the parts of one multipart upload as they fill (4 at once), the segment being filled as a small piece object at a checkpoint that does not see it fill within 250 ms, and publishes with CompleteMultipartUpload and a CopyObject to the name (RGW shares the data: no bytes copied; src/storage/s3/). Wall = stx-send start → exit (the daemon has published). Daemon CPU includes its start-up and shutdown.`,
    `- **lib-storage**: one node process (bench/s3-upload.ts) running @aws-sdk/lib-storage's Upload of the file (partSize ${partBytes / MiB} MiB, queueSize ${queueSize}); wall = its start → exit. It has no daemon: the client column is all its cost.`,
    '- **store CPU**: radosgw + ceph-osd + ceph-mon CPU seconds (/proc) over the same wall interval, per GiB: what the object store spent on each side.',
    '',
    '| side | wall s (min–max) | MiB/s | client CPU s/GiB | daemon CPU s/GiB | store CPU s/GiB | client peak RSS MiB | daemon peak RSS MiB | verified |',
    '|---|---|---|---|---|---|---|---|---|',
    ...sides.map(
      (s) =>
        `| ${s.side} | ${f2(s.wallSeconds)} (${f2(s.wallMin)}–${f2(s.wallMax)}) | ${f1(s.mibPerSecond)} | ${f2(s.clientCpuPerGiB)} | ${f2(s.daemonCpuPerGiB)} | ${f2(s.storeCpuPerGiB)} | ${f1(s.clientPeakRssMiB)} | ${f1(s.daemonPeakRssMiB)} | ${s.verified}/${s.runs} |`,
    ),
    '',
  ];
  if (stx !== undefined && lib !== undefined) {
    const stxCpu = stx.clientCpuPerGiB + (stx.daemonCpuPerGiB ?? 0);
    lines.push(
      `stx ÷ lib-storage: wall ${f2(stx.wallSeconds / lib.wallSeconds)}×; stx's client + daemon CPU ${f2(stxCpu)} s/GiB against lib-storage's ${f2(lib.clientCpuPerGiB)} s/GiB (${f2(stxCpu / lib.clientCpuPerGiB)}×): what encryption, the durable-offset record and resume cost on top of the store's own speed. Store CPU: ${f2(stx.storeCpuPerGiB / lib.storeCpuPerGiB)}× lib-storage's.`,
      '',
    );
  }
  for (const s of sides) for (const f of s.failures) lines.push(`- ${s.side} failed, ${f}`);
  lines.push('## Two daemons on one bucket, many clients at once', '');
  if ('failed' in fleet) {
    lines.push(`Failed: ${fleet.failed}`, '');
  } else {
    lines.push(
      `${fleet.clients} uploads started together from this bench process (src/send/upload.ts, no process per client), alternately to two stx-recv daemons (different ports) on s3://${BUCKET}/fleet; file sizes cycle through ${String(env['clientSizes'])}. Wall = first connect → last upload confirmed. Daemon CPU from /proc over that interval (start-up left out); peak RSS from GNU time.`,
      '',
      '| clients | MiB total | wall s | aggregate MiB/s | daemon CPU s/GiB (both) | store CPU s/GiB | clients CPU s/GiB | verified |',
      '|---|---|---|---|---|---|---|---|',
      `| ${fleet.clients} | ${f1(fleet.bytes / MiB)} | ${f2(fleet.seconds)} | ${f1(fleet.aggregateMiBPerSecond)} | ${f2(fleet.daemonCpuSecondsPerGiB)} | ${f2(fleet.storeCpuSecondsPerGiB)} | ${f2(fleet.clientsCpuSecondsPerGiB)} | ${fleet.verified}/${fleet.clients} |`,
      '',
      ...fleet.perDaemon.map((d, i) => `- daemon ${i === 0 ? 'A' : 'B'}: ${d.clients} clients, ${f2(d.cpuSeconds)} CPU s (${f1((d.cpuSeconds * 1000) / d.clients)} ms per upload), peak RSS ${f1(d.peakRssMiB)} MiB`),
      ...fleet.failures.map((f) => `- failed: ${f}`),
      '',
    );
  }
  lines.push(`Total bench time ${f1(Number(env['totalSeconds']))} s.`, '');
  return lines.join('\n');
}

function parseCount(text: string, flag: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`${flag} must be 1..${max}`);
  return n;
}

async function cpuModel(): Promise<string> {
  const info = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return /^model name\s*:\s*(.+)$/m.exec(info)?.[1]?.trim() ?? 'unknown CPU';
}

/** The S3 bench; 0 when every object verified, 1 when some side failed. */
export async function runS3Bench(argv: readonly string[], deps: { parseSize: (text: string) => number; log: (line: string) => void }): Promise<number> {
  const { parseSize, log } = deps;
  const { values } = parseArgs({
    args: [...argv],
    options: {
      store: { type: 'string' },
      size: { type: 'string', default: DEFAULT_SIZE },
      runs: { type: 'string', default: String(DEFAULT_RUNS) },
      clients: { type: 'string', default: String(DEFAULT_CLIENTS) },
      'client-sizes': { type: 'string', default: DEFAULT_CLIENT_SIZES },
      'part-size': { type: 'string', default: DEFAULT_PART_SIZE },
      'queue-size': { type: 'string', default: String(DEFAULT_QUEUE_SIZE) },
      out: { type: 'string', default: 'bench' },
    },
  });
  const size = parseSize(values.size);
  if (size > MAX_SIZE_BYTES) throw new Error(`--store s3: --size at most ${MAX_SIZE_BYTES / MiB}M (the OSD keeps objects in RAM)`);
  const runs = parseCount(values.runs, '--runs', MAX_RUNS);
  const clients = parseCount(values.clients, '--clients', MAX_CLIENTS);
  const clientSizes = values['client-sizes'].split(',').map((s) => parseSize(s.trim()));
  if (clientSizes.some((s) => s > 64 * MiB)) throw new Error('--client-sizes: at most 64M each');
  const partBytes = parseSize(values['part-size']);
  if (partBytes < 5 * MiB) throw new Error('--part-size: S3 wants parts of at least 5M');
  const queueSize = parseCount(values['queue-size'], '--queue-size', 64);
  const outDir = resolve(values.out);

  const started = performance.now();
  const noTime = await ensureTools([{ path: GNU_TIME_PATH, pkg: 'time' }], 'measuring CPU and peak RSS');
  if (noTime !== null) throw new Error(`GNU time is required: ${noTime}`);
  const missing = missingCephBinaries();
  if (missing.length > 0) throw new Error(`Ceph is not installed (missing ${missing.join(', ')}): apt-get install --no-install-recommends ceph-mon ceph-osd radosgw`);
  const loadAtStart = loadavg()[0] ?? Number.NaN;
  const tmpRoot = await mkdtemp(join(tmpdir(), 'stx-bench-s3-'));
  // Ctrl-C: kill the stx and uploader processes, stop the cluster (SIGKILL, its directory removed), remove the temp files, exit.
  let stopCeph: () => Promise<void> = () => Promise.resolve();
  const interrupted = (): void => {
    rmSync(tmpRoot, { recursive: true, force: true });
    void Promise.all([...live].map((p) => p.signal('SIGKILL')))
      .then(stopCeph)
      .finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  const ceph = await startCeph();
  stopCeph = () => ceph.stop();
  log(`ceph up in ${ceph.startMs} ms at ${ceph.endpoint}`);
  const s3 = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, credentials: ceph });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const file = await prepareTestFile(tmpRoot, size, log);
    const ctx: Context = { s3, endpoint: ceph.endpoint, env: { ...process.env, ...ceph.env }, file, store: await storePids(), tmpRoot, partBytes, queueSize };
    const records: SideRun[] = [];
    for (let run = 1; run <= runs; run++) {
      const order = run % 2 === 1 ? [runStxSide, runLibSide] : [runLibSide, runStxSide];
      for (const side of order) {
        const r = await side(ctx, run);
        records.push(r);
        log(`run ${run}/${runs} ${r.side}: ${r.ok ? `${(size / MiB / r.wallSeconds).toFixed(1)} MiB/s, ${r.verified ? 'SHA-256 ok' : 'SHA-256 MISMATCH'}` : `FAILED ${r.failure ?? ''}`}`);
      }
    }
    rmSync(file.path, { force: true });
    const fleet = await runFleet(ctx, clients, clientSizes, log).catch((err: unknown) => ({ failed: err instanceof Error ? err.message : String(err) }));
    log('failed' in fleet ? `fleet: FAILED ${fleet.failed}` : `fleet: ${fleet.aggregateMiBPerSecond.toFixed(1)} MiB/s aggregate, ${fleet.verified}/${fleet.clients} verified`);
    const sides = [summarise('stx', records, size), summarise('lib-storage', records, size)];
    const cephVersion = spawnSync('radosgw', ['--version'], { encoding: 'utf8' }).stdout.trim().split('\n')[0] ?? 'Ceph';
    const env = {
      date: new Date().toISOString(),
      cpuModel: await cpuModel(),
      cores: availableParallelism(),
      memoryGiB: totalmem() / GiB,
      kernel: release(),
      node: process.version,
      ceph: cephVersion.replace(/\s*\([0-9a-f]{40}\)/, ''),
      fileBytes: size,
      fileSha256: file.sha256,
      runs,
      clientSizes: clientSizes.map((s) => `${f1(s / MiB)} MiB`).join(', '),
      loadAtStart,
      loadAtEnd: loadavg()[0] ?? Number.NaN,
      totalSeconds: (performance.now() - started) / 1000,
    };
    const markdown = render(env, sides, fleet, partBytes, queueSize);
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'RESULTS-s3.md'), markdown);
    await writeFile(join(outDir, 'results-s3.json'), `${JSON.stringify({ environment: env, partBytes, queueSize, summaries: sides, fleet, runs: records }, null, 2)}\n`);
    process.stdout.write(markdown);
    log(`wrote ${join(outDir, 'RESULTS-s3.md')} and results-s3.json`);
    const broken = records.some((r) => !r.ok || !r.verified) || 'failed' in fleet || fleet.verified < fleet.clients;
    return broken ? 1 : 0;
  } finally {
    process.off('SIGINT', interrupted);
    s3.destroy();
    await ceph.stop();
    rmSync(tmpRoot, { recursive: true, force: true });
  }
}
