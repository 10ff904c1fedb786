// Handshake cost against a running stx-recv: latency of sequential handshakes, and handshakes per
// second with several clients at once. The clients run in this process and use the client's own
// handshake (src/send/handshake.ts), so the time is TCP connect → SERVER_FINISHED verified (§6),
// without process start-up.
import { performance } from 'node:perf_hooks';

import { Connection } from '../../src/send/connection.js';
import { handshake } from '../../src/send/handshake.js';
import { median } from '../lib/measure.js';

/** Per handshake: more than this is a failure, not a slow handshake. */
const HANDSHAKE_LIMIT_MS = 10_000;

interface HandshakeTarget {
  readonly port: number;
  readonly fingerprint: string;
}

export interface HandshakeLatency {
  readonly count: number;
  readonly medianMs: number;
  readonly p99Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface HandshakeRate {
  readonly clients: number;
  readonly count: number;
  readonly seconds: number;
  readonly perSecond: number;
}

/**
 * One handshake; resolves to its duration in ms. `ticketDir` null: a first contact, no tickets
 * asked for or offered (the full handshake, §6); a directory: a returning client that resumes with
 * the ticket its last handshake left there (§7.5) and asks for the next.
 */
async function once(target: HandshakeTarget, ticketDir: string | null): Promise<number> {
  const t0 = performance.now();
  const conn = await Connection.connect('127.0.0.1', target.port, HANDSHAKE_LIMIT_MS);
  try {
    // knownHostsFile is never read: the fingerprint is pinned.
    await handshake(conn, { host: '127.0.0.1', port: target.port, fingerprint: target.fingerprint, knownHostsFile: '/dev/null', ticketDir });
    return performance.now() - t0;
  } finally {
    conn.close();
  }
}

/** The value below which `q` of `sorted` lies (nearest rank). */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

/**
 * `count` handshakes one after the other (after `warmup` unmeasured ones); first contacts, or with
 * `ticketDir` returning clients that resume (§7.5; the warm-up leaves the first ticket).
 */
export async function handshakeLatency(target: HandshakeTarget, count: number, warmup = 5, ticketDir: string | null = null): Promise<HandshakeLatency> {
  for (let i = 0; i < warmup; i++) await once(target, ticketDir);
  const times: number[] = [];
  for (let i = 0; i < count; i++) times.push(await once(target, ticketDir));
  const sorted = [...times].sort((a, b) => a - b);
  return {
    count,
    medianMs: median(sorted),
    p99Ms: quantile(sorted, 0.99),
    minMs: sorted[0] ?? Number.NaN,
    maxMs: sorted[sorted.length - 1] ?? Number.NaN,
  };
}

/** `clients` loops of `perClient` sequential handshakes each, all at once. */
export async function handshakeRate(target: HandshakeTarget, clients: number, perClient: number): Promise<HandshakeRate> {
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < perClient; i++) await once(target, null);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const count = clients * perClient;
  return { clients, count, seconds, perSecond: count / seconds };
}
