// The client's upload job (spec/PROTOCOL.md §9, §10): one file over as many connections as it
// takes. Each attempt dials (connection.ts: connect, handshake) and runs the upload command on it
// (commands/upload.ts); on a lost connection it reconnects with backoff and resumes where the
// server says. The retry policy lives here and nowhere else.
import type { KeyObject } from 'node:crypto';
import { StxError } from '../proto/errors.js';
import { Sender } from '../transfer/sender.js';
import { fileBody, upload as uploadOn, type Outgoing } from './commands/upload.js';
import { offeringDigest } from './checksum.js';
import { plainFiles, type FileOpener } from './file-opener.js';
import { dial } from './handshake.js';
import { Retry } from './retry.js';
import { AUTO_MIN_BYTES, AUTO_SPLIT_STREAMS, autoStreams, dialOptions, probeRoundTrip, rangedUpload, rangesOf, type Dialed } from './ranged.js';

export interface UploadOptions {
  readonly host: string;
  readonly port: number;
  readonly file: string;
  readonly name: string;
  /** Pinned server fingerprint (§5); when set, known_hosts is not consulted. */
  readonly fingerprint?: string;
  readonly knownHostsFile: string;
  readonly identity?: KeyObject;
  /** Where resumption tickets are kept (§7.5; handshake.ts): $STX_HOME/tickets unless given, null for none. */
  readonly ticketDir?: string | null | undefined;
  /** Consecutive failed attempts (without progress) before giving up. */
  readonly retries: number;
  /**
   * Keep retrying a lost connection for this long without progress, even past `retries` (a pulled
   * cable): the upload gives up once both budgets are spent.
   */
  readonly retryForMs?: number | undefined;
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly connectTimeoutMs?: number;
  /** Connect + handshake must finish within this (default HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number | undefined;
  /** After the handshake, a connection that receives nothing for this long is dropped and retried. */
  readonly idleTimeoutMs?: number | undefined;
  readonly onProgress?: ((p: Progress) => void) | undefined;
  readonly onEvent?: ((message: string) => void) | undefined;
  /** How the file is read: as it is (default), or sealed (seal.ts); `name` is already the stored name. */
  readonly files?: FileOpener | undefined;
  /** --checksum: offer the file's SHA-256, so a server holding it identical answers DONE at once (§9.1). */
  readonly checksum?: boolean | undefined;
  /**
   * --streams: send the file over this many connections at once, a range each (§9.13), when it is
   * at least two ranges long; 1 (the default here) sends it in order on one; 'auto' (stx-send's
   * default) as many as the first connection's round trip calls for (ranged.ts autoStreams).
   */
  readonly streams?: number | 'auto' | undefined;
}

/**
 * Where an attempt is, for the display: connecting (TCP, DNS), handshake (§6), verifying (the
 * server re-reads a partial before OPEN_OK, so nothing else moves), sending DATA, finishing (END
 * sent, waiting for DONE).
 */
export type Stage = 'connecting' | 'handshake' | 'verifying' | 'sending' | 'finishing';

export interface Progress {
  readonly stage: Stage;
  /** In 'verifying': bytes the server has read back so far (PROGRESS, §9.7), of `verifyTotal`. */
  readonly verified?: number;
  readonly verifyTotal?: number;
  readonly size: number;
  /** Bytes handed to the socket (this attempt's offset plus what followed). */
  readonly sent: number;
  /** Highest offset the server reported durable. */
  readonly durable: number;
  readonly reconnects: number;
}

export interface UploadResult {
  readonly file: string;
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly seconds: number;
  readonly bytes_per_second: number;
  readonly resumed_from: number;
  readonly reconnects: number;
  /** Attempts refused with HELD_ELSEWHERE (another server of the store held the upload, §9.4), and the seconds spent waiting after them. */
  readonly held_elsewhere: number;
  readonly held_elsewhere_seconds: number;
  readonly server_fingerprint: string;
  /** True when the server held the file identical (--checksum) and nothing was sent. */
  readonly identical: boolean;
}

