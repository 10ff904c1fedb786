// The measurements besides the contender table (issue "Performance"): handshake latency and rate,
// many concurrent clients, and peak memory by file size. All against stx only.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { startStxDaemon, type Build } from '../contenders/stx.js';
import type { Rusage } from '../lib/measure.js';
import { LOCAL } from '../lib/placement.js';
import { caseLabel, concurrentUploads, type ConcurrencyCase, type ConcurrencyResult, type DaemonState } from './concurrency.js';
import { handshakeLatency, handshakeRate, type HandshakeLatency, type HandshakeRate } from './handshake.js';
import { peakMemory, type MemoryResult } from './memory.js';

export const EXTRAS = ['handshake', 'concurrency', 'memory'] as const;
export type ExtraName = (typeof EXTRAS)[number];

export interface ExtrasOptions {
  readonly which: ReadonlySet<ExtraName>;
  readonly handshakes: number;
  readonly parallelClients: number;
  readonly handshakesPerParallelClient: number;
  /** Clients × file size of each concurrency case, against one daemon each. */
  readonly concurrencyCases: readonly ConcurrencyCase[];
  /** Interleaved rounds of the concurrency cases and their single-stream reference. */
  readonly concurrencyRounds: number;
  /** The kinds of daemon the concurrency cases run against (warm, fresh), the first the one the targets are checked on. */
  readonly concurrencyDaemons: readonly DaemonState[];
  /** Node options for the concurrency daemons only (profiling them). */
  readonly concurrencyDaemonNodeArgs: readonly string[] | undefined;
  /** --compare: stx-recv of the other build, run beside this one's in the concurrency extra. */
  readonly concurrencyRef?: { readonly name: string; readonly build: Build } | undefined;
  readonly memorySizes: readonly number[];
}

export interface ExtrasResults {
  /** `latency` and `rate`: first contacts (full handshakes); `resumed`: returning clients with a ticket (§7.5). */
  readonly handshake: { readonly latency: HandshakeLatency; readonly resumed: HandshakeLatency; readonly rate: HandshakeRate; readonly daemon: Rusage | null } | { readonly failed: string } | null;
  readonly concurrency: ConcurrencyResult | { readonly failed: string } | null;
  readonly memory: readonly MemoryResult[] | null;
}

/**
 * Every client of an extra comes from 127.0.0.1, so the daemon's per-source handshake limits
 * (recv/admission.ts), there against one flooding address, would measure themselves instead of
 * the daemon: they are lifted here. The total bound stays.
 */
const ONE_SOURCE_FLAGS = ['--max-handshakes-per-source', '100000', '--handshake-rate-per-source', '0'];

/** Generous bound for a daemon that serves a whole extra. */
const DAEMON_TIMEOUT_MS = 30 * 60 * 1000;

async function withDaemon<T>(dir: string, fn: (target: { port: number; fingerprint: string }, recvDir: string) => Promise<T>): Promise<(T & { daemon: Rusage | null }) | { failed: string }> {
  const recvDir = join(dir, 'received');
  await mkdir(recvDir, { recursive: true });
  const daemon = await startStxDaemon(recvDir, { ...process.env, STX_HOME: dir }, DAEMON_TIMEOUT_MS, LOCAL, ONE_SOURCE_FLAGS);
  if ('failed' in daemon) return { failed: daemon.failed };
  try {
    const result = await fn(daemon, recvDir);
    await daemon.proc.signal('SIGTERM');
    return { ...result, daemon: (await daemon.proc.done).rusage };
  } catch (err) {
    await daemon.proc.signal('SIGKILL');
    await daemon.proc.done;
    return { failed: err instanceof Error ? err.message : String(err) };
  }
}

export async function runExtras(options: ExtrasOptions, tmpRoot: string, log: (line: string) => void, syncDisks: () => void): Promise<ExtrasResults> {
  let handshake: ExtrasResults['handshake'] = null;
  let concurrency: ExtrasResults['concurrency'] = null;
  let memory: ExtrasResults['memory'] = null;

  if (options.which.has('handshake')) {
    const dir = await mkdtemp(join(tmpRoot, 'handshake-'));
    handshake = await withDaemon(dir, async (target) => ({
      latency: await handshakeLatency(target, options.handshakes),
      resumed: await handshakeLatency(target, options.handshakes, 5, join(dir, 'tickets')),
      rate: await handshakeRate(target, options.parallelClients, options.handshakesPerParallelClient),
    }));
    await rm(dir, { recursive: true, force: true });
    if ('failed' in handshake) log(`handshakes: FAILED ${handshake.failed}`);
    else {
      log(`handshakes: median ${handshake.latency.medianMs.toFixed(2)} ms, p99 ${handshake.latency.p99Ms.toFixed(2)} ms; ${handshake.rate.perSecond.toFixed(0)}/s with ${handshake.rate.clients} clients`);
      log(`handshakes of returning clients (resumed with a ticket, §7.5): median ${handshake.resumed.medianMs.toFixed(2)} ms, p99 ${handshake.resumed.p99Ms.toFixed(2)} ms`);
    }
  }

  if (options.which.has('concurrency')) {
    const opts = { cases: options.concurrencyCases, rounds: options.concurrencyRounds, daemons: options.concurrencyDaemons, daemonNodeArgs: options.concurrencyDaemonNodeArgs, ref: options.concurrencyRef };
    concurrency = await concurrentUploads(opts, tmpRoot, log, syncDisks).catch((err: unknown) => ({ failed: err instanceof Error ? err.message : String(err) }));
    if ('failed' in concurrency) log(`concurrency: FAILED ${concurrency.failed}`);
    else {
      for (const c of concurrency.cases) {
        log(
          `concurrency: ${caseLabel(c)}, ${concurrency.daemonState} daemon: ${c.aggregateMiBPerSecond.median.toFixed(1)} MiB/s (${c.throughputVsSingle?.median.toFixed(2) ?? '—'} × single), ` +
            `daemon ${c.daemonCpuSecondsPerGiB.median.toFixed(2)} CPU s/GiB (${c.cpuVsSingle?.median.toFixed(2) ?? '—'} × single), peak RSS ${c.daemonPeakRssMiB.median.toFixed(1)} MiB, ${c.verified}/${c.attempted} verified`,
        );
      }
    }
  }

  if (options.which.has('memory')) {
    memory = await peakMemory(options.memorySizes, tmpRoot, syncDisks);
    for (const m of memory) {
      log(`memory ${m.fileBytes} B: sender ${m.senderPeakRssMiB?.toFixed(1) ?? '—'} MiB, receiver ${m.receiverPeakRssMiB?.toFixed(1) ?? '—'} MiB${m.failure === null ? '' : ` (${m.failure})`}`);
    }
  }
  return { handshake, concurrency, memory };
}
