// RESULTS.md sections for the extras (bench/extras) and the issue's targets checked against this run.
import type { ExtrasResults } from '../extras/index.js';
import type { Ratio, Summary } from './report.js';

const MiB = 1024 * 1024;
const fmt = (n: number, digits = 1): string => n.toFixed(digits);
const sizeLabel = (bytes: number): string => (bytes >= 1024 * MiB ? `${fmt(bytes / 1024 / MiB, bytes % (1024 * MiB) === 0 ? 0 : 1)} GiB` : `${fmt(bytes / MiB, 0)} MiB`);
/** `1000 × 1 MiB`; `1000 returning × 1 MiB` for clients that resume with a ticket (§7.5). */
const caseLabel = (k: { readonly clients: number; readonly fileBytes: number; readonly returning?: boolean | undefined }): string =>
  `${k.clients}${k.returning === true ? ' returning' : ''} × ${sizeLabel(k.fileBytes)}`;

/** The targets of issue "Performance". */
const RSS_LIMIT_MIB = 96;
const HANDSHAKE_MEDIAN_LIMIT_MS = 10;
/** Issue 15: concurrent clients against the single-stream reference of the same round. */
const CONCURRENT_SHARE_OF_SINGLE = 0.8;
const CONCURRENT_CPU_OF_SINGLE = 1.3;
const CONCURRENT_RSS_LIMIT_MIB = 256;
/** "Flat": the most clients' peak RSS at most this factor of the fewest clients'. */
const CONCURRENT_RSS_FLAT_FACTOR = 1.25;
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

function concurrencyTargets(c: ExtrasResults['concurrency']): Target[] {
  if (c === null) return [{ target: 'concurrent clients (issue 15)', measured: 'not measured in this run', met: null }];
  if ('failed' in c) return [{ target: 'concurrent clients (issue 15)', measured: `failed: ${c.failed}`, met: false }];
  const out: Target[] = [];
  const range = (x: { median: number; min: number; max: number }, d = 2): string => `${fmt(x.median, d)} (${fmt(x.min, d)}–${fmt(x.max, d)})`;
  // Checked on the first kind of daemon measured (warm by default: a fleet's receiver runs long).
  const daemon = `${c.daemonState} daemon`;
  for (const k of c.cases) {
    const label = `${caseLabel(k)}, ${daemon}`;
    out.push({ target: `${label}: every file verified`, measured: `${k.verified}/${k.attempted}`, met: k.verified === k.attempted });
    const t = k.throughputVsSingle;
    out.push({
      target: `${label}: aggregate ≥ ${CONCURRENT_SHARE_OF_SINGLE} × single stream (same round)`,
      measured: t === null ? '—' : `${range(t)} ×`,
      met: t === null ? null : t.median >= CONCURRENT_SHARE_OF_SINGLE,
    });
    const cpu = k.cpuVsSingle;
    out.push({
      target: `${label}: daemon CPU/GiB ≤ ${CONCURRENT_CPU_OF_SINGLE} × single stream`,
      measured: cpu === null ? '—' : `${range(cpu)} × (${range(k.daemonCpuSecondsPerGiB)} s/GiB against ${range(c.single.daemonCpuSecondsPerGiB)})`,
      met: cpu === null ? null : cpu.median <= CONCURRENT_CPU_OF_SINGLE,
    });
  }
  // Flat is judged on first contacts; the bound on every case with the most clients (returning
  // clients handshake faster, so more of them hold data at once).
  const first = c.cases.filter((k) => k.returning !== true);
  const most = [...first].sort((a, b) => b.clients - a.clients)[0];
  const fewest = [...first].sort((a, b) => a.clients - b.clients)[0];
  const mostClients = Math.max(...c.cases.map((k) => k.clients));
  for (const k of c.cases.filter((x) => x.clients === mostClients)) {
    out.push({
      target: `daemon peak RSS ≤ ${CONCURRENT_RSS_LIMIT_MIB} MiB at ${caseLabel(k).replace(/ ×.*$/, '')} clients, ${daemon}`,
      measured: `${range(k.daemonPeakRssMiB, 1)} MiB`,
      met: k.daemonPeakRssMiB.max <= CONCURRENT_RSS_LIMIT_MIB,
    });
  }
  if (most !== undefined && fewest !== undefined) {
    if (most !== fewest) {
      const factor = most.daemonPeakRssMiB.median / fewest.daemonPeakRssMiB.median;
      out.push({
        target: `daemon peak RSS flat from ${fewest.clients} to ${most.clients} clients (≤ ${CONCURRENT_RSS_FLAT_FACTOR} ×), ${daemon}`,
        measured: `${fmt(fewest.daemonPeakRssMiB.median)} → ${fmt(most.daemonPeakRssMiB.median)} MiB = ${fmt(factor, 2)} ×`,
        met: factor <= CONCURRENT_RSS_FLAT_FACTOR,
      });
    }
  }
  return out;
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
  out.push(...concurrencyTargets(extras?.concurrency ?? null));
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
        'These are first contacts: full handshakes, no ticket asked for or offered.',
        '',
        '| Returning clients (resumed, §7.5) | Median ms | p99 ms | Min–max ms |',
        '| ---: | ---: | ---: | ---: |',
        `| ${h.resumed.count} | **${fmt(h.resumed.medianMs, 2)}** | ${fmt(h.resumed.p99Ms, 2)} | ${fmt(h.resumed.minMs, 2)}–${fmt(h.resumed.maxMs, 2)} |`,
        '',
        'Each resumes with the ticket the handshake before it left (no RSA, no KEY_EXCHANGE) and takes the next (NEW_TICKET read too).',
      );
    }
  }
  const c = extras.concurrency;
  if (c !== null) lines.push('', '## Concurrent clients (stx)', '', ...renderConcurrency(c));
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

