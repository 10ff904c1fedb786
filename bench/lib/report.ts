// Turn per-run records into per-contender summaries, ratios and bench/RESULTS.md.
import type { RunOk, RunResult } from '../contenders/types.js';
import { median } from './measure.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export interface RunRecord {
  readonly contender: string;
  /** 1-based. */
  readonly run: number;
  readonly result: RunResult;
  /** SHA-256 of the received file matched the sent one (null: nothing was received). */
  readonly verified: boolean | null;
}

export interface ContenderInfo {
  readonly name: string;
  readonly measures: string;
  readonly version: string;
  /** Why it did not run, or null. */
  readonly unavailable: string | null;
}

export interface Summary extends ContenderInfo {
  readonly attempted: number;
  readonly verifiedRuns: number;
  readonly failures: readonly string[];
  /** Over verified runs only; null when there were none. */
  readonly stats: {
    readonly mibPerSecond: { readonly median: number; readonly min: number; readonly max: number };
    readonly wallSecondsMedian: number;
    readonly senderCpuSecondsPerGiB: number;
    readonly receiverCpuSecondsPerGiB: number;
    /** CPU s/GiB per side and both sides together (per run, then median), with min–max over the runs. */
    readonly cpu: { readonly sender: Spread; readonly receiver: Spread; readonly both: Spread };
    /** Largest over the runs. */
    readonly senderPeakRssMiB: number;
    readonly receiverPeakRssMiB: number;
  } | null;
  readonly notes: readonly string[];
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export interface Ratio {
  readonly label: string;
  /** stx MiB/s ÷ baseline MiB/s: above 1 means stx is faster. */
  readonly throughput: number;
  /** stx CPU s/GiB (both sides) ÷ baseline's: below 1 means stx is cheaper. */
  readonly cpu: number;
}

interface Environment {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly fileBytes: number;
  readonly fileSha256: string;
  readonly runs: number;
  readonly totalSeconds: number;
  /** 1-minute load average before the first run: others' work on the machine skews the numbers. */
  readonly loadAverageAtStart: number;
}

export function summarise(info: ContenderInfo, records: readonly RunRecord[], fileBytes: number): Summary {
  const mine = records.filter((r) => r.contender === info.name);
  const failures: string[] = [];
  const ok: RunOk[] = [];
  for (const r of mine) {
    if (r.result.kind === 'failed') failures.push(`run ${r.run}: ${r.result.reason}`);
    else if (r.verified !== true) failures.push(`run ${r.run}: received file's SHA-256 does not match`);
    else ok.push(r.result);
  }
  const gib = fileBytes / GiB;
  const speeds = ok.map((r) => fileBytes / MiB / r.wallSeconds);
  const stats =
    ok.length === 0
      ? null
      : {
          mibPerSecond: { median: median(speeds), min: Math.min(...speeds), max: Math.max(...speeds) },
          wallSecondsMedian: median(ok.map((r) => r.wallSeconds)),
          senderCpuSecondsPerGiB: median(ok.map((r) => r.sender.cpuSeconds / gib)),
          receiverCpuSecondsPerGiB: median(ok.map((r) => r.receiver.cpuSeconds / gib)),
          cpu: {
            sender: spread(ok.map((r) => r.sender.cpuSeconds / gib)),
            receiver: spread(ok.map((r) => r.receiver.cpuSeconds / gib)),
            both: spread(ok.map((r) => (r.sender.cpuSeconds + r.receiver.cpuSeconds) / gib)),
          },
          senderPeakRssMiB: Math.max(...ok.map((r) => r.sender.maxRssBytes / MiB)),
          receiverPeakRssMiB: Math.max(...ok.map((r) => r.receiver.maxRssBytes / MiB)),
        };
  const notes = [...new Set(ok.flatMap((r) => r.notes))];
  return { ...info, attempted: mine.length, verifiedRuns: ok.length, failures, stats, notes };
}

/** stx against raw, the better of scp/sftp, and tus, where both sides have numbers. */
export function ratios(summaries: readonly Summary[]): Ratio[] {
  const byName = new Map(summaries.map((s) => [s.name, s.stats]));
  const stx = byName.get('stx');
  if (stx === undefined || stx === null) return [];
  const cpu = (s: NonNullable<Summary['stats']>): number => s.senderCpuSecondsPerGiB + s.receiverCpuSecondsPerGiB;
  const against = (label: string, base: Summary['stats'] | undefined): Ratio[] =>
    base === undefined || base === null
      ? []
      : [{ label, throughput: stx.mibPerSecond.median / base.mibPerSecond.median, cpu: cpu(stx) / cpu(base) }];
  const ssh = ['scp', 'sftp']
    .map((name) => ({ name, stats: byName.get(name) }))
    .filter((x): x is { name: string; stats: NonNullable<Summary['stats']> } => x.stats !== undefined && x.stats !== null)
    .sort((a, b) => b.stats.mibPerSecond.median - a.stats.mibPerSecond.median)[0];
  return [
    ...against('stx / raw', byName.get('raw')),
    ...against(`stx / max(scp, sftp) = stx / ${ssh?.name ?? 'ssh'}`, ssh?.stats),
    ...against('stx / tus', byName.get('tus')),
  ];
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);

function sizeLabel(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB) return `${fmt(bytes / MiB, bytes % MiB === 0 ? 0 : 1)} MiB`;
  return `${bytes} B`;
}

