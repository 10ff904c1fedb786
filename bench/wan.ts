// `npm run bench -- --wan RTT,RATE [--wan RTT,RATE …]`: every contender sends the same file over
// an emulated long link (bench/lib/wan.ts), the server in one network namespace and the client in
// the other; each received copy is checked by SHA-256. Writes RESULTS-wan.md and results-wan.json.
//
//   node dist/bench/run.js --wan 50ms,1gbit --wan 150ms,1gbit --wan 150ms,100mbit
//                          [--size 256M] [--runs 1] [--only raw,stx] [--out bench/] [--keep]
//                          [--streams 8] [--cut-every 10s] [--cut-size 1G]
//
// Besides the contenders, stx-send --streams N (§9.13) runs as "stx --streams N"; with
// --cut-every, each link also carries one stx --streams N upload of --cut-size bytes whose
// connections the link cuts (ss -K) every so often: wall time, verified, and the bytes that
// crossed the link toward the server against the file's size.
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, release, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { AUTO_MAX_STREAMS, AUTO_ONE_STREAM_RTT_MS } from '../src/send/ranged.js';
import { runStx, stxStreams } from './contenders/stx.js';
import type { Contender, RunResult } from './contenders/types.js';
import { ensureTools } from './lib/apt.js';
import { GNU_TIME_PATH } from './lib/measure.js';
import { checkContenders, prepareTestFile, syncDisks } from './lib/prepare.js';
import { summarise, type ContenderInfo, type RunRecord, type Summary } from './lib/report.js';
import { sha256File } from './lib/testfile.js';
import { rawStreams } from './lib/wan-raw.js';
import {
  buildForwarder,
  closeAllLinksSync,
  LINK_MTU,
  openLink,
  parseLinkSpecs,
  queueBytes,
  removeStaleNamespaces,
  wanUnavailable,
  type ForwarderMode,
  type LinkBusy,
  type LinkCounters,
  type LinkSpec,
  type RttProbe,
} from './lib/wan.js';

const DEFAULT_SIZE = '256M';
const DEFAULT_RUNS = 1;
const DEFAULT_STREAMS = 8;
const MAX_RUNS = 20;
/** TCP payload per full IP packet (IPv4 20 + TCP 20 + timestamps 12 bytes of headers). */
const TCP_PAYLOAD_PER_PACKET = LINK_MTU - 52;
const MiB = 1024 * 1024;

export const WAN_USAGE = `  --wan RTT,RATE  instead of the above: every contender over an emulated long link (repeatable,
                  e.g. --wan 50ms,1gbit --wan 150ms,100mbit; needs root, ip, gcc, /dev/net/tun);
                  with --size (default ${DEFAULT_SIZE}), --runs (default ${DEFAULT_RUNS}), --only, --out, --keep;
                  --streams N (default ${DEFAULT_STREAMS}): "stx --streams N" runs beside plain stx;
                  --cut-every DURATION [--cut-size SIZE]: per link, one stx --streams N upload
                  whose connections are cut that often (wire bytes / file size); --cut-on RTT,RATE
                  runs it on that link only;
                  writes RESULTS-wan.md and results-wan.json`;

/** True when the command line asks for the long-link bench. */
export function isWanRun(argv: readonly string[]): boolean {
  return argv.some((a) => a === '--wan' || a.startsWith('--wan='));
}

export interface WanDeps {
  readonly contenders: readonly Contender[];
  readonly parseSize: (text: string) => number;
  readonly log: (line: string) => void;
}

interface WanOptions {
  readonly links: readonly LinkSpec[];
  readonly size: number;
  readonly runs: number;
  readonly contenders: readonly Contender[];
  readonly outDir: string;
  readonly keep: boolean;
  readonly streams: number;
  /** Null: no cut case. */
  readonly cutEveryMs: number | null;
  readonly cutSize: number;
  /** The link (as given to --wan) the cut case runs on; null: every link. */
  readonly cutOn: string | null;
}

