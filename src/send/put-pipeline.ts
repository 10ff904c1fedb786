// Small files of a tree, pipelined (spec/PROTOCOL.md §9.11): each is read whole and sent as PUT,
// DATA, END without waiting for anything; the answers come back in order while later files go
// out. At most PUT_WINDOW_FILES files and PUT_WINDOW_BYTES bytes are unanswered at once (their
// bytes are kept so that a lost connection sends them again, whole, on the next one).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { hash, timingSafeEqual } from 'node:crypto';
import { StxError, UploadError, codeFromWire, errorFor, ResourceError } from '../proto/errors.js';
import { MAX_CONTROL_PAYLOAD_BYTES, MAX_PUT_BYTES, PUT_INLINE_OVERHEAD_BYTES } from '../proto/limits.js';
import { LocalFileError } from '../transfer/source.js';
import type { Connection, PutAnswer } from './connection.js';
import type { Retry } from './retry.js';
import type { Session } from './session.js';

/** Files sent and not yet answered: enough to cover a round trip and a server's sync batch. */
export const PUT_WINDOW_FILES = 1024;
/** Their bytes: what a lost connection costs again at most. */
export const PUT_WINDOW_BYTES = 16 * 1024 * 1024;

/** A file read whole, ready to PUT. */
export interface PutItem<E> {
  readonly entry: E;
  readonly name: string;
  readonly data: Buffer;
  readonly sha256: Buffer;
  readonly mtime: number;
  readonly mode: number;
}

/**
 * A larger file sent by OPEN and ended with END_DETACHED (§9.1 "Detached END", revision 1.7):
 * answered in the order of the PUTs. After a lost connection it goes again as a whole OPEN upload
 * offering its SHA-256, so a server that published it already answers DONE at once (§9.1
 * "Identical files"), and one that did not resumes it (§9.2).
 */
export interface DetachedItem<E> {
  readonly entry: E;
  readonly name: string;
  readonly size: number;
  readonly sha256: Buffer;
  /**
   * Sends the file again on `conn` (Ready) up to its DONE: PUT_DONE's fields then, or the error
   * that failed this file alone (the server closed the connection with it). Throws what fails
   * the connection.
   */
  resend(conn: Connection): Promise<Outcome>;
  /** Once it is answered: lets go of the file; `confirmed` if the server published it (checked). */
  close(confirmed: boolean): Promise<void>;
}

/** What a file in flight ends with: the server's answer, or the error a re-sent OPEN failed it with. */
type Outcome = PutAnswer | StxError;

/** A PUT's answer until it is sent (#sendPut sets the connection's). */
const NO_ANSWER_YET: Promise<Outcome> = Promise.resolve({ type: 'PUT_DONE', size: 0, sha256: Buffer.alloc(0) });

type PutFlight<E> = { readonly kind: 'put'; readonly item: PutItem<E>; answer: Promise<Outcome> };
type InFlight<E> =
  | PutFlight<E>
  /** `final` once a resend settled it: its answer is no longer the connection's. */
  | { readonly kind: 'detached'; readonly item: DetachedItem<E>; answer: Promise<Outcome>; final: boolean };

/**
 * Detached uploads unanswered at once: each holds its file open until answered. Within the
 * server's bound (stx-recv: 8 per connection, §9.11), so the server never stops reading for them.
 */
export const DETACHED_WINDOW_FILES = 8;

/** Whether a file of `size` bytes goes as PUT. */
export function fitsPut(size: number): boolean {
  return size <= MAX_PUT_BYTES;
}

/** Whether `item` goes as one PUT_INLINE record (§9.11 step 6), else as PUT, DATA, END. */
function fitsInline(item: PutItem<unknown>): boolean {
  return item.data.length + Buffer.byteLength(item.name, 'utf8') + PUT_INLINE_OVERHEAD_BYTES <= MAX_CONTROL_PAYLOAD_BYTES;
}

/** A file that cannot be opened or is no regular file: skipped, as the walk skips what it cannot read. */
export class Unreadable extends Error {}

/**
 * Reads the regular file `path` whole (at most MAX_PUT_BYTES); Unreadable, or LocalFileError if it
 * changed since the walk. Synchronous: for a file this small each asynchronous call (a thread-pool
 * trip) cost the main thread 50–100 µs, several times the system call itself (a profile of 10,000
 * files of 4 KiB), and the client has nothing else to do meanwhile but send what it read.
 */