export function renderMarkdown(env: Environment, summaries: readonly Summary[], rs: readonly Ratio[]): string {
  const lines: string[] = [
    '# stx benchmark results',
    '',
    `- Date: ${env.date}`,
    `- Machine: ${env.cpuModel}, ${env.cores} cores, ${fmt(env.memoryGiB)} GiB RAM, Linux ${env.kernel}`,
    `- Node: ${env.node}`,
    `- File: ${sizeLabel(env.fileBytes)} (${env.fileBytes} bytes) of random data, SHA-256 \`${env.fileSha256}\``,
    `- Runs: ${env.runs} per contender, interleaved (run 1 of each, then run 2, …); all on 127.0.0.1`,
    `- Whole bench took ${fmt(env.totalSeconds, 0)} s; 1-minute load average before the first run: ${fmt(env.loadAverageAtStart, 2)}`,
    '',
    '| Contender | MiB/s (median) | MiB/s (min–max) | Wall s (median) | Sender CPU s/GiB | Receiver CPU s/GiB | Sender peak RSS MiB | Receiver peak RSS MiB | Verified runs |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const s of summaries) {
    if (s.unavailable !== null) {
      lines.push(`| ${s.name} | — | — | — | — | — | — | — | ${s.unavailable} |`);
    } else if (s.stats === null) {
      lines.push(`| ${s.name} | — | — | — | — | — | — | — | 0/${s.attempted} (all failed) |`);
    } else {
      const t = s.stats;
      lines.push(
        `| ${s.name} | **${fmt(t.mibPerSecond.median)}** | ${fmt(t.mibPerSecond.min)}–${fmt(t.mibPerSecond.max)} | ` +
          `${fmt(t.wallSecondsMedian, 2)} | ${fmt(t.senderCpuSecondsPerGiB, 2)} | ${fmt(t.receiverCpuSecondsPerGiB, 2)} | ` +
          `${fmt(t.senderPeakRssMiB)} | ${fmt(t.receiverPeakRssMiB)} | ${s.verifiedRuns}/${s.attempted} |`,
      );
    }
  }
  lines.push('', '## Ratios within this run (stx ÷ baseline)', '');
  if (rs.length === 0) {
    lines.push('None: stx has no numbers in this run.');
  } else {
    lines.push('| | Throughput (>1: stx faster) | CPU s/GiB, both sides (<1: stx cheaper) |', '| --- | ---: | ---: |');
    for (const r of rs) lines.push(`| ${r.label} | ${fmt(r.throughput, 2)} | ${fmt(r.cpu, 2)} |`);
  }
  lines.push('', '## Contenders', '');
  for (const s of summaries) {
    const version = s.version === '' ? '' : ` (${s.version})`;
    const notes = s.notes.length > 0 ? ` ${s.notes.join('; ')}.` : '';
    lines.push(`- **${s.name}**${version}: ${s.measures}.${notes}`);
    for (const f of s.failures) lines.push(`  - failed ${f}`);
  }
  lines.push(
    '',
    '## What the numbers mean',
    '',
    '- **MiB/s** = file size ÷ wall time of one transfer; the median over the verified runs is in bold.',
    '  Wall time is taken by the runner from spawning the sending process until it exits (for raw:',
    '  until both processes exited, the receiver after its fsync). Servers are already listening;',
    '  process start-up of the sender and the connection handshake are included.',
    '- **CPU s/GiB** = (user + sys) CPU seconds of that side ÷ GiB sent, median over runs. Every',
    '  process runs under GNU time (`/usr/bin/time`), which gets the exact rusage from wait4(): the',
    '  process plus every descendant it reaped. Server processes start before and stop after the',
    '  transfer, so their start-up, idle time and shutdown are included (for stx-recv, measured on',
    '  its own under Contenders).',
    '- **Peak RSS** = GNU time\'s maximum resident set size: the largest single process on that side',
    '  (not a sum), the largest over the runs.',
    '- **scp/sftp receiver** = the private sshd listener and everything it forked for the connection',
    '  (per-connection sshd, its privilege-separated child, `scp -t` or `sftp-server`); sender = the',
    '  scp/sftp client and the ssh it runs. Cipher aes256-gcm@openssh.com, no compression.',
    '- **Durability differs**: raw fsyncs the received file before it reports done; sshd (scp, sftp)',
    '  and @tus/file-store do not, so their data may still be in the page cache. The runner runs',
    '  `sync` between runs (untimed) so one run\'s write-back does not slow the next.',
    '- Every received file is hashed (SHA-256) and compared with the sent one; unverified runs are',
    '  counted as failures and left out of the numbers.',
    '',
  );
  return lines.join('\n');
}