export async function upload(opts: UploadOptions): Promise<UploadResult> {
  const files = opts.files ?? plainFiles;
  const source = await files.open(opts.file, opts.name);
  const size = source.identity.size;
  // Parallel ranges (§9.13) for a plain file; a sealed file or --checksum goes in order.
  const plain = opts.files === undefined && opts.checksum !== true;
  let streams = opts.streams === 'auto' ? 1 : (opts.streams ?? 1);
  let split = streams;
  let first: Dialed | undefined;
  let dialing: Promise<Dialed> | undefined;
  let others: Promise<Dialed>[] = [];
  if (opts.streams === 'auto' && plain && size >= AUTO_MIN_BYTES) {
    // One connection first: its connect's round trip says how many (ranged.ts autoStreams); on a
    // short link it carries the file in order. A failed dial is retried by the upload below.
    // The decision comes at the connect: the other connections dial during its handshake, or
    // already once it took AUTO_ONE_STREAM_RTT_MS (probeRoundTrip).
    const probe = probeRoundTrip(opts);
    const rttMs = await probe.rttMs;
    if (autoStreams(rttMs) > 1) {
      streams = autoStreams(rttMs);
      split = AUTO_SPLIT_STREAMS;
      dialing = probe.dialed;
      others = probe.others(streams - 1);
      opts.onEvent?.(`round trip ${rttMs.toFixed(0)} ms: sending on ${streams} connections at once`);
    } else {
      void probe.others(0);
      first = await probe.dialed.catch(() => undefined);
    }
  }
  const ranges = plain ? rangesOf(size, split) : [];
  if (ranges.length === 0 && dialing !== undefined) first = await dialing.catch(() => undefined);
  if (ranges.length === 0) for (const d of others) void d.then((x) => x.connection.close(), () => undefined);
  if (ranges.length > 0) {
    await source.close();
    try {
      const dialed = dialing ?? (first === undefined ? undefined : Promise.resolve(first));
      first = undefined;
      dialing = undefined;
      return await rangedUpload(opts, ranges, streams, dialed, others);
    } catch (err) {
      // A server whose storage takes no ranges says NOT_ALLOWED (§9.13): the file goes in order.
      // BAD_RANGE: the server holds ranges of this upload that ours overlap, claimed by a client
      // that split the file otherwise (another version, another --streams): an OPEN takes the
      // upload over and resumes it from what the server holds (§9.13 step 4), in order.
      if (!(err instanceof StxError && (err.code === 'NOT_ALLOWED' || err.code === 'BAD_RANGE'))) throw err;
      opts.onEvent?.(err.code === 'NOT_ALLOWED' ? 'the server takes no ranged uploads; sending on one connection' : 'the server holds ranges of this file split another way; sending on one connection');
      return upload({ ...opts, streams: 1 });
    }
  }
  const sender = new Sender(source);
  const started = Date.now();
  const state: AttemptState = { reconnects: 0, resumedFrom: -1, durable: 0, fingerprint: '', handshakes: 0, identical: false, dialed: first };
  const held = { times: 0, ms: 0 };
  try {
    const body = opts.checksum === true ? await offeringDigest(fileBody(sender), source) : fileBody(sender);
    const retry = new Retry(opts);
    for (;;) {
      const before = state.durable;
      try {
        const sha = await attempt(opts, sender, body, state);
        await files.done(source);
        const seconds = (Date.now() - started) / 1000;
        return {
          file: opts.file,
          name: opts.name,
          bytes: size,
          sha256: sha.toString('hex'),
          seconds,
          bytes_per_second: Math.round((size - Math.max(state.resumedFrom, 0)) / Math.max(seconds, 1e-6)),
          resumed_from: Math.max(state.resumedFrom, 0),
          reconnects: state.reconnects,
          held_elsewhere: held.times,
          held_elsewhere_seconds: held.ms / 1000,
          server_fingerprint: state.fingerprint,
          identical: state.identical,
        };
      } catch (err) {
        const waitStarted = Date.now();
        const heldElsewhere = err instanceof StxError && err.code === 'HELD_ELSEWHERE';
        await retry.after(err, state.durable > before, state.handshakes);
        if (heldElsewhere) {
          held.times++;
          held.ms += Date.now() - waitStarted;
        }
        state.reconnects++;
      }
    }
  } finally {
    state.dialed?.connection.close();
    await source.close();
  }
}

interface AttemptState {
  reconnects: number;
  resumedFrom: number;
  durable: number;
  fingerprint: string;
  /** Handshakes that succeeded, over all attempts: before the first, a refused connect is final. */
  handshakes: number;
  /** The server answered DONE at OPEN (--checksum): it holds the file already. */
  identical: boolean;
  /** A connection dialed already (--streams auto's probe): the first attempt uses it. */
  dialed: Dialed | undefined;
}

/** One connection: returns the server-confirmed SHA-256, or throws. */
async function attempt(opts: UploadOptions, sender: Sender, body: Outgoing, state: AttemptState): Promise<Buffer> {
  const size = sender.source.identity.size;
  // The display shows each stage as it starts, so a slow connect or handshake is never a blank line.
  let stage: Stage = 'connecting';
  const report = (next: Stage, sent: number, verified?: { done: number; total: number }): void => {
    stage = next;
    // Called for every chunk sent: nothing is built when nobody listens (no terminal).
    if (opts.onProgress === undefined) return;
    const p = { stage, size, sent, durable: state.durable, reconnects: state.reconnects };
    opts.onProgress(verified === undefined ? p : { ...p, verified: verified.done, verifyTotal: verified.total });
  };
  report('connecting', state.durable);
  // Handshake (§6), trust (§5) included.
  const ready = state.dialed;
  state.dialed = undefined;
  const { connection: conn, fingerprint } =
    ready ??
    (await dial(dialOptions(opts), () => report('handshake', state.durable)));
  state.fingerprint = fingerprint;
  state.handshakes++;
  try {
    const sha = await uploadOn(
      conn,
      { name: opts.name, body },
      {
        identical: () => (state.identical = true),
        opened: (offset) => {
          if (state.resumedFrom < 0) state.resumedFrom = offset;
          if (offset > 0) opts.onEvent?.(`the server holds ${offset} of ${size} bytes; resuming from there`);
          state.durable = Math.max(state.durable, offset);
        },
        verifying: (done, total) => report('verifying', state.durable, { done, total }),
        acked: (offset) => {
          state.durable = Math.max(state.durable, offset);
          report(stage, sender.sent);
        },
        sent: (sent) => report('sending', sent),
        finishing: () => report('finishing', size),
      },
    );
    state.durable = size;
    conn.close();
    return sha;
  } catch (err) {
    conn.close(err);
    throw err;
  }
}