export function readWhole(path: string, expectedSize: number): { data: Buffer; mtime: number; mode: number } {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO put in the file's place since the walk must not block the open.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new Unreadable(`cannot open ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Unreadable(`${path} is not a regular file`);
    if (st.size !== expectedSize || st.size > MAX_PUT_BYTES) throw new LocalFileError(`${path} changed while it was being sent; run stx-send again to send the new version`);
    const data = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < data.length) {
      const bytesRead = readSync(fd, data, got, data.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== data.length) throw new LocalFileError(`${path} changed while it was being sent; run stx-send again to send the new version`);
    return { data, mtime: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
  } finally {
    try {
      closeSync(fd);
    } catch {
      // Read already; nothing to lose.
    }
  }
}

export function sha256Of(data: Buffer): Buffer {
  return hash('sha256', data, 'buffer');
}

export interface PutCallbacks<E> {
  /** The server published the file (PUT_DONE checked). */
  done(item: { readonly entry: E }): void;
  /** The file alone failed (PUT_FAILED): the run goes on. */
  failed(item: { readonly entry: E }, err: StxError): void;
  /** Bytes handed to the connection. */
  sent(bytes: number): void;
}

export class PutPipeline<E> {
  readonly #inFlight: InFlight<E>[] = [];
  #bytes = 0;
  /** Detached uploads among the files in flight. */
  #detached = 0;
  /** Answers since the last lost connection: progress, for the retry policy. */
  #answered = 0;
  /** The connection the unanswered PUTs went out on. */
  #conn: Connection | null = null;

  constructor(
    private readonly session: Session,
    private readonly retry: Retry,
    private readonly on: PutCallbacks<E>,
  ) {}

  /**
   * Sends `item` once the window has room; throws what stops the run. Returns nothing when it
   * went at once on the connection of the PUTs before it (the usual case: no promise per file).
   */
  put(item: PutItem<E>): Promise<void> | undefined {
    return this.#hasRoom(item) ? this.#putNow(item) : this.#putLater(item);
  }

  async #putLater(item: PutItem<E>): Promise<void> {
    while (!this.#hasRoom(item)) await this.#settleOldest();
    await this.#putNow(item);
  }

  /** Sends `item` (the window has room), at once if the connection of the PUTs before it is Ready. */
  #putNow(item: PutItem<E>): Promise<void> | undefined {
    const flight = this.#add(item);
    const conn = this.session.readyNow;
    if (conn === null || conn !== this.#conn) return this.#send([flight]);
    try {
      if (this.#sendPut(conn, flight)) return undefined;
      return conn.drain().catch((err: unknown) => this.#resendAfter(err));
    } catch (err) {
      return this.#resendAfter(err);
    }
  }

  /** As #send after a failed connection: everything unanswered goes again on the next one. */
  async #resendAfter(err: unknown): Promise<void> {
    await this.#lost(err);
    await this.#send(this.#unsettled());
  }

  /** Whether the window has room for `item` (PUT_WINDOW_FILES, PUT_WINDOW_BYTES; one file always fits). */
  #hasRoom(item: PutItem<E>): boolean {
    return this.#inFlight.length < PUT_WINDOW_FILES && (this.#inFlight.length === 0 || this.#bytes + item.data.length <= PUT_WINDOW_BYTES);
  }

