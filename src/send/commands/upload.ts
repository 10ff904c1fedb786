// The upload command on one Ready connection (spec/PROTOCOL.md §9.1): OPEN → OPEN_OK with the
// server's offset (PROGRESS while it reads back, §9.7) → DATA from there (transfer/sender.ts) →
// END → DONE, checked. The connection is Ready again afterwards. Reconnecting is not its business
// (upload.ts); a download or a listing would be a sibling of this file.
import { timingSafeEqual } from 'node:crypto';
import { UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { Sender } from '../../transfer/sender.js';
import type { Connection, PutAnswer } from '../connection.js';
import { deferred } from './deferred.js';
import { taking } from './frames.js';

/**
 * What an upload sends, kept across connections: a file through its Sender (fileBody), or a
 * stream of unknown length (stream.ts, §9.8).
 */
export interface Outgoing {
  /**
   * OPEN's fields besides the name (§4); `stream` only for a stream, whose `size` is 0; `sha256`
   * only to skip a file the server holds identical (--checksum, §9.1), answered by DONE at once.
   */
  readonly open: { readonly size: number; readonly mtime: number; readonly mode: number; readonly stream?: Buffer; readonly sha256?: Buffer };
  /** OPEN_OK (§9.1 step 2): the server holds `offset` bytes; throws BAD_OFFSET where it cannot go on from there. */
  begin(offset: number): void;
  /** ACK (§9.1 step 4); throws BAD_OFFSET for one outside what may be held. */
  acknowledge(offset: number): void;
  /** DATA from begin()'s offset to the end; `onSent` hears the offset after each chunk. */
  send(conn: Connection, onSent: (sent: number) => void): Promise<void>;
  /** Once send() is done: END's fields, and the size DONE must confirm (§9.1 step 7). */
  end(): Promise<{ readonly sha256: Buffer; readonly size: number; readonly announce: boolean }>;
}

/** A file's (or any seekable, sized source's) upload through its Sender. */
export function fileBody(sender: Sender): Outgoing {
  const file = sender.source.identity;
  return {
    open: { size: file.size, mtime: file.mtime, mode: file.mode },
    begin: (offset) => {
      if (offset > file.size) throw new UploadError('BAD_OFFSET', `server offset ${offset} is past the file size ${file.size}`);
      sender.begin(offset);
    },
    acknowledge: (offset) => sender.acknowledge(offset),
    send: (conn, onSent) => sender.send(conn, onSent),
    end: async () => {
      await sender.source.checkUnchanged();
      return { sha256: sender.digest(), size: file.size, announce: false };
    },
  };
}

export interface UploadRequest {
  /** The remote name (§9.3). */
  readonly name: string;
  /** What is sent, kept across connections (a file's hash resumes, §9.2). */
  readonly body: Outgoing;
  /**
   * End with END_DETACHED instead of END (§9.1 "Detached END"): upload() returns once it is sent,
   * and `events.detached` gets the answer to come, in the order of the PUTs.
   */
  readonly detach?: boolean | undefined;
}

/** An upload ended by END_DETACHED: its answer to come (§9.11), and what it must confirm. */
export interface DetachedEnd {
  readonly answer: Promise<PutAnswer>;
  readonly size: number;
  readonly sha256: Buffer;
}

/** What the command tells its caller as it goes, for the display and the resume policy. */
export interface UploadEvents {
  /** OPEN_OK: the server holds `offset` bytes durably (§9.1 step 2). */
  opened?(offset: number): void;
  /** PROGRESS: the server is reading `total` stored bytes back, `done` so far (§9.7). */
  verifying?(done: number, total: number): void;
  /** ACK: `offset` bytes are durable (§9.1 step 4). */
  acked?(offset: number): void;
  /** DATA up to `sent` is handed to the connection (first at OPEN_OK's offset, before any DATA). */
  sent?(sent: number): void;
  /** END is sent; DONE is awaited (§9.1 step 5). */
  finishing?(): void;
  /** DONE came instead of OPEN_OK: the server holds this file already, nothing was sent (§9.1). */
  identical?(): void;
  /** END_DETACHED is sent (req.detach): the connection is Ready, the answer comes later. */
  detached?(end: DetachedEnd): void;
}

type Done = Extract<Frame, { type: 'DONE' }>;

/** Runs one upload on `conn` (Ready); returns the SHA-256 the server confirmed. */
export async function upload(conn: Connection, req: UploadRequest, events: UploadEvents = {}): Promise<Buffer> {
  const { body } = req;
  const openOk = deferred<number>();
  const done = deferred<Done>();
  const off = conn.onFailure((err) => {
    openOk.reject(err);
    done.reject(err);
  });
  try {
    // What counts as progress for the connection's liveness (§9.6): a frame that moves this upload on.
    let lastAck = -1;
    conn.begin({ type: 'OPEN', name: req.name, ...body.open }, taking(['PROGRESS', 'OPEN_OK', 'ACK', 'DONE'], 'an upload', (f) => {
      switch (f.type) {
        case 'PROGRESS':
          // The server is reading back or waiting for a lock on our behalf (§9.7).
          conn.progressed();
          events.verifying?.(f.done, f.total);
          return;
        case 'OPEN_OK':
          // At once, so that an ACK right behind it is checked against this connection's offset.
          body.begin(f.offset);
          conn.progressed();
          openOk.resolve(f.offset);
          return;
        case 'ACK':
          body.acknowledge(f.offset);
          if (f.offset > lastAck) conn.progressed();
          lastAck = Math.max(lastAck, f.offset);
          events.acked?.(f.offset);
          return;
        case 'DONE':
          conn.progressed();
          done.resolve(f);
          // Instead of OPEN_OK, to an OPEN with sha256 (§9.1 "Identical files").
          openOk.resolve(-1);
          return;
      }
    }));
    const offset = await openOk.promise;
    if (offset < 0) return identical(body, await done.promise, events);
    events.opened?.(offset);

    await body.send(conn, (sent) => events.sent?.(sent));

    // END → DONE (§9.1 steps 5–7); a stream's END says its size (§9.8).
    const end = await body.end();
    const sha = end.sha256;
    if (req.detach === true) {
      const sent = conn.endDetached(end.announce ? { type: 'END_DETACHED', sha256: sha, size: end.size } : { type: 'END_DETACHED', sha256: sha });
      // The socket's backpressure is the next command's to wait for: this upload is over here.
      events.detached?.({ answer: sent.answer, size: end.size, sha256: sha });
      return sha;
    }
    conn.send(end.announce ? { type: 'END', sha256: sha, size: end.size } : { type: 'END', sha256: sha });
    events.finishing?.();
    const result = await done.promise;
    if (result.size !== end.size || result.sha256.length !== sha.length || !timingSafeEqual(result.sha256, sha)) {
      throw new UploadError('INTEGRITY_FAILED', 'the server confirmed a different size or SHA-256 than the file has');
    }
    return sha;
  } finally {
    off();
  }
}

/** DONE at OPEN: it must name the size and SHA-256 the OPEN offered (§9.1 step 7), or it is no answer to it. */
function identical(body: Outgoing, result: Done, events: UploadEvents): Buffer {
  const offered = body.open.sha256;
  if (offered === undefined || result.size !== body.open.size || result.sha256.length !== offered.length || !timingSafeEqual(result.sha256, offered)) {
    throw new UploadError('INTEGRITY_FAILED', 'the server answered DONE at once for another size or SHA-256 than the file has');
  }
  events.identical?.();
  return offered;
}