function parseOptions(argv: readonly string[], deps: WanDeps): WanOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      wan: { type: 'string', multiple: true },
      size: { type: 'string', default: DEFAULT_SIZE },
      runs: { type: 'string', default: String(DEFAULT_RUNS) },
      only: { type: 'string' },
      out: { type: 'string', default: 'bench' },
      keep: { type: 'boolean', default: false },
      streams: { type: 'string', default: String(DEFAULT_STREAMS) },
      'cut-every': { type: 'string' },
      'cut-size': { type: 'string' },
      'cut-on': { type: 'string' },
    },
  });
  const streams = Number(values.streams);
  if (!Number.isInteger(streams) || streams < 1 || streams > 16) throw new Error('--streams must be 1..16');
  const cut = values['cut-every'];
  const cutMatch = cut === undefined ? null : /^(\d+(?:\.\d+)?)(ms|s)$/.exec(cut);
  if (cut !== undefined && cutMatch === null) throw new Error(`--cut-every ${cut}: expected e.g. 10s or 500ms`);
  const cutEveryMs = cutMatch === null ? null : Number(cutMatch[1]) * (cutMatch[2] === 's' ? 1000 : 1);
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1 || runs > MAX_RUNS) throw new Error(`--runs must be 1..${MAX_RUNS}`);
  // Plain "stx" is stx-send's default (--streams auto: the round trip decides); "stx --streams 1"
  // (one connection, in order) and "stx --streams N" beside it, on the long links only.
  // "raw ×N": N plain TCP connections, the ceiling of an N-connection upload through the link.
  let contenders = streams > 1 ? [...deps.contenders, rawStreams(streams), stxStreams(1), stxStreams(streams)] : [...deps.contenders, stxStreams(1)];
  if (values.only !== undefined) {
    const names = values.only.split(',').map((n) => n.trim()).filter((n) => n !== '');
    const unknown = names.filter((n) => !contenders.some((c) => c.name === n));
    if (unknown.length > 0 || names.length === 0) throw new Error(`--only: unknown contender(s) ${unknown.join(',')}`);
    contenders = contenders.filter((c) => names.includes(c.name));
  }
  return {
    links: parseLinkSpecs(values.wan ?? []),
    size: deps.parseSize(values.size),
    runs,
    contenders,
    outDir: resolve(values.out),
    keep: values.keep,
    streams,
    cutEveryMs,
    cutOn: values['cut-on'] ?? null,
    cutSize: values['cut-size'] === undefined ? deps.parseSize(values.size) : deps.parseSize(values['cut-size']),
  };
}

interface LinkResult {
  readonly spec: LinkSpec;
  readonly queueBytes: number;
  /** How the forwarder moved packets on this link (bench/lib/wan-link.c). */
  readonly mode: ForwarderMode;
  readonly rtt: RttProbe | null;
  readonly counters: LinkCounters | null;
  readonly summaries: readonly Summary[];
  /** Per contender: how busy the link toward the server was in each of its verified runs. */
  readonly busy: Readonly<Record<string, readonly LinkBusy[]>>;
  readonly cut: CutResult | null;
}

/** The cut case on one link: stx --streams N while the link cuts its connections every so often. */
interface CutResult {
  readonly fileBytes: number;
  readonly everyMs: number;
  readonly cuts: number;
  readonly socketsCut: number;
  readonly wallSeconds: number | null;
  readonly verified: boolean;
  readonly failure: string | null;
  /** IP bytes the link carried toward the server (packets the forwarder passed on), all of this run. */
  readonly wireBytesToServer: number | null;
  readonly wireBytesToClient: number | null;
  readonly senderCpuSeconds: number | null;
  readonly receiverCpuSeconds: number | null;
}

async function kernelSetting(name: string): Promise<string> {
  return (await readFile(`/proc/sys/net/${name}`, 'utf8').catch(() => '?')).trim().replace(/\s+/g, ' ');
}

