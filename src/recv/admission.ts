// Which new connections may start a handshake (spec/PROTOCOL.md §9.6, issue 14 item 7). Each
// handshake costs the daemon an RSA decryption (1–3 ms of its one event loop for a 3072-bit key),
// so one source reconnecting as fast as it can would take the loop from established transfers.
// Three bounds, checked when a connection is accepted, before anything is computed for it:
// handshakes in progress in all (`--max-handshakes`), handshakes in progress from one source
// (`--max-handshakes-per-source`), and handshakes a source may start per second, a token bucket
// (`--handshake-rate-per-source`). A source is an IPv4 address, or an IPv6 /64 (what one host or
// one site usually gets). A refused connection gets only its preamble and a plaintext ERROR
// TOO_MANY_CONNECTIONS (transient: clients retry with backoff): no key is generated and nothing is
// decrypted for it. Refusals are logged once per second and source (event handshake-limits), not
// once per connection.
import net from 'node:net';
import type { Logger } from 'pino';
import { DEFAULT_HANDSHAKE_RATE_PER_SOURCE, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_SOURCE } from './config.js';

export interface AdmissionLimits {
  /** Handshakes in progress, from every source together. */
  readonly maxHandshakes: number;
  /** Handshakes in progress from one source. */
  readonly maxHandshakesPerSource: number;
  /** Handshakes one source may start per second on average; 0: no rate limit. */
  readonly handshakeRatePerSource: number;
}

/** `limits`, with config.ts's defaults for what it does not give. */
export function withDefaultLimits(limits: Partial<AdmissionLimits> = {}): AdmissionLimits {
  return {
    maxHandshakes: limits.maxHandshakes ?? DEFAULT_MAX_HANDSHAKES,
    maxHandshakesPerSource: limits.maxHandshakesPerSource ?? DEFAULT_MAX_HANDSHAKES_PER_SOURCE,
    handshakeRatePerSource: limits.handshakeRatePerSource ?? DEFAULT_HANDSHAKE_RATE_PER_SOURCE,
  };
}

/** A source that was quiet may start this many seconds' worth of handshakes at once (the bucket's size). */
export const HANDSHAKE_BURST_SECONDS = 2;

/** How often refusals (and what the refused sources did meanwhile) are logged. */
export const ADMISSION_LOG_INTERVAL_MS = 1000;

/** Sources tracked at most; beyond that (a sweep of IPv6 /64s faster than buckets refill) newcomers are refused as if the server were full. */
export const MAX_TRACKED_SOURCES = 100_000;

/** Why a connection was refused. */
export type RefusalReason = 'total' | 'source' | 'rate';

/** One admitted handshake; the connection reports what it does with it. */
export interface HandshakeTicket {
  /** The source it counts against (IPv4 address or IPv6 /64). */
  readonly source: string;
  /** The handshake is about to decrypt KEY_EXCHANGE (the RSA work this module bounds). */
  decrypting(): void;
  /** The handshake ended (SERVER_FINISHED sent, or the connection closed). Idempotent. */
  end(): void;
}

export type Admission = { readonly admitted: true; readonly ticket: HandshakeTicket } | { readonly admitted: false; readonly reason: RefusalReason; readonly message: string };

/** What one source did in the current log interval. */
interface Window {
  started: number;
  decrypted: number;
  refused: Record<RefusalReason, number>;
}

interface Source {
  inProgress: number;
  /** Token bucket: handshakes the source may still start now, and when it was last filled up. */
  tokens: number;
  filledAt: number;
  /** This log interval, and everything since the source was first tracked. */
  window: Window;
  readonly total: Window;
  /** When the source was first tracked (the clock's milliseconds): the bucket allows burst + rate × time since. */
  readonly since: number;
  /** The last interval had refusals: the next one is logged too, so the episode's end is seen. */
  refusing: boolean;
}

const emptyWindow = (): Window => ({ started: 0, decrypted: 0, refused: { total: 0, source: 0, rate: 0 } });
const refusals = (w: Window): number => w.refused.total + w.refused.source + w.refused.rate;

/**
 * The source a remote address counts as: an IPv4 address as it is (also when it arrives
 * IPv4-mapped, ::ffff:a.b.c.d), an IPv6 address as its /64 prefix ("2001:db8:0:1::/64").
 */
