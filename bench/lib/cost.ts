// Cost per GiB (issue 15): CPU seconds per GiB of every contender per side and both sides together,
// against the floor measured in the same run: raw's CPU per side plus what OpenSSL needs for
// AES-256-GCM and SHA-256 of every byte (bench/lib/floor.ts), each run paired with its own floor.
import type { CryptoFloor } from './floor.js';
import { spread, type RunRecord, type Spread, type Summary } from './report.js';

const GiB = 1024 ** 3;
const fmt = (n: number, digits = 2): string => n.toFixed(digits);

/** The crypto floor measured in run `run` (once per round, beside the contenders). */
export interface FloorRecord {
  readonly run: number;
  readonly floor: CryptoFloor | { readonly unavailable: string };
}

export interface CostFloor {
  readonly sender: Spread;
  readonly receiver: Spread;
  readonly both: Spread;
  readonly aesGcmEncrypt: Spread;
  readonly aesGcmDecrypt: Spread;
  readonly sha256: Spread;
  readonly runs: number;
}

/**
 * Per run: raw sender + AES-256-GCM encrypt + SHA-256, raw receiver + AES-256-GCM decrypt +
 * SHA-256 (stx hashes on both sides); median and min–max over the runs where raw and openssl both
 * have numbers. Null when there are none.
 */
export function costFloor(records: readonly RunRecord[], floors: readonly FloorRecord[], fileBytes: number): CostFloor | null {
  const gib = fileBytes / GiB;
  const rows: { s: number; r: number; enc: number; dec: number; sha: number }[] = [];
  for (const f of floors) {
    if ('unavailable' in f.floor) continue;
    const raw = records.find((x) => x.contender === 'raw' && x.run === f.run);
    if (raw === undefined || raw.result.kind !== 'ok' || raw.verified !== true) continue;
    const { aesGcmEncryptSecondsPerGiB: enc, aesGcmDecryptSecondsPerGiB: dec, sha256SecondsPerGiB: sha } = f.floor;
    rows.push({ s: raw.result.sender.cpuSeconds / gib + enc + sha, r: raw.result.receiver.cpuSeconds / gib + dec + sha, enc, dec, sha });
  }
  if (rows.length === 0) return null;
  return {
    sender: spread(rows.map((x) => x.s)),
    receiver: spread(rows.map((x) => x.r)),
    both: spread(rows.map((x) => x.s + x.r)),
    aesGcmEncrypt: spread(rows.map((x) => x.enc)),
    aesGcmDecrypt: spread(rows.map((x) => x.dec)),
    sha256: spread(rows.map((x) => x.sha)),
    runs: rows.length,
  };
}

const range = (x: Spread): string => `**${fmt(x.median)}** (${fmt(x.min)}–${fmt(x.max)})`;

/** The target of issue 15: stx, both sides, at most the cheaper of scp and sftp (medians, same run). */
export function costTarget(summaries: readonly Summary[]): { target: string; measured: string; met: boolean | null } {
  const both = (name: string): number | undefined => summaries.find((s) => s.name === name)?.stats?.cpu.both.median;
  const stx = both('stx');
  const ssh = ['scp', 'sftp'].map((n) => ({ n, v: both(n) })).filter((x): x is { n: string; v: number } => x.v !== undefined).sort((a, b) => a.v - b.v)[0];
  const target = 'stx CPU s/GiB, both sides ≤ the cheaper of scp and sftp (medians, same run)';
  if (stx === undefined || ssh === undefined) return { target, measured: 'not measured in this run', met: null };
  return { target, measured: `${fmt(stx)} against ${ssh.n} ${fmt(ssh.v)} = ${fmt(stx / ssh.v)} ×`, met: stx <= ssh.v };
}

export function renderCost(summaries: readonly Summary[], floor: CostFloor | null, floorNote: string | null): string[] {
  const lines = [
    '',
    '## Cost per GiB (CPU seconds per GiB sent)',
    '',
    '| | Sender | Receiver | Both sides | Both ÷ floor |',
    '| --- | ---: | ---: | ---: | ---: |',
  ];
  if (floor !== null) {
    lines.push(`| floor: raw + AES-256-GCM + SHA-256 | ${range(floor.sender)} | ${range(floor.receiver)} | ${range(floor.both)} | 1.00 |`);
  }
  for (const s of summaries) {
    if (s.stats === null) continue;
    const c = s.stats.cpu;
    const overFloor = floor === null ? '—' : fmt(c.both.median / floor.both.median);
    lines.push(`| ${s.name} | ${range(c.sender)} | ${range(c.receiver)} | ${range(c.both)} | ${overFloor} |`);
  }
  lines.push(
    '',
    'Medians over the runs, (min–max); each run of each contender is one transfer of the file, under GNU',
    'time on both sides (user + sys, the process and what it reaped; servers include their start-up',
    'and shutdown). Both sides = the sum per run, then the median.',
  );
  if (floor === null) {
    lines.push(`No floor in this run${floorNote === null ? '' : `: ${floorNote}`}.`);
  } else {
    lines.push(
      `The floor, per run paired with that run's raw transfer: raw's CPU per side plus \`openssl speed\` (1 MiB`,
      `buffers, divided by OpenSSL's own CPU time) for AES-256-GCM (encrypt on the sender, decrypt on the`,
      `receiver) and SHA-256 on each side. This run: AES-256-GCM encrypt ${range(floor.aesGcmEncrypt)}, decrypt`,
      `${range(floor.aesGcmDecrypt)}, SHA-256 ${range(floor.sha256)} s/GiB over ${floor.runs} runs. scp and sftp`,
      'encrypt the same way but verify nothing end to end; stx and the floor hash every byte on both sides.',
    );
  }
  return lines;
}