/** Runs the long-link bench; the process's exit code. */
export async function runWan(argv: readonly string[], deps: WanDeps): Promise<number> {
  const { log } = deps;
  const options = parseOptions(argv, deps);
  const unavailable = wanUnavailable();
  if (unavailable !== null) {
    log(`wan: skipped: ${unavailable}`);
    return 0;
  }
  const noTime = await ensureTools([{ path: GNU_TIME_PATH, pkg: 'time' }], 'measuring CPU and peak RSS');
  if (noTime !== null) throw new Error(`GNU time is required: ${noTime}`);
  const started = performance.now();
  const tmpRoot = await mkdtemp(join(tmpdir(), 'stx-bench-wan-'));
  const cleanUp = (): void => {
    closeAllLinksSync();
    if (!options.keep) rmSync(tmpRoot, { recursive: true, force: true });
  };
  const onSigint = (): void => {
    cleanUp();
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  process.once('exit', closeAllLinksSync);
  try {
    await removeStaleNamespaces(log);
    const forwarder = await buildForwarder(tmpRoot);
    const { infos, ready } = await checkContenders(options.contenders, log);
    const file = await prepareTestFile(tmpRoot, options.size, log);
    const loadAverageAtStart = loadavg()[0] ?? Number.NaN;

    const results: LinkResult[] = [];
    let cutFileCache: Awaited<ReturnType<typeof prepareTestFile>> | undefined;
    const allRecords: { link: string; records: RunRecord[] }[] = [];
    for (const spec of options.links) {
      const link = await openLink(spec, forwarder);
      let counters: LinkCounters | null = null;
      let rtt: RttProbe | null = null;
      const records: RunRecord[] = [];
      const busy: Record<string, LinkBusy[]> = {};
      try {
        rtt = await link.probeRtt().catch((err: unknown) => {
          log(`wan ${spec.label}: RTT probe failed: ${err instanceof Error ? err.message : String(err)}`);
          return null;
        });
        if (rtt !== null) log(`wan ${spec.label}: TCP echo RTT median ${rtt.medianMs.toFixed(1)} ms (connect ${rtt.connectMs.toFixed(1)} ms)`);
        for (let run = 1; run <= options.runs; run++) {
          for (const c of ready) {
            const workdir = await mkdtemp(join(tmpRoot, `${c.name}-${run}-`));
            const watching = link.watch();
            const result = await c.run(file, workdir, link.placement).catch(
              (err: unknown): RunResult => ({ kind: 'failed', reason: err instanceof Error ? err.message : String(err) }),
            );
            const linkBusy = await watching.stop();
            let verified: boolean | null = null;
            if (result.kind === 'ok') {
              verified = await sha256File(result.receivedPath).then((h) => h === file.sha256, () => false);
              const speed = options.size / MiB / result.wallSeconds;
              if (verified && linkBusy !== null) (busy[c.name] ??= []).push(linkBusy);
              const middle = linkBusy === null ? '' : `, link ${fmt((100 * linkBusy.middleBytesPerSecond) / (spec.rateBitsPerSecond / 8), 0)} % busy in the middle half`;
              log(`wan ${spec.label} run ${run}/${options.runs} ${c.name}: ${speed.toFixed(1)} MiB/s${middle}, ${verified ? 'SHA-256 ok' : 'SHA-256 MISMATCH'}`);
            } else {
              log(`wan ${spec.label} run ${run}/${options.runs} ${c.name}: FAILED ${result.reason}`);
            }
            records.push({ contender: c.name, run, result, verified });
            await rm(workdir, { recursive: true, force: true });
            syncDisks();
          }
        }
      } finally {
        counters = await link.close();
      }
      allRecords.push({ link: spec.label, records });
      let cut: CutResult | null = null;
      if (options.cutEveryMs !== null && (options.cutOn === null || options.cutOn === spec.label)) {
        const cutFile = options.cutSize === options.size ? file : (cutFileCache ??= await prepareTestFile(await mkdtemp(join(tmpRoot, 'cut-')), options.cutSize, log));
        cut = await runCutCase(spec, forwarder, cutFile, options, tmpRoot, log);
      }
      results.push({ spec, queueBytes: link.queueBytes, mode: link.mode, rtt, counters, summaries: infos.map((i) => summarise(i, records, options.size)), busy, cut });
    }

    const env = {
      date: new Date().toISOString(),
      cores: availableParallelism(),
      loadAverageAtStart,
      kernel: release(),
      node: process.version,
      fileBytes: file.size,
      fileSha256: file.sha256,
      runs: options.runs,
      totalSeconds: (performance.now() - started) / 1000,
      tcpWmem: await kernelSetting('ipv4/tcp_wmem'),
      tcpRmem: await kernelSetting('ipv4/tcp_rmem'),
      congestionControl: await kernelSetting('ipv4/tcp_congestion_control'),
    };
    const markdown = renderWan(env, results, infos);
    await mkdir(options.outDir, { recursive: true });
    await writeFile(join(options.outDir, 'RESULTS-wan.md'), markdown);
    await writeFile(join(options.outDir, 'results-wan.json'), `${JSON.stringify({ environment: env, links: results, runs: allRecords }, null, 2)}\n`);
    process.stdout.write(markdown);
    log(`wrote ${join(options.outDir, 'RESULTS-wan.md')} and results-wan.json`);
    const broken = results.some((r) => r.summaries.some((s) => s.unavailable === null && s.failures.length > 0));
    return broken ? 1 : 0;
  } finally {
    process.off('SIGINT', onSigint);
    cleanUp();
  }
}

/** One stx --streams N upload over a fresh link (its counters are this run's alone), cut every `everyMs`. */
async function runCutCase(spec: LinkSpec, forwarder: string, file: Awaited<ReturnType<typeof prepareTestFile>>, options: WanOptions, tmpRoot: string, log: (line: string) => void): Promise<CutResult> {
  const everyMs = options.cutEveryMs ?? 0;
  const link = await openLink(spec, forwarder);
  let cuts = 0;
  let socketsCut = 0;
  let result: RunResult;
  let verified = false;
  const workdir = await mkdtemp(join(tmpRoot, 'cut-run-'));
  try {
    const whileSending = (): (() => void) => {
      const timer = setInterval(() => {
        cuts++;
        link.cut().then(
          (n) => (socketsCut += n),
          (err: unknown) => log(`wan ${spec.label} cut: ${err instanceof Error ? err.message : String(err)}`),
        );
      }, everyMs);
      return () => clearInterval(timer);
    };
    const sendArgs = ['--streams', String(options.streams), '--backoff', '100', '--retries', '20'];
    result = await runStx(file, workdir, link.placement, undefined, { sendArgs, whileSending }).catch(
      (err: unknown): RunResult => ({ kind: 'failed', reason: err instanceof Error ? err.message : String(err) }),
    );
    if (result.kind === 'ok') verified = await sha256File(result.receivedPath).then((h) => h === file.sha256, () => false);
  } finally {
    await rm(workdir, { recursive: true, force: true }).catch(() => undefined);
  }
  const counters = await link.close();
  const ok = result.kind === 'ok' ? result : null;
  const wire = counters?.toServer.bytes ?? null;
  log(
    `wan ${spec.label} cut every ${everyMs} ms: ${ok === null ? `FAILED ${result.kind === 'failed' ? result.reason : ''}` : `${(file.size / MiB / ok.wallSeconds).toFixed(1)} MiB/s`}, ` +
      `${cuts} cuts (${socketsCut} connections), wire/file ${wire === null ? '?' : (wire / file.size).toFixed(3)}, ${verified ? 'SHA-256 ok' : 'not verified'}`,
  );
  return {
    fileBytes: file.size,
    everyMs,
    cuts,
    socketsCut,
    wallSeconds: ok?.wallSeconds ?? null,
    verified,
    failure: result.kind === 'failed' ? result.reason : null,
    wireBytesToServer: wire,
    wireBytesToClient: counters?.toClient.bytes ?? null,
    senderCpuSeconds: ok?.sender.cpuSeconds ?? null,
    receiverCpuSeconds: ok?.receiver.cpuSeconds ?? null,
  };
}

interface WanEnvironment {
  readonly date: string;
  readonly cores: number;
  readonly loadAverageAtStart: number;
  readonly kernel: string;
  readonly node: string;
  readonly fileBytes: number;
  readonly runs: number;
  readonly totalSeconds: number;
  readonly tcpWmem: string;
  readonly tcpRmem: string;
  readonly congestionControl: string;
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

function median(values: readonly number[]): number | null {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? null) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Link rate in MiB/s of IP packets, and what TCP payload can reach of it. */
function linkMiBps(spec: LinkSpec): { ip: number; tcp: number } {
  const ip = spec.rateBitsPerSecond / 8 / MiB;
  return { ip, tcp: (ip * TCP_PAYLOAD_PER_PACKET) / LINK_MTU };
}

const MODE_TEXT: Readonly<Record<ForwarderMode, string>> = {
  gso: 'gso (TUN devices with IFF_VNET_HDR and TSO: the forwarder moves super-packets of up to 64 KiB, charging each its per-segment wire bytes)',
  packet: 'packet (one ≤ 1500-byte packet per system call: the kernel refused TUN offloads)',
};

function renderWan(env: WanEnvironment, results: readonly LinkResult[], infos: readonly ContenderInfo[]): string {
  const modes = [...new Set(results.map((r) => r.mode))];
  const lines: string[] = [
    '# stx benchmark over emulated long links',
    '',
    `- Date: ${env.date}; ${env.cores} cores; Linux ${env.kernel}; Node ${env.node}`,
    `- File: ${fmt(env.fileBytes / MiB, 0)} MiB of random data; ${env.runs} run(s) per contender and link, interleaved`,
    `- Kernel TCP in both namespaces: congestion control ${env.congestionControl}, tcp_wmem ${env.tcpWmem}, tcp_rmem ${env.tcpRmem}`,
    `- Whole bench took ${fmt(env.totalSeconds, 0)} s; 1-minute load average before the first run: ${fmt(env.loadAverageAtStart, 2)}`,
    `- Link: server and client in their own network namespaces, joined by TUN devices and bench/lib/wan-link.c`,
    `  (each direction: RATE bottleneck, drop-tail queue, then RTT/2 of delay; MTU ${LINK_MTU}). "% of link" is`,
    `  MiB/s ÷ the link rate; TCP payload can reach at most ${fmt((100 * TCP_PAYLOAD_PER_PACKET) / LINK_MTU)} % of it (headers).`,
    `- Forwarder mode: ${modes.map((m) => MODE_TEXT[m]).join('; ')}`,
    '',
    '- "Link busy": the IP bytes the link delivered to the server between the 25 % and the 75 % mark of the run\'s',
    '  bytes, ÷ the time between, ÷ the link rate (sampled every 50 ms from the server device\'s counter): the rate once',
    '  start-up is over and before the tail (whole-run MiB/s is what a user gets; this says what the link had left).',
    '',
    '| Link | Contender | MiB/s (median) | MiB/s (min–max) | % of link | Link busy (middle half) | Wall s | Sender CPU s/GiB | Receiver CPU s/GiB | Verified runs |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    const { ip } = linkMiBps(r.spec);
    for (const s of r.summaries) {
      const head = `| ${r.spec.label} | ${s.name}`;
      if (s.unavailable !== null) lines.push(`${head} | — | — | — | — | — | — | — | ${s.unavailable} |`);
      else if (s.stats === null) lines.push(`${head} | — | — | — | — | — | — | — | 0/${s.attempted} (all failed) |`);
      else {
        const t = s.stats;
        const busy = r.busy[s.name] ?? [];
        const middle = median(busy.map((b) => b.middleBytesPerSecond).filter(Number.isFinite));
        lines.push(
          `${head} | **${fmt(t.mibPerSecond.median)}** | ${fmt(t.mibPerSecond.min)}–${fmt(t.mibPerSecond.max)} | ` +
            `${fmt((100 * t.mibPerSecond.median) / ip, 0)} % | ${middle === null ? '—' : `${fmt((100 * middle) / MiB / ip, 0)} %`} | ` +
            `${fmt(t.wallSecondsMedian, 2)} | ${fmt(t.senderCpuSecondsPerGiB, 2)} | ` +
            `${fmt(t.receiverCpuSecondsPerGiB, 2)} | ${s.verifiedRuns}/${s.attempted} |`,
        );
      }
    }
  }
  lines.push('', '## Links', '', '| Link | Rate MiB/s (IP / TCP payload max) | Queue | Measured RTT (TCP echo median, min–max) | Packets to server (all runs) | Queue drops to server | Other drops | Forwarder CPU s |', '| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: |');
  for (const r of results) {
    const { ip, tcp } = linkMiBps(r.spec);
    const rtt = r.rtt === null ? 'probe failed' : `${fmt(r.rtt.medianMs)} ms (${fmt(r.rtt.minMs)}–${fmt(r.rtt.maxMs)})`;
    const c = r.counters;
    const other = c === null ? '—' : String([c.toServer, c.toClient].reduce((n, d) => n + d.ringDrops + d.writeDrops, 0) + c.toClient.queueDrops);
    lines.push(
      `| ${r.spec.label} | ${fmt(ip)} / ${fmt(tcp)} | ${fmt(queueBytes(r.spec) / MiB, 2)} MiB | ${rtt} | ` +
        `${c === null ? '—' : c.toServer.packets} | ${c === null ? '—' : c.toServer.queueDrops} | ${other} | ${c === null ? '—' : fmt(c.forwarderCpuSeconds)} |`,
    );
  }
  const cuts = results.filter((r) => r.cut !== null);
  if (cuts.length > 0) {
    lines.push(
      '',
      '## Connections cut',
      '',
      'stx-send --streams N while the link destroys every connection (`ss -K` in the client namespace: the client sees',
      'ECONNABORTED, the server a reset) at a fixed interval; each range reconnects and resumes from what the server made',
      'durable. Wire bytes: IP packets the link passed toward the server over the whole run (headers included, ~3.5 %), ÷ the file.',
      '',
      '| Link | File MiB | Cut every | Cuts (connections) | Wall s | MiB/s | Wire bytes / file | Sender CPU s | Receiver CPU s | Verified |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    );
    for (const r of cuts) {
      const c = r.cut;
      if (c === null) continue;
      const rate = c.wallSeconds === null ? '—' : fmt(c.fileBytes / MiB / c.wallSeconds);
      lines.push(
        `| ${r.spec.label} | ${fmt(c.fileBytes / MiB, 0)} | ${fmt(c.everyMs / 1000, 1)} s | ${c.cuts} (${c.socketsCut}) | ${c.wallSeconds === null ? '—' : fmt(c.wallSeconds, 1)} | ${rate} | ` +
          `${c.wireBytesToServer === null ? '—' : fmt(c.wireBytesToServer / c.fileBytes, 3)} | ${c.senderCpuSeconds === null ? '—' : fmt(c.senderCpuSeconds, 1)} | ` +
          `${c.receiverCpuSeconds === null ? '—' : fmt(c.receiverCpuSeconds, 1)} | ${c.verified ? 'yes' : `no${c.failure === null ? '' : `: ${c.failure}`}`} |`,
      );
    }
  }
  lines.push('', '## Contenders', '');
  for (const info of infos) {
    const version = info.version === '' ? '' : ` (${info.version})`;
    const auto = info.name === 'stx' ? ` stx-send runs with its default --streams auto: one connection below ${AUTO_ONE_STREAM_RTT_MS} ms of round trip, else up to ${AUTO_MAX_STREAMS} (src/send/ranged.ts autoStreams)` : '';
    lines.push(`- **${info.name}**${version}: ${info.measures}.${auto}`);
    for (const r of results) {
      const mine = r.summaries.find((s) => s.name === info.name);
      if (mine !== undefined && mine.notes.length > 0) lines.push(`  - ${r.spec.label}: ${mine.notes.join('; ')}`);
      for (const f of mine?.failures ?? []) lines.push(`  - ${r.spec.label}: failed ${f}`);
    }
  }
  lines.push(
    '',
    '- One TCP connection carries at most its window per round trip: with tcp_wmem\'s maximum as the',
    '  send buffer, roughly that many bytes per RTT, whatever the link rate. Queue drops are the losses',
    '  TCP saw; "other drops" (forwarder ring full, device not accepting, queue toward the client) should be near 0.',
    '  Packets and drops count MTU-sized segments; in gso mode a super-packet that finds the queue full is dropped',
    '  whole (all its segments, a burst loss), and its segments arrive together, when the last one would have.',
    '- The machine may be shared: the load average above says how much else ran; the emulator itself',
    '  forwards in userspace (two system calls per packet or super-packet; its CPU time is in the Links table),',
    '  which costs CPU on the same cores.',
    '',
  );
  return lines.join('\n');
}