export function sourceOf(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (net.isIPv4(address)) return address;
  const bare = address.replace(/%.*$/, '');
  if (!net.isIPv6(bare)) return address;
  const groups = expandIPv6(bare);
  return `${groups.slice(0, 4).map((g) => g.toString(16)).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" and a trailing dotted IPv4 part). */
function expandIPv6(address: string): number[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4 !== null) {
    const [a, b, c, d] = v4.slice(1).map(Number);
    text = `${text.slice(0, v4.index)}${(((a ?? 0) << 8) | (b ?? 0)).toString(16)}:${(((c ?? 0) << 8) | (d ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const front = parse(head);
  const back = tail === undefined ? [] : parse(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

export class HandshakeAdmission {
  private readonly sources = new Map<string, Source>();
  private inProgress = 0;
  /** Refused because MAX_TRACKED_SOURCES were tracked, this interval. */
  private untracked = 0;
  private readonly burst: number;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly log: Logger,
    /** Milliseconds, monotonic (tests give their own clock). */
    private readonly now: () => number = () => performance.now(),
  ) {
    this.burst = Math.max(1, limits.handshakeRatePerSource * HANDSHAKE_BURST_SECONDS);
    this.timer = setInterval(() => this.flush(), ADMISSION_LOG_INTERVAL_MS).unref();
  }

  /** Handshakes in progress now, from every source. */
  get handshakesInProgress(): number {
    return this.inProgress;
  }

  /** Sources tracked now (in progress, or with a bucket not yet full again). */
  get trackedSources(): number {
    return this.sources.size;
  }

  /** Admits a newly accepted connection from `remoteAddress` to its handshake, or says why not. */
  admit(remoteAddress: string | undefined): Admission {
    const key = sourceOf(remoteAddress);
    const source = this.source(key);
    if (source === null) {
      this.untracked += 1;
      return this.refuse(null, 'total');
    }
    this.refill(source);
    if (this.inProgress >= this.limits.maxHandshakes) return this.refuse(source, 'total');
    if (source.inProgress >= this.limits.maxHandshakesPerSource) return this.refuse(source, 'source');
    const limited = this.limits.handshakeRatePerSource > 0;
    if (limited && source.tokens < 1) return this.refuse(source, 'rate');
    if (limited) source.tokens -= 1;
    source.inProgress += 1;
    source.window.started += 1;
    source.total.started += 1;
    this.inProgress += 1;
    let ended = false;
    return {
      admitted: true,
      ticket: {
        source: key,
        decrypting: () => {
          source.window.decrypted += 1;
          source.total.decrypted += 1;
        },
        end: () => {
          if (ended) return;
          ended = true;
          source.inProgress -= 1;
          this.inProgress -= 1;
        },
      },
    };
  }

  /**
   * Logs, per source, an interval with refusals and the interval after it (so that how a flood
   * ended is seen too), with what the source did in it and since it was first tracked; forgets
   * sources that are idle with a full bucket.
   */
  flush(): void {
    if (this.untracked > 0) {
      this.log.warn({ event: 'handshake-limits', source: 'untracked', refused: this.untracked }, `refused ${this.untracked} connections: ${MAX_TRACKED_SOURCES} sources tracked`);
      this.untracked = 0;
    }
    for (const [key, s] of this.sources) {
      const w = s.window;
      const refused = refusals(w);
      if (refused > 0 || s.refusing) {
        const fields = { event: 'handshake-limits', source: key, refused, because: w.refused, started: w.started, decrypted: w.decrypted, inProgress: s.inProgress, total: { refused: refusals(s.total), started: s.total.started, decrypted: s.total.decrypted, ms: Math.round(this.now() - s.since) } };
        if (refused > 0) this.log.warn(fields, `refused ${refused} connections from ${key} over the handshake limits (TOO_MANY_CONNECTIONS)`);
        else this.log.info(fields, `no more refusals for ${key}`);
      }
      s.refusing = refused > 0;
      s.window = emptyWindow();
      this.refill(s);
      if (s.inProgress === 0 && s.tokens >= this.burst && !s.refusing) this.sources.delete(key);
    }
  }

  /** Stops the log timer (the daemon's shutdown). */
  close(): void {
    clearInterval(this.timer);
    this.flush();
  }

  private source(key: string): Source | null {
    let s = this.sources.get(key);
    if (s !== undefined) return s;
    if (this.sources.size >= MAX_TRACKED_SOURCES) {
      this.flush();
      if (this.sources.size >= MAX_TRACKED_SOURCES) return null;
    }
    const now = this.now();
    s = { inProgress: 0, tokens: this.burst, filledAt: now, window: emptyWindow(), total: emptyWindow(), since: now, refusing: false };
    this.sources.set(key, s);
    return s;
  }

  private refill(s: Source): void {
    const now = this.now();
    s.tokens = Math.min(this.burst, s.tokens + ((now - s.filledAt) / 1000) * this.limits.handshakeRatePerSource);
    s.filledAt = now;
  }

  private refuse(source: Source | null, reason: RefusalReason): Admission {
    if (source !== null) {
      source.window.refused[reason] += 1;
      source.total.refused[reason] += 1;
    }
    const message =
      reason === 'total'
        ? `server is at its limit of ${this.limits.maxHandshakes} handshakes in progress; retry later`
        : reason === 'source'
          ? `too many handshakes in progress from your address (limit ${this.limits.maxHandshakesPerSource}); retry later`
          : `too many handshakes from your address (limit ${this.limits.handshakeRatePerSource} per second); retry later`;
    return { admitted: false, reason, message };
  }
}
