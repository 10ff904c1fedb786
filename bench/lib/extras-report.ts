// RESULTS.md sections for the extras (bench/extras) and the issue's targets checked against this run.
import type { ExtrasResults } from '../extras/index.js';
import type { Ratio, Summary } from './report.js';

const MiB = 1024 * 1024;
const fmt = (n: number, digits = 1): string => n.toFixed(digits);
const sizeLabel = (bytes: number): string => (bytes >= 1024 * MiB ? `${fmt(bytes / 1024 / MiB, bytes % (1024 * MiB) === 0 ? 0 : 1)} GiB` : `${fmt(bytes / MiB, 0)} MiB`);

/** The targets of issue "Performance". */
const RSS_LIMIT_MIB = 96;
const HANDSHAKE_MEDIAN_LIMIT_MS = 10;
const CONCURRENT_SHARE_OF_SINGLE = 0.7;
const THROUGHPUT_TARGETS: ReadonlyArray<{ readonly prefix: string; readonly min: number; readonly label: string }> = [
  { prefix: 'stx / raw', min: 0.8, label: 'stx ≥ 0.80 × raw' },
  { prefix: 'stx / max(scp, sftp)', min: 1.1, label: 'stx ≥ 1.1 × max(scp, sftp)' },
  { prefix: 'stx / tus', min: 2, label: 'stx ≥ 2 × tus' },
];