/** The concurrency table: medians over the rounds with their min–max, warm daemons' rows, then fresh ones'. */
export function renderConcurrency(c: NonNullable<ExtrasResults['concurrency']>): string[] {
  if ('failed' in c) return [`Failed: ${c.failed}`];
  const range = (x: { median: number; min: number; max: number } | null, d: number): string =>
    x === null ? '—' : `**${fmt(x.median, d)}** (${fmt(x.min, d)}–${fmt(x.max, d)})`;
  const lines = [
    '| Clients × file | Daemon | Rounds | Aggregate MiB/s | × single (same round, same daemon kind) | Daemon CPU s/GiB | × single | Daemon peak RSS MiB | Handshakes | Verified |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const groups = [{ daemonState: c.daemonState, single: c.single, cases: c.cases }, ...c.others];
  for (const g of groups) {
    for (const k of [g.single, ...g.cases]) {
      lines.push(
        `| ${caseLabel(k)} | ${g.daemonState} | ${k.rounds} | ${range(k.aggregateMiBPerSecond, 1)} | ${range(k.throughputVsSingle, 2)} | ` +
          `${range(k.daemonCpuSecondsPerGiB, 2)} | ${range(k.cpuVsSingle, 2)} | ${range(k.daemonPeakRssMiB, 1)} | ${fmt(k.handshakes.median, 0)} | ${k.verified}/${k.attempted} |`,
      );
    }
  }
  lines.push(
    '',
    'Medians over the rounds, (min–max). Each row of a round runs against a stx-recv of its own. "warm":',
    'the daemon first took the same load once, untimed (as many clients, the same file, other',
    'names; a returning row\'s warm-up uploads are its clients\' first visits and leave',
    'their tickets), as a fleet\'s long-running receiver would have; "fresh": the measured load is the',
    'daemon\'s first, so it also pays the compiler\'s warm-up of the code each upload runs (a returning',
    'row\'s clients first connected once, handshake only, unmeasured). The × single columns divide by',
    'the single-stream reference (first row of each kind: one upload of the first case\'s total bytes,',
    'same harness, same kind of daemon) of the same round. All uploads start together from the bench',
    'process (the client\'s own upload(), no process start-up per client); every received file is',
    'checked by SHA-256, then emptied but not deleted until every sample is done (on ext4 without a',
    'journal, creating files within minutes of deleting many costs more). Daemon CPU = user + sys of',
    'all its threads from /proc between the first',
    'connect and the last confirmed upload of the measured load (start-up, warm-up and shutdown left',
    'out), per GiB received. Peak RSS = the daemon\'s VmHWM at the end of the measured load: warm, reset',
    'after the warm-up (clear_refs), so the measured load\'s peak over what the warm-up left resident;',
    'fresh, since the daemon started. The clients share the machine with the daemon, so throughput is',
    'compared within a round only. A "returning" row\'s clients resume with a ticket (spec §7.5): no',
    'RSA; its Handshakes column counts the measured ones. The targets above are checked on the',
    `${c.daemonState} rows.`,
  );
  for (const g of groups) for (const f of [g.single, ...g.cases].flatMap((k) => k.failures)) lines.push(`- failed (${g.daemonState} daemon) ${f}`);
  const cmp = c.compared;
  if (cmp !== undefined) {
    lines.push(
      '',
      `### Against ${cmp.ref} (--compare, same rounds, ${cmp.daemonState} daemons)`,
      '',
      `| Clients × file | Pairs | Daemon CPU s/GiB, this ÷ ${cmp.ref} | Aggregate, this ÷ ${cmp.ref} | Peak RSS, this ÷ ${cmp.ref} | ${cmp.ref}: CPU s/GiB | ${cmp.ref}: × single | ${cmp.ref}: peak RSS MiB |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    );
    for (const r of cmp.rows) {
      const theirs = [cmp.single, ...cmp.cases].find((k) => k.clients === r.clients && k.fileBytes === r.fileBytes && (k.returning === true) === r.returning);
      lines.push(
        `| ${caseLabel(r)} | ${r.pairs} | ${range(r.cpuPerGiB, 2)} | ${range(r.throughput, 2)} | ${range(r.peakRss, 2)} | ` +
          `${range(theirs?.daemonCpuSecondsPerGiB ?? null, 2)} | ${range(theirs?.cpuVsSingle ?? null, 2)} | ${range(theirs?.daemonPeakRssMiB ?? null, 1)} |`,
      );
    }
    lines.push('', `Per round, each case ran on both builds' daemons one after the other (alternating which first); ratios are per round, then median (min–max).`);
  }
  return lines;
}
