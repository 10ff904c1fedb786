// stx-send --streams N (spec/PROTOCOL.md §9.13): one file over N connections at once, each
// carrying one range of it (commands/range.ts) and resuming its own range after a cut, then one
// OPEN … END of the whole file on one of them, which the server answers only once the SHA-256 of
// all of it matches. One TCP connection is window-bound on a long link; N of them are not.
import { createHash } from 'node:crypto';
import { ResourceError } from '../proto/errors.js';
import { HANDSHAKE_TIMEOUT_MS, MAX_STREAMS_PER_UPLOAD, MIN_RANGE_BYTES } from '../proto/limits.js';
import { Sender } from '../transfer/sender.js';
import type { DataSource } from '../transfer/source.js';
import type { Connection } from './connection.js';
import { sendRange } from './commands/range.js';
import { upload as uploadOn, type Outgoing } from './commands/upload.js';
import { plainFiles } from './file-opener.js';
import { dial } from './handshake.js';
import { Retry } from './retry.js';
import type { UploadOptions, UploadResult } from './upload.js';

/** Ranges start at multiples of this, so every DATA chunk read from the file stays page-aligned. */
const RANGE_ALIGN_BYTES = MIN_RANGE_BYTES;

export interface Range {
  readonly start: number;
  readonly end: number;
}

/**
 * How a file of `size` bytes is split for `streams` connections: the same for the same size and
 * count, so that a resumed run claims the ranges the server holds (§9.13). Fewer ranges than
 * streams where the file is small (each at least MIN_RANGE_BYTES); [] means send it in order.
 */
export function rangesOf(size: number, streams: number): Range[] {
  const n = Math.min(streams, MAX_STREAMS_PER_UPLOAD, Math.floor(size / MIN_RANGE_BYTES));
  if (n < 2) return [];
  const step = Math.ceil(size / n / RANGE_ALIGN_BYTES) * RANGE_ALIGN_BYTES;
  const ranges: Range[] = [];
  for (let start = 0; start < size; start += step) ranges.push({ start, end: Math.min(size, start + step) });
  return ranges;
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
  /** Settles once the first range's handshake is done (or failed): the others dial after it, so trust on first use asks once. */
  readonly first: Promise<void>;
  readonly firstDone: () => void;
  readonly sent: number[];
  readonly durable: number[];
}

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

/** Uploads `opts.file` over `ranges.length` parallel connections (rangesOf), verified whole. */
export async function rangedUpload(opts: UploadOptions, ranges: readonly Range[]): Promise<UploadResult> {
  const started = Date.now();
  const hashSource = await plainFiles.open(opts.file, opts.name);
  const identity = hashSource.identity;
  const size = identity.size;
  const open = { size, mtime: identity.mtime, mode: identity.mode };
  let firstDone = (): void => undefined;
  const first = new Promise<void>((resolve) => (firstDone = resolve));
  const shared: Shared = { reconnects: 0, handshakes: 0, fingerprint: '', failed: false, first, firstDone, sent: ranges.map((r) => r.start), durable: ranges.map((r) => r.start) };
  const report = (stage: 'sending' | 'finishing'): void => {
    if (opts.onProgress === undefined) return;
    const sum = (xs: readonly number[]): number => xs.reduce((a, x, i) => a + x - (ranges[i]?.start ?? 0), 0);
    opts.onProgress({ stage, size, sent: sum(shared.sent), durable: sum(shared.durable), reconnects: shared.reconnects });
  };
  const connections: Connection[] = [];
  try {
    const digest = digestOf(hashSource);
    digest.catch(() => undefined);
    const sendAll = ranges.map((range, i) => sendOne(opts, range, i, open, shared, report, connections));
    const results = await Promise.allSettled(sendAll);
    // The range that failed first says why; the others stopped because of it.
    const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
    const failure = failures.find((e) => !(e instanceof Stopped)) ?? failures[0];
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error('a range failed', { cause: failure });
    // Every range is durable on the server: one connection publishes the whole file (§9.13 step 4).
    const sha = await finish(opts, open, await digest, connections.pop(), shared, report);
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

function dialOptions(opts: UploadOptions): Parameters<typeof dial>[0] {
  const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  return { ...opts, connectTimeoutMs: opts.connectTimeoutMs ?? handshakeMs, handshakeTimeoutMs: handshakeMs, idleTimeoutMs: opts.idleTimeoutMs };
}

/** One range, reconnecting and resuming it until it is durable; leaves its connection (Ready) in `connections`. */
async function sendOne(
  opts: UploadOptions,
  range: Range,
  i: number,
  open: { size: number; mtime: number; mode: number },
  shared: Shared,
  report: (stage: 'sending') => void,
  connections: Connection[],
): Promise<void> {
  const source = await plainFiles.open(opts.file, opts.name);
  const retry = new Retry(opts);
  if (i > 0) await shared.first;
  try {
    for (;;) {
      if (shared.failed) throw new Stopped();
      const before = shared.durable[i] ?? range.start;
      let conn: Connection | undefined;
      try {
        const dialed = await dial(dialOptions(opts));
        conn = dialed.connection;
        shared.fingerprint = dialed.fingerprint;
        shared.handshakes++;
        if (i === 0) shared.firstDone();
        const held = conn;
        await sendRange(held, source, { name: opts.name, open, ...range }, {
          opened: (offset) => {
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
        });
        connections.push(held);
        return;
      } catch (err) {
        conn?.close(err);
        if (stopped(shared)) throw err;
        try {
          await retry.after(err, (shared.durable[i] ?? 0) > before, shared.handshakes);
        } catch (final) {
          shared.failed = true;
          shared.firstDone();
          throw final;
        }
        shared.reconnects++;
      }
    }
  } finally {
    await source.close();
  }
}

/**
 * OPEN … END of the whole file (§9.13 step 4), on `first` if given (a range's connection, Ready),
 * else on new ones: the server holds every byte, so OPEN_OK says `size` and END follows at once;
 * should it hold less (its partial was lost), the rest goes in order.
 */
async function finish(
  opts: UploadOptions,
  open: { size: number; mtime: number; mode: number },
  sha256: Buffer,
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
    end: () => Promise.resolve({ sha256, size: open.size, announce: false }),
  };
  const retry = new Retry(opts);
  let next = first;
  try {
    for (;;) {
      let conn = next;
      next = undefined;
      try {
        if (conn === undefined) {
          const dialed = await dial(dialOptions(opts));
          conn = dialed.connection;
          shared.fingerprint = dialed.fingerprint;
          shared.handshakes++;
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