interface Target {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

export function targets(summaries: readonly Summary[], rs: readonly Ratio[], extras: ExtrasResults | null): Target[] {
  const out: Target[] = [];
  for (const t of THROUGHPUT_TARGETS) {
    const r = rs.find((x) => x.label.startsWith(t.prefix));
    out.push(r === undefined ? { target: t.label, measured: 'not measured in this run', met: null } : { target: t.label, measured: `${fmt(r.throughput, 2)} ×`, met: r.throughput >= t.min });
  }
  const memory = extras?.memory ?? null;
  if (memory === null) {
    out.push({ target: `peak RSS ≤ ${RSS_LIMIT_MIB} MiB per side`, measured: 'not measured in this run', met: null });
  } else {
    for (const m of memory) {
      const s = m.senderPeakRssMiB;
      const r = m.receiverPeakRssMiB;
      out.push({
        target: `peak RSS ≤ ${RSS_LIMIT_MIB} MiB per side, ${sizeLabel(m.fileBytes)} file`,
        measured: s === null || r === null ? `failed: ${m.failure ?? ''}` : `client ${fmt(s)} MiB, server ${fmt(r)} MiB`,
        met: s === null || r === null || m.failure !== null ? false : s <= RSS_LIMIT_MIB && r <= RSS_LIMIT_MIB,
      });
    }
  }
  const single = summaries.find((s) => s.name === 'stx')?.stats?.mibPerSecond.median;
  const c = extras?.concurrency ?? null;
  if (c === null || 'failed' in c || single === undefined) {
    out.push({ target: `concurrent clients ≥ ${CONCURRENT_SHARE_OF_SINGLE} × single-stream stx`, measured: c !== null && 'failed' in c ? `failed: ${c.failed}` : 'not measured in this run', met: c !== null && 'failed' in c ? false : null });
  } else {
    const share = c.aggregateMiBPerSecond / single;
    out.push({
      target: `${c.clients} clients × ${sizeLabel(c.fileBytes)} aggregate ≥ ${CONCURRENT_SHARE_OF_SINGLE} × single-stream stx`,
      measured: `${fmt(c.aggregateMiBPerSecond)} MiB/s = ${fmt(share, 2)} × ${fmt(single)} MiB/s; ${c.verified}/${c.clients} verified`,
      met: share >= CONCURRENT_SHARE_OF_SINGLE && c.verified === c.clients,
    });
  }
  const h = extras?.handshake ?? null;
  if (h === null) out.push({ target: `handshake median ≤ ${HANDSHAKE_MEDIAN_LIMIT_MS} ms`, measured: 'not measured in this run', met: null });
  else if ('failed' in h) out.push({ target: `handshake median ≤ ${HANDSHAKE_MEDIAN_LIMIT_MS} ms`, measured: `failed: ${h.failed}`, met: false });
  else out.push({ target: `handshake median ≤ ${HANDSHAKE_MEDIAN_LIMIT_MS} ms`, measured: `${fmt(h.latency.medianMs, 2)} ms`, met: h.latency.medianMs <= HANDSHAKE_MEDIAN_LIMIT_MS });
  return out;
}

export function renderExtras(extras: ExtrasResults | null, ts: readonly Target[]): string[] {
  const lines: string[] = ['', '## Targets (issue "Performance"), checked against this run', '', '| Target | Measured | Met |', '| --- | --- | :---: |'];
  for (const t of ts) lines.push(`| ${t.target} | ${t.measured} | ${t.met === null ? '—' : t.met ? 'yes' : '**no**'} |`);
  if (extras === null) return lines;
  const h = extras.handshake;
  if (h !== null) {
    lines.push('', '## Handshakes (stx)', '');
    if ('failed' in h) lines.push(`Failed: ${h.failed}`);
    else {
      lines.push(
        '| Sequential handshakes | Median ms | p99 ms | Min–max ms | Parallel clients | Handshakes | Handshakes/s | Daemon peak RSS MiB |',
        '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
        `| ${h.latency.count} | **${fmt(h.latency.medianMs, 2)}** | ${fmt(h.latency.p99Ms, 2)} | ${fmt(h.latency.minMs, 2)}–${fmt(h.latency.maxMs, 2)} | ` +
          `${h.rate.clients} | ${h.rate.count} | **${fmt(h.rate.perSecond, 0)}** | ${h.daemon === null ? '—' : fmt(h.daemon.maxRssBytes / MiB)} |`,
        '',
        'Time from TCP connect to SERVER_FINISHED verified (§6), with the client\'s own handshake code in the',
        'bench process (no process start-up), against a running stx-recv; 5 unmeasured handshakes first.',
      );
    }
  }
  const c = extras.concurrency;
  if (c !== null) {
    lines.push('', '## Concurrent clients (stx)', '');
    if ('failed' in c) lines.push(`Failed: ${c.failed}`);
    else {
      const d = c.daemon;
      const gib = (c.clients * c.fileBytes) / 1024 / MiB;
      lines.push(
        '| Clients × file | Aggregate MiB/s | Wall s | Verified | Daemon CPU s/GiB | Daemon peak RSS MiB |',
        '| --- | ---: | ---: | ---: | ---: | ---: |',
        `| ${c.clients} × ${sizeLabel(c.fileBytes)} | **${fmt(c.aggregateMiBPerSecond)}** | ${fmt(c.seconds, 2)} | ${c.verified}/${c.clients} | ` +
          `${d === null ? '—' : fmt(d.cpuSeconds / gib, 2)} | ${d === null ? '—' : fmt(d.maxRssBytes / MiB)} |`,
        '',
        'All uploads start together from one bench process (the client\'s own upload(), no process start-up',
        'per client) against one stx-recv; every received file is checked by SHA-256.',
      );
      for (const f of c.failures.slice(0, 10)) lines.push(`- failed ${f}`);
    }
  }
  const m = extras.memory;
  if (m !== null) {
    lines.push('', '## Peak memory by file size (stx)', '', '| File | Client peak RSS MiB | Server peak RSS MiB | MiB/s |', '| --- | ---: | ---: | ---: |');
    for (const r of m) {
      const v = (x: number | null): string => (x === null ? '—' : fmt(x));
      lines.push(`| ${sizeLabel(r.fileBytes)} | ${v(r.senderPeakRssMiB)} | ${v(r.receiverPeakRssMiB)} | ${v(r.mibPerSecond)} |${r.failure === null ? '' : ` failed: ${r.failure}`}`);
    }
    lines.push('', 'One stx transfer per size, measured like the main table (GNU time maxrss of stx-send and of stx-recv).');
  }
  return lines;
}
