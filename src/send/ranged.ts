// stx-send --streams N (spec/PROTOCOL.md §9.13): one file over N connections at once, each
// carrying one range of it (commands/range.ts) and resuming its own range after a cut, then one
// OPEN … END of the whole file on one of them, which the server answers only once the SHA-256 of
// all of it matches. One TCP connection is window-bound on a long link; N of them are not.
import { createHash } from 'node:crypto';
import { BlockList, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { hostPortKey, isKnownHost } from '../keystore/index.js';
import { ResourceError, StxError } from '../proto/errors.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_RANGES_PER_UPLOAD, MAX_STREAMS_PER_UPLOAD, MIN_RANGE_BYTES } from '../proto/limits.js';
import { Sender } from '../transfer/sender.js';
import type { DataSource } from '../transfer/source.js';
import type { Connection } from './connection.js';
import { startRange } from './commands/range.js';
import { upload as uploadOn, type Outgoing } from './commands/upload.js';
import { plainFiles } from './file-opener.js';
import { dial } from './handshake.js';
import { Retry } from './retry.js';
import type { UploadOptions, UploadResult } from './upload.js';

/** Ranges start at multiples of this, so every DATA chunk read from the file stays page-aligned. */
const RANGE_ALIGN_BYTES = MIN_RANGE_BYTES;

/**
 * A file split finer than one range per connection: the connections take the ranges in turn, the
 * first free one the next, so a connection that TCP left slow (BBR out of start-up early, a late
 * window) carries less instead of holding the whole upload back. A further range's RANGE and
 * its DATA go right behind the last one's RANGE_END (§9.13 step 2, revisions 1.10 and 1.12), but
 * the server reads nothing while it settles one range and claims the next (each a record write),
 * so ranges stay large: this split only for at least GUIDED_MIN_RANGES_PER_STREAM × TAIL_RANGE_BYTES
 * per connection, and no range under TAIL_RANGE_BYTES.
 */
const TAIL_RANGE_BYTES = 8 * MIN_RANGE_BYTES;
const GUIDED_MIN_RANGES_PER_STREAM = 4;
/** The first turn of ranges covers about this share of the file; then each turn half of what is left. */
const FIRST_TURN_SHARE = 0.6;

export interface Range {
  readonly start: number;
  readonly end: number;
}

const alignUp = (n: number): number => Math.ceil(n / RANGE_ALIGN_BYTES) * RANGE_ALIGN_BYTES;

/**
 * How a file of `size` bytes is split for `streams` connections: the same for the same size and
 * count, so that a resumed run claims the ranges the server holds (§9.13). Fewer ranges than
 * streams where the file is small (each at least MIN_RANGE_BYTES); [] means send it in order.
 * A large file gets more ranges than streams, largest first and shrinking turn by turn (guided
 * self-scheduling), at most MAX_RANGES_PER_UPLOAD; the connections take them in this order.
 */
export function rangesOf(size: number, streams: number): Range[] {
  const n = Math.min(streams, MAX_STREAMS_PER_UPLOAD, Math.floor(size / MIN_RANGE_BYTES));
  if (n < 2) return [];
  const ranges: Range[] = [];
  if (size < n * GUIDED_MIN_RANGES_PER_STREAM * TAIL_RANGE_BYTES) {
    const step = alignUp(size / n);
    for (let start = 0; start < size; start += step) ranges.push({ start, end: Math.min(size, start + step) });
    return ranges;
  }
  // Turns of n ranges, each turn keeping all n connections busy: a turn of fewer would leave the
  // others idle at the end, each further range costs its connection a round trip without data.
  // The last turn (the range limit's, or once two more turns of TAIL_RANGE_BYTES no longer fit)
  // shares out all that is left in n equal ranges.
  const turns = Math.floor(MAX_RANGES_PER_UPLOAD / n);
  for (let turn = 0, start = 0; start < size; turn++) {
    const left = size - start;
    const last = turn === turns - 1 || left < 2 * n * TAIL_RANGE_BYTES;
    const step = last
      ? Math.max(RANGE_ALIGN_BYTES, Math.floor(left / n / RANGE_ALIGN_BYTES) * RANGE_ALIGN_BYTES)
      : Math.max(TAIL_RANGE_BYTES, alignUp((left * (turn === 0 ? FIRST_TURN_SHARE : 0.5)) / n));
    for (let k = 0; k < n && start < size; k++) {
      // The last range takes the remainder; so does one whose remainder could not stand alone.
      const end = (last && k === n - 1) || size - (start + step) < RANGE_ALIGN_BYTES ? size : start + step;
      ranges.push({ start, end });
      start = end;
    }
  }
  return ranges;
}

/**
 * --streams auto (the default): the round trip of the first connection's TCP connect decides.
 * One connection moves at most its send window per round trip (Linux's default tcp_wmem maximum
 * is 4 MiB: ~100 MiB/s at 40 ms, ~27 MiB/s at 150 ms), so below AUTO_ONE_STREAM_RTT_MS one is
 * enough and the file goes in order; above it round trip ÷ AUTO_RTT_PER_STREAM_MS connections,
 * 2..AUTO_MAX_STREAMS (at 50 ms through the bench's emulated link, 256 MiB, load 6-8, three
 * interleaved rounds: 3 connections 41.7-49.8 MiB/s, one 32.5-34.6, 8 33.7-45.1; the threshold
 * was 60 ms while the server still read a ranged file back whole at OPEN and a short last turn
 * of ranges left connections idle). Files under AUTO_MIN_BYTES always go in order.
 */
export const AUTO_ONE_STREAM_RTT_MS = 40;
const AUTO_RTT_PER_STREAM_MS = 20;
export const AUTO_MAX_STREAMS = 8;
export const AUTO_MIN_BYTES = 64 * 1024 * 1024;
/** --streams auto splits the file as for this many streams whatever the round trip, so that a resumed run claims the same ranges (§9.13). */
export const AUTO_SPLIT_STREAMS = AUTO_MAX_STREAMS;

/**
 * Loopback addresses (127.0.0.0/8, ::1, and 127/8 mapped into IPv6): a connect there crosses no
 * link, so however long it took (a loaded machine) it says nothing of a round trip, and --streams
 * auto uses one connection. A connect of 40 ms to 127.0.0.1 on a busy 2-core machine had split a
 * 160 MiB upload over several connections.
 */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** Whether `address` (an IP literal; anything else is not) is a loopback address. */
export function isLoopback(address: string | undefined): boolean {
  const family = address === undefined ? 0 : isIP(address);
  return family !== 0 && LOOPBACK.check(address as string, family === 4 ? 'ipv4' : 'ipv6');
}

/** How many connections --streams auto uses at a round trip of `rttMs`. */
export function autoStreams(rttMs: number): number {
  if (!(rttMs >= AUTO_ONE_STREAM_RTT_MS)) return 1;
  return Math.min(AUTO_MAX_STREAMS, Math.max(2, Math.round(rttMs / AUTO_RTT_PER_STREAM_MS)));
}

/** A connection that finished its handshake, as dial() gives it. */
export type Dialed = Awaited<ReturnType<typeof dial>>;

/**
 * Whether a handshake may trust the server's key on first use (§5): no pinned fingerprint and no
 * key for the host in known_hosts. Then the other connections dial only after the first's
 * handshake, so that trust on first use asks (and records) once.
 */
export function asksTrust(opts: UploadOptions): Promise<boolean> {
  return opts.fingerprint === undefined ? isKnownHost(opts.knownHostsFile, hostPortKey(opts.host, opts.port)).then((known) => !known) : Promise.resolve(false);
}

/** --streams auto's first connection (probeRoundTrip) and the others dialed early. */
export interface Probe {
  /** The connect's round trip in ms, before the handshake; NaN if the dial failed first. */
  readonly rttMs: Promise<number>;
  /** The probe's connection, once its handshake is done. */
  readonly dialed: Promise<Dialed>;
  /** Takes `n` of the connections dialed early (dialing or dialed, maybe fewer) and closes the rest. */
  others(n: number): Promise<Dialed>[];
}

/**
 * Dials one connection and times its TCP connect (one round trip): --streams auto's measure.
 * `rttMs` settles at the connect, so that the other connections can dial while this one's
 * handshake goes on. They start sooner where no trust on first use is pending (asksTrust): once
 * AUTO_ONE_STREAM_RTT_MS passed without the connect, the round trip is that long at least, so
 * AUTO_MAX_STREAMS - 1 more start dialing then, not once the connect says how many (at 150 ms,
 * 110 ms sooner); those the round trip does not call for (autoStreams) are closed at
 * their connect, before their handshake. Below AUTO_ONE_STREAM_RTT_MS (a LAN) none is dialed.
 */
export function probeRoundTrip(opts: UploadOptions): Probe {
  const started = performance.now();
  let connected: (ms: number) => void = () => undefined;
  const rttMs = new Promise<number>((resolve) => (connected = resolve));
  const dialed = dial(dialOptions(opts), (c) => connected(isLoopback(c.socket.remoteAddress) ? 0 : performance.now() - started));
  // A dial that failed before its connect measured nothing; the caller sees the failure when it awaits `dialed`.
  dialed.catch(() => connected(Number.NaN));
  const early: Promise<Dialed>[] = [];
  // How many of `early` are wanted: unknown until the round trip is.
  let wanted: number | undefined;
  const timer = setTimeout(() => {
    void asksTrust(opts).then((asks) => {
      if (asks || wanted !== undefined || isLoopback(opts.host)) return;
      for (let k = 0; k < AUTO_MAX_STREAMS - 1; k++) {
        const d = dial(dialOptions(opts), undefined, () => wanted === undefined || k < wanted);
        d.catch(() => undefined);
        early.push(d);
      }
    });
  }, AUTO_ONE_STREAM_RTT_MS);
  void rttMs.then(() => clearTimeout(timer));
  return {
    rttMs,
    dialed,
    others: (n) => {
      wanted = n;
      // Those past their connect already (the probe's SYN was lost and retried) go after their handshake.
      for (const d of early.slice(n)) void d.then((x) => x.connection.close(), () => undefined);
      return early.slice(0, n);
    },
  };
}

/** The SHA-256 of the whole source, read in order (the server verifies the file against it). */
async function digestOf(source: DataSource): Promise<Buffer> {
  const hash = createHash('sha256');
  const size = source.identity.size;
  for (let at = 0; at < size; ) {
    const chunk = await source.read(at);
    if (chunk.length === 0) throw new ResourceError('INTERNAL', `${source.label} became shorter while hashing`);
    hash.update(chunk);
    at += chunk.length;
  }
  return hash.digest();
}

interface Shared {
  reconnects: number;
  handshakes: number;
  fingerprint: string;
  /** Set once the job failed: the other ranges stop at their next attempt. */
  failed: boolean;
  /** Settles once the first connection's handshake is done (or failed): where `asksTrust`, the others dial after it, so trust on first use asks once. */
  readonly first: Promise<void>;
  /**
   * Whether a handshake may trust the server's key on first use (§5): no pinned fingerprint and
   * no key for the host in known_hosts. Otherwise every connection dials at once: waiting for the
   * first's handshake cost the others two round trips more (300 ms at 150 ms).
   */
  readonly asksTrust: Promise<boolean>;
  readonly firstDone: () => void;
  /** The next range (index into the ranges) a free connection takes. */
  next: number;
  readonly sent: number[];
  readonly durable: number[];
  /** Which connection (worker) carries each range now; -1 before one takes it. */
  readonly owner: number[];
  /** When each range's RANGE_OK came (performance.now()) and from which offset: its ACK rate. */
  readonly opened: ({ readonly at: number; readonly offset: number } | undefined)[];
  /** Ranges taken over once from a slow connection (each at most once), and those done. */
  readonly stolen: boolean[];
  readonly done: boolean[];
  /**
   * Whether a connection's next RANGE goes right after its last RANGE_END (§9.13 step 2, revision
   * 1.10); false once a server of revision 1.9 or older refused that with UNEXPECTED_FRAME.
   */
  chain: boolean;
  /**
   * Whether a range claimed for the first time in this run has its DATA sent right behind its
   * RANGE, before RANGE_OK (§9.13 step 2, revision 1.12); false once a server of revision 1.11 or
   * older refused that (UNEXPECTED_FRAME or BAD_OFFSET).
   */
  eager: boolean;
  /** Ranges claimed once in this run: a range claimed again (a resume) waits for RANGE_OK, which says where it goes on. */
  readonly claimed: boolean[];
}

/**
 * Once no range is left to take, a connection takes over (§9.13 step 3: the same RANGE again) the
 * range whose connection, at the rate the server has acknowledged it so far, still needs the
 * longest, if more than TAKEOVER_AFTER_MS: a connection that TCP left slow holds the whole upload
 * back otherwise. The taken-over connection gets SUPERSEDED and stops; what it had sent beyond
 * the last ACK goes again. (ACKs, not `sent`: that runs a socket buffer ahead of the link.)
 */
const TAKEOVER_AFTER_MS = 1500;

/** The next range for worker `w`: the next not taken, else one worth taking over (with a connection to carry it), else undefined. */
function nextRange(ranges: readonly Range[], shared: Shared, w: number, connected: boolean): number | undefined {
  if (shared.next < ranges.length) return shared.next++;
  if (!connected) return undefined;
  const now = performance.now();
  let best: number | undefined;
  let longest = TAKEOVER_AFTER_MS;
  ranges.forEach((r, j) => {
    const opened = shared.opened[j];
    // A range whose DATA was all handed to its connection only waits for what is in flight and
    // for RANGE_DONE: taking it over sends again all that is not durable yet, from a slow start.
    if (opened === undefined || shared.owner[j] === w || shared.stolen[j] || shared.done[j] || (shared.sent[j] ?? r.start) >= r.end) return;
    const durable = shared.durable[j] ?? r.start;
    const rate = (durable - opened.offset) / Math.max(1, now - opened.at);
    const needs = rate > 0 ? (r.end - durable) / rate : now - opened.at;
    if (needs > longest) {
      best = j;
      longest = needs;
    }
  });
  if (best !== undefined) shared.stolen[best] = true;
  return best;
}

/** What a server of revision 1.11 or older answers DATA sent before RANGE_OK with (§9.13 step 2). */
const OLD_SERVER_EAGER_CODES: ReadonlySet<string> = new Set(['UNEXPECTED_FRAME', 'FRAME_TOO_LARGE', 'BAD_OFFSET']);

/** A range that stopped because another one failed. */
class Stopped extends ResourceError {
  constructor() {
    super('INTERNAL', 'another range failed');
  }
}

/** Whether the job failed meanwhile (read afresh after an await). */
function stopped(shared: Shared): boolean {
  return shared.failed;
}

/**
 * Uploads `opts.file` over `streams` parallel connections (at most one per range), which take
 * `ranges` (rangesOf) in turn, verified whole. `dialed`, when given, is the first connection,
 * dialed already or being dialed (if that fails, the first range dials again); `others` are the
 * next ones so given (probeRoundTrip), closed if there are more than connections to use.
 */
export async function rangedUpload(opts: UploadOptions, ranges: readonly Range[], streams: number, dialed?: Promise<Dialed>, others: readonly Promise<Dialed>[] = []): Promise<UploadResult> {
  const started = Date.now();
  const hashSource = await plainFiles.open(opts.file, opts.name);
  const identity = hashSource.identity;
  const size = identity.size;
  const open = { size, mtime: identity.mtime, mode: identity.mode };
  let firstDone = (): void => undefined;
  const first = new Promise<void>((resolve) => (firstDone = resolve));
  const shared: Shared = { reconnects: 0, handshakes: 0, fingerprint: '', failed: false, first, firstDone, asksTrust: asksTrust(opts), next: 0, sent: ranges.map((r) => r.start), durable: ranges.map((r) => r.start), owner: ranges.map(() => -1), opened: ranges.map(() => undefined), stolen: ranges.map(() => false), done: ranges.map(() => false), chain: true, eager: true, claimed: ranges.map(() => false) };
  const report = (stage: 'sending' | 'finishing'): void => {
    if (opts.onProgress === undefined) return;
    const sum = (xs: readonly number[]): number => xs.reduce((a, x, i) => a + x - (ranges[i]?.start ?? 0), 0);
    opts.onProgress({ stage, size, sent: sum(shared.sent), durable: sum(shared.durable), reconnects: shared.reconnects });
  };
  const connections: Connection[] = [];
  const workers = Math.max(1, Math.min(streams, MAX_STREAMS_PER_UPLOAD, ranges.length));
  try {
    // The whole file's SHA-256, computed while the ranges go; END waits for it, OPEN does not.
    const digest = digestOf(hashSource);
    digest.catch(() => undefined);
    for (const d of others.slice(workers - 1)) void d.then((x) => x.connection.close(), () => undefined);
    const sending = Array.from({ length: workers }, (_, w) => sendRanges(opts, ranges, w, open, shared, report, connections, w === 0 ? dialed : others[w - 1]));
    const results = await Promise.allSettled(sending);
    // The range that failed first says why; the others stopped because of it.
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    const failure = failures.find((e) => !(e instanceof Stopped)) ?? failures[0];
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error('a range failed', { cause: failure });
    // Every range is durable on the server: one connection publishes the whole file (§9.13 step 4).
    const sha = await finish(opts, open, digest, connections.pop(), shared, report);
    await hashSource.checkUnchanged();
    const seconds = (Date.now() - started) / 1000;
    return {
      file: opts.file,
      name: opts.name,
      bytes: size,
      sha256: sha.toString('hex'),
      seconds,
      bytes_per_second: Math.round(size / Math.max(seconds, 1e-6)),
      resumed_from: 0,
      reconnects: shared.reconnects,
      server_fingerprint: shared.fingerprint,
      identical: false,
      // Ranges need the local store (§9.13): an S3 daemon answers NOT_ALLOWED and the file goes
      // over one connection, so no range ever waits on another daemon's lease.
      held_elsewhere: 0,
      held_elsewhere_seconds: 0,
    };
  } finally {
    shared.failed = true;
    for (const conn of connections) conn.close();
    await hashSource.close();
  }
}

/** What dial() takes for `opts`: connect and handshake within the handshake timeout. */
export function dialOptions(opts: UploadOptions): Parameters<typeof dial>[0] {
  const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  return { ...opts, connectTimeoutMs: opts.connectTimeoutMs ?? handshakeMs, handshakeTimeoutMs: handshakeMs, idleTimeoutMs: opts.idleTimeoutMs };
}

/**
 * Connection `w`: takes the next range not yet taken, sends it (reconnecting and resuming it until
 * it is durable), then the next, until none is left; leaves its connection (Ready) in `connections`.
 * With a pinned fingerprint, or a host known_hosts records, every connection dials at once; else
 * the others wait for the first's handshake, so that trust on first use asks (and records) once.
 */
/** A new connection for this upload, counted in `shared` (its handshakes, the fingerprint seen). */
async function dialCounted(opts: UploadOptions, shared: Shared): Promise<Connection> {
  const dialed = await dial(dialOptions(opts));
  shared.fingerprint = dialed.fingerprint;
  shared.handshakes++;
  return dialed.connection;
}

async function sendRanges(
  opts: UploadOptions,
  ranges: readonly Range[],
  w: number,
  open: { size: number; mtime: number; mode: number },
  shared: Shared,
  report: (stage: 'sending') => void,
  connections: Connection[],
  dialing: Promise<Dialed> | undefined,
): Promise<void> {
  const source = await plainFiles.open(opts.file, opts.name).catch(async (err: unknown) => {
    (await dialing?.catch(() => undefined))?.connection.close();
    throw err;
  });
  // The probe's connection (--streams auto); one whose handshake failed is dialed again below.
  const dialed = await dialing?.catch(() => undefined);
  let conn: Connection | undefined = dialed?.connection;
  if (dialed !== undefined) {
    shared.fingerprint = dialed.fingerprint;
    shared.handshakes++;
    shared.firstDone();
  }
  const retry = new Retry(opts);
  if (w > 0 && (await shared.asksTrust)) await shared.first;
  // Ranges this connection holds, in order, not yet known durable; and the one whose RANGE_END went
  // and whose RANGE_DONE is due: the next range's RANGE goes right after RANGE_END (§9.13 step 2).
  const todo: number[] = [];
  let settling: { readonly i: number; readonly settled: Promise<void> } | undefined;
  const settle = async (s: { readonly i: number; readonly settled: Promise<void> }): Promise<void> => {
    await s.settled;
    shared.done[s.i] = true;
  };
  try {
    for (;;) {
      if (shared.failed) throw new Stopped();
      // Taken over by another connection while this one waited to reconnect: claiming it again
      // would supersede that one in turn (and it this one, each time re-sending past the ACK).
      while (todo.length > 0 && (shared.owner[todo[0] ?? 0] !== w || shared.done[todo[0] ?? 0])) todo.shift();
      // A fresh range goes right after the last one's RANGE_END; taking one over waits for its
      // RANGE_DONE (else the ranges other connections have sent but not yet heard RANGE_DONE of,
      // their ACKs a second behind, look slow).
      if (todo.length === 0 && (settling === undefined || (shared.chain && shared.next < ranges.length))) {
        const next = nextRange(ranges, shared, w, conn !== undefined);
        if (next !== undefined) {
          const r = ranges[next];
          if (shared.owner[next] !== -1 && r !== undefined) opts.onEvent?.(`range ${r.start}–${r.end}: its connection is slow (sent to ${shared.sent[next] ?? r.start}, durable to ${shared.durable[next] ?? r.start}); taking it over on another`);
          shared.owner[next] = w;
          todo.push(next);
        }
      }
      const i = todo[0];
      const range = i === undefined ? undefined : ranges[i];
      if (range === undefined && settling === undefined) break;
      const watched = i ?? settling?.i ?? 0;
      const before = shared.durable[watched] ?? 0;
      const chained = settling !== undefined && shared.chain;
      // A range claimed for the first time in this run is most likely new on the server: its DATA
      // goes right behind RANGE (from its start; the server skips what it holds already).
      const eager = i !== undefined && shared.eager && !shared.claimed[i];
      try {
        if (conn === undefined) {
          conn = await dialCounted(opts, shared);
          if (w === 0) shared.firstDone();
        }
        if (i !== undefined && range !== undefined && (settling === undefined || chained)) {
          shared.claimed[i] = true;
          const { settled } = await startRange(conn, source, { name: opts.name, open, ...range }, {
            opened: (offset) => {
              shared.opened[i] = { at: performance.now(), offset };
              shared.sent[i] = offset;
              shared.durable[i] = offset;
              if (offset > range.start) opts.onEvent?.(`range ${range.start}–${range.end}: the server holds it up to ${offset}; resuming from there`);
            },
            acked: (offset) => {
              shared.durable[i] = Math.max(shared.durable[i] ?? 0, offset);
            },
            sent: (sent) => {
              shared.sent[i] = sent;
              report('sending');
            },
          }, eager);
          // This range's RANGE_OK came, so the one before's RANGE_DONE did (the server answers in order).
          if (settling !== undefined) await settle(settling);
          settling = { i, settled };
          todo.shift();
        } else if (settling !== undefined) {
          await settle(settling);
          settling = undefined;
        }
        retry.reset();
      } catch (err) {
        conn?.close(err);
        conn = undefined;
        // A range whose RANGE_DONE did not come goes again first (its RANGE_OK says how far it got).
        let lost = i !== undefined && shared.owner[i] !== w;
        if (settling !== undefined) {
          const s = settling;
          settling = undefined;
          if (await s.settled.then(() => true, () => false)) shared.done[s.i] = true;
          else if (shared.owner[s.i] === w) todo.unshift(s.i);
          else lost = true;
        }
        if (stopped(shared)) throw err;
        // Another connection took this range (or the one before) over (SUPERSEDED): it carries it on.
        if (lost) continue;
        // A server of revision 1.11 or older judges DATA behind RANGE in Claiming (UNEXPECTED_FRAME,
        // or FRAME_TOO_LARGE for a long DATA record, which Claiming does not take), or, where the
        // range resumes, at an offset it does not take (BAD_OFFSET): from now on every range waits
        // for RANGE_OK before its DATA. This range is claimed again as a resume.
        if (eager && shared.eager && err instanceof StxError && OLD_SERVER_EAGER_CODES.has(err.code)) {
          opts.onEvent?.('the server takes no DATA before RANGE_OK (revision 1.11 or older): each range waits for its RANGE_OK');
          shared.eager = false;
          shared.reconnects++;
          continue;
        }
        // A server of revision 1.9 or older reads a chained RANGE while it settles the range before:
        // from now on every connection waits for RANGE_DONE first.
        if (chained && err instanceof StxError && err.code === 'UNEXPECTED_FRAME') {
          if (shared.chain) opts.onEvent?.('the server takes no RANGE before RANGE_DONE (revision 1.9 or older): each connection sends its ranges one after the other');
          shared.chain = false;
          shared.reconnects++;
          continue;
        }
        try {
          await retry.after(err, (shared.durable[watched] ?? 0) > before, shared.handshakes);
        } catch (final) {
          shared.failed = true;
          shared.firstDone();
          throw final;
        }
        shared.reconnects++;
      }
    }
    if (conn !== undefined) connections.push(conn);
    conn = undefined;
  } finally {
    conn?.close();
    if (w === 0) shared.firstDone();
    await source.close();
  }
}

/**
 * OPEN … END of the whole file (§9.13 step 4), on `first` if given (a range's connection, Ready),
 * else on new ones: the server holds every byte, so OPEN_OK says `size` and END follows as soon
 * as the local SHA-256 is ready (OPEN goes before it); should the server hold less (its partial
 * was lost), the rest goes in order.
 */
async function finish(
  opts: UploadOptions,
  open: { size: number; mtime: number; mode: number },
  sha256: Promise<Buffer>,
  first: Connection | undefined,
  shared: Shared,
  report: (stage: 'finishing') => void,
): Promise<Buffer> {
  const source = await plainFiles.open(opts.file, opts.name);
  const sender = new Sender(source);
  let from = open.size;
  const body: Outgoing = {
    open,
    begin: (offset) => {
      from = offset;
      sender.begin(offset);
    },
    acknowledge: (offset) => sender.acknowledge(offset),
    send: async (conn, onSent) => {
      if (from < open.size) await sender.send(conn, onSent);
    },
    end: async () => ({ sha256: await sha256, size: open.size, announce: false }),
  };
  const retry = new Retry(opts);
  let next = first;
  try {
    for (;;) {
      let conn = next;
      next = undefined;
      try {
        if (conn === undefined) {
          conn = await dialCounted(opts, shared);
        }
        report('finishing');
        const sha = await uploadOn(conn, { name: opts.name, body });
        conn.close();
        return sha;
      } catch (err) {
        conn?.close(err);
        await retry.after(err, false, shared.handshakes);
        shared.reconnects++;
      }
    }
  } finally {
    await source.close();
  }
}