  #add(item: PutItem<E>): PutFlight<E> {
    const flight: PutFlight<E> = { kind: 'put', item, answer: NO_ANSWER_YET };
    this.#inFlight.push(flight);
    this.#bytes += item.data.length;
    return flight;
  }

  /** Sends a PUT on `conn` (Ready); whether the socket takes more now. */
  #sendPut(conn: Connection, f: PutFlight<E>): boolean {
    const { item } = f;
    const sent = fitsInline(item)
      ? conn.putInline({ type: 'PUT_INLINE', name: item.name, mtime: item.mtime, mode: item.mode, sha256: item.sha256, data: item.data })
      : conn.put({ type: 'PUT', name: item.name, size: item.data.length, mtime: item.mtime, mode: item.mode }, item.data, item.sha256);
    f.answer = sent.answer;
    this.on.sent(item.data.length);
    return sent.ok;
  }

  /** Waits for every answer. */
  async drain(): Promise<void> {
    while (this.#inFlight.length > 0) await this.#settleOldest();
  }

  /** Waits until another detached upload may start (DETACHED_WINDOW_FILES). */
  async detachRoom(): Promise<void> {
    while (this.#detached >= DETACHED_WINDOW_FILES) await this.#settleOldest();
  }

  /**
   * Takes an upload just ended with END_DETACHED on `conn`: its answer comes in the order of the
   * PUTs. If `conn` is another connection than the one the files in flight went on (the upload
   * reconnected meanwhile), they are sent again on it.
   */
  async adopt(item: DetachedItem<E>, answer: Promise<PutAnswer>, conn: Connection): Promise<void> {
    const earlier = this.#inFlight.slice();
    this.#inFlight.push({ kind: 'detached', item, answer, final: false });
    this.#detached++;
    if (conn === this.#conn) return;
    this.#conn = conn;
    if (earlier.length > 0) await this.#send(earlier);
  }

  /** Sends `flights` in order on a Ready connection, reconnecting as often as the retry policy lets. */
  async #send(flights: readonly InFlight<E>[]): Promise<void> {
    for (;;) {
      try {
        const conn = await this.session.ready();
        // A new connection (the last one failed meanwhile): everything unanswered goes on it again.
        if (conn !== this.#conn) flights = this.#unsettled();
        this.#conn = conn;
        let ok = true;
        let refused = false;
        for (const f of flights) {
          if (f.kind === 'detached') {
            // Its whole exchange, up to DONE, before the next command on this connection.
            const outcome = await f.item.resend(conn);
            f.answer = Promise.resolve(outcome);
            f.final = true;
            // Refused: the server closed the connection; the rest go on the next one.
            refused = outcome instanceof StxError;
            if (refused) break;
            continue;
          }
          ok = this.#sendPut(conn, f);
        }
        if (refused) {
          this.session.drop();
          flights = this.#unsettled();
          continue;
        }
        if (!ok) await conn.drain();
        return;
      } catch (err) {
        await this.#lost(err);
        // Everything unanswered goes again, in order, on the next connection.
        flights = this.#unsettled();
      }
    }
  }

  /** The files in flight whose answer is still the connection's to give. */
  #unsettled(): InFlight<E>[] {
    return this.#inFlight.filter((f) => f.kind === 'put' || !f.final);
  }

  /** The connection failed: drop it, wait as the retry policy says (or throw what stops the run). */
  async #lost(err: unknown): Promise<void> {
    this.session.drop(err);
    const progressed = this.#answered > 0;
    this.#answered = 0;
    await this.retry.after(err, progressed, this.session.handshakes);
  }

  async #settleOldest(): Promise<void> {
    const oldest = this.#inFlight[0];
    if (oldest === undefined) return;
    let answer: Outcome;
    try {
      answer = await oldest.answer;
    } catch (err) {
      await this.#resendAfter(err);
      return;
    }
    this.#inFlight.shift();
    this.#answered++;
    this.retry.reset();
    if (oldest.kind === 'detached') {
      this.#detached--;
      let confirmed = false;
      try {
        confirmed = this.#settleDetached(oldest.item, answer);
      } finally {
        await oldest.item.close(confirmed);
      }
      return;
    }
    const { item } = oldest;
    this.#bytes -= item.data.length;
    if (answer instanceof StxError) {
      this.on.failed(item, answer);
      return;
    }
    if (answer.type === 'PUT_FAILED') {
      const code = codeFromWire(answer.code);
      this.on.failed(item, code === undefined ? new ResourceError('INTERNAL', `server error #${answer.code}: ${answer.message}`) : errorFor(code, answer.message));
      return;
    }
    // As DONE (§9.1 step 7): the server must have published exactly this file. A PUTS_DONE gives
    // only the SHA-256, which binds the size too (§9.11 step 7).
    const sizeOk = answer.type === 'PUTS_DONE' || answer.size === item.data.length;
    if (!sizeOk || answer.sha256.length !== item.sha256.length || !timingSafeEqual(answer.sha256, item.sha256)) {
      throw new UploadError('INTEGRITY_FAILED', `the server confirmed a different size or SHA-256 for ${item.name} than the file has`);
    }
    this.on.done(item);
  }

  /** A detached upload's answer, checked as DONE (§9.1 step 7) against its size and SHA-256. */
  #settleDetached(item: DetachedItem<E>, answer: Outcome): boolean {
    if (answer instanceof StxError) {
      this.on.failed(item, answer);
      return false;
    }
    if (answer.type === 'PUT_FAILED') {
      const code = codeFromWire(answer.code);
      this.on.failed(item, code === undefined ? new ResourceError('INTERNAL', `server error #${answer.code}: ${answer.message}`) : errorFor(code, answer.message));
      return false;
    }
    const sizeOk = answer.type === 'PUTS_DONE' || answer.size === item.size;
    if (!sizeOk || answer.sha256.length !== item.sha256.length || !timingSafeEqual(answer.sha256, item.sha256)) {
      throw new UploadError('INTEGRITY_FAILED', `the server confirmed a different size or SHA-256 for ${item.name} than the file has`);
    }
    this.on.done(item);
    return true;
  }
}
