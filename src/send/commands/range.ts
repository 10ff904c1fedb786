// One range of a ranged upload on one Ready connection (spec/PROTOCOL.md §9.13): RANGE → RANGE_OK
// with where the server holds the range up to → DATA from there to the range's end → RANGE_END →
// RANGE_DONE. ACKs say how far the range is durable. The connection is Ready again afterwards;
// the next range's RANGE may go right after RANGE_END (startRange; §9.13 step 2, revision 1.10).
import { CryptoError, UploadError } from '../../proto/errors.js';
import { DATA_HEADER_BYTES } from '../../proto/limits.js';
import type { DataSource } from '../../transfer/source.js';
import { checkAck } from '../../transfer/sender.js';
import type { Connection } from '../connection.js';
import { deferred } from './deferred.js';
import { taking } from './frames.js';

export interface RangeRequest {
  readonly name: string;
  /** OPEN's fields of the whole file (§4): the upload's identity (§9.2). */
  readonly open: { readonly size: number; readonly mtime: number; readonly mode: number };
  readonly start: number;
  readonly end: number;
}

export interface RangeEvents {
  /** RANGE_OK: the server holds the range up to `offset`. */
  opened?(offset: number): void;
  /** ACK: the range is durable up to `offset`. */
  acked?(offset: number): void;
  /** DATA up to `sent` handed to the connection. */
  sent?(sent: number): void;
}

/**
 * At most this much of a range's DATA goes before its RANGE_OK (`eager`): about one round trip of
 * one connection's share of the link, all a round trip without RANGE_OK can use (--streams auto
 * opens a connection per 20 ms of round trip, so at 1 Gbit/s each carries ~2.4 MiB per round
 * trip, at any round trip up to 160 ms). Beyond it the DATA only waits in the server's socket
 * buffer while the server settles the range before and claims this one (record writes: seconds
 * where the partial has much to sync on a loaded machine), and a cut then loses all of it: at
 * 150 ms and 1 Gbit/s, 1 GiB, cut once right after the first turn of ranges, ~19 MiB per
 * connection, 8 connections (wire bytes 1.16× the file, against 1.04× without DATA before RANGE_OK).
 */
export const EAGER_MAX_BYTES = 2 * 1024 * 1024;

/** Sends range [start, end) of `source` on `conn`; resolves once the server says it is durable (RANGE_DONE). */
export async function sendRange(conn: Connection, source: DataSource, req: RangeRequest, events: RangeEvents = {}): Promise<void> {
  const { settled } = await startRange(conn, source, req, events);
  await settled;
}

/**
 * Sends range [start, end) of `source` on `conn` up to its RANGE_END; resolves then, with `settled`,
 * which resolves once the server says the range is durable (RANGE_DONE). Meanwhile the next range
 * MAY start on the same connection (chained RANGE, §9.13 step 2, revision 1.10): its RANGE_OK comes
 * after this one's RANGE_DONE. `conn` is Ready, or awaits the RANGE_DONE of the range before.
 * `eager` (revision 1.12): DATA from `start` goes right behind RANGE, without waiting for RANGE_OK
 * (up to EAGER_MAX_BYTES); should RANGE_OK say the server holds more, the DATA goes on from there;
 * RANGE_END waits for it.
 */
export async function startRange(conn: Connection, source: DataSource, req: RangeRequest, events: RangeEvents = {}, eager = false): Promise<{ readonly settled: Promise<void> }> {
  const { start, end } = req;
  const ok = deferred<number>();
  const done = deferred<number>();
  const off = conn.onFailure((err) => {
    ok.reject(err);
    done.reject(err);
  });
  // Whoever awaits `settled` sees its failure; until then it must not count as unhandled.
  done.promise.catch(() => undefined);
  ok.promise.catch(() => undefined);
  // `sent`: the end of the DATA handed to the connection, or RANGE_OK's offset if that is further.
  let sent = start;
  let acked = start;
  let opened: number | undefined;
  try {
    conn.begin(
      { type: 'RANGE', name: req.name, ...req.open, start, end },
      taking(['RANGE_OK', 'ACK', 'RANGE_DONE'], 'a range', (f) => {
        switch (f.type) {
          case 'RANGE_OK':
            if (f.offset < start || f.offset > end) throw new UploadError('BAD_OFFSET', `the server resumes range [${start}, ${end}) at ${f.offset}`);
            opened = acked = f.offset;
            sent = Math.max(sent, f.offset);
            conn.progressed();
            if (eager) events.opened?.(f.offset);
            ok.resolve(f.offset);
            return;
          case 'ACK':
            checkAck(f.offset, acked, sent);
            if (f.offset > acked) conn.progressed();
            acked = f.offset;
            events.acked?.(f.offset);
            return;
          case 'RANGE_DONE':
            if (f.end !== end || sent !== end) throw new UploadError('BAD_OFFSET', `RANGE_DONE ${f.end} for range [${start}, ${end}) after ${sent} bytes`);
            conn.progressed();
            events.acked?.(end);
            done.resolve(f.end);
            return;
        }
      }),
    );
    if (!eager) events.opened?.(await ok.promise);
    // The next offset to send: RANGE_OK's, or (eager) the range's start.
    let at = opened ?? start;
    let pending = at < end ? source.read(at) : undefined;
    try {
      while (at < end && pending !== undefined) {
        const chunk = await pending;
        // EAGER_MAX_BYTES sent: the rest waits for RANGE_OK (which may say to go on further up).
        if (opened === undefined && at - start >= EAGER_MAX_BYTES) await ok.promise;
        if (opened !== undefined && opened > at) {
          // RANGE_OK came meanwhile: the server holds the range up to there, so the DATA goes on from there.
          at = opened;
          pending = at < end ? source.read(at) : undefined;
          continue;
        }
        if (chunk.length === 0) throw new UploadError('BAD_OFFSET', `${source.label} became shorter while uploading`);
        const piece = chunk.subarray(0, Math.min(chunk.length, end - at));
        if (conn.nearKeyLimit(1 + DATA_HEADER_BYTES + piece.length)) throw new CryptoError('KEY_LIMIT', 'per-connection key limit reached; reconnecting with new keys');
        const flowing = conn.sendData(at, piece);
        at += piece.length;
        sent = Math.max(sent, at);
        pending = at < end ? source.read(at) : undefined;
        if (!flowing) await conn.drain();
        events.sent?.(sent);
      }
    } finally {
      // The source reuses its buffers: no read may still land in one when the next attempt reads.
      await pending?.catch(() => undefined);
    }
    // RANGE_END only once RANGE_OK came (§9.13 step 2).
    await ok.promise;
    conn.send({ type: 'RANGE_END', end });
  } catch (err) {
    off();
    throw err;
  }
  const settled = done.promise.then(
    () => off(),
    (err: unknown) => {
      off();
      throw err;
    },
  );
  settled.catch(() => undefined);
  return { settled };
}
