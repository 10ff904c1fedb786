// Small files of a tree, pipelined (spec/PROTOCOL.md §9.11): each is read whole and sent as PUT,
// DATA, END (or one PUT_INLINE) without waiting for anything; the answers come back in order while
// later files go out. Files read in one turn of the event loop go together as PUT_PACKs (step 8,
// revision 1.9): a header and one DATA for up to MAX_PACK_FILES files; a server of revision 1.8 or
// before refuses PUT_PACK (UNKNOWN_FRAME_TYPE), and the run goes on without packs. At most PUT_WINDOW_FILES files and PUT_WINDOW_BYTES bytes are unanswered at once (their
// bytes are kept so that a lost connection sends them again, whole, on the next one).
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { hash, timingSafeEqual } from 'node:crypto';
import { StxError, UploadError, codeFromWire, errorFor, ResourceError } from '../proto/errors.js';
import { MAX_CONTROL_PAYLOAD_BYTES, MAX_PACK_BYTES, MAX_PACK_FILES, MAX_PUT_BYTES, PUT_INLINE_OVERHEAD_BYTES } from '../proto/limits.js';
import { PACK_HEADER_BASE_BYTES, PACK_HEADER_FILE_BYTES, packFrame, type PackFile } from '../proto/pack.js';
import { LocalFileError } from '../transfer/source.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';
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
  /** Where `data` lies, released once the file is answered. */
  readonly slab?: Slab | undefined;
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

/**
 * `outcome` once the connection it went on answered it (a lost connection then does not send it
 * again); `answer` settles by then (a file in a pack: once the whole pack is answered), and
 * rejects if that connection fails first.
 */
type PutFlight<E> = { readonly kind: 'put'; readonly item: PutItem<E>; answer: Promise<unknown>; outcome: Outcome | undefined };
type InFlight<E> =
  | PutFlight<E>
  /** `final` once a resend settled it: its answer is no longer the connection's. */
  | { readonly kind: 'detached'; readonly item: DetachedItem<E>; answer: Promise<Outcome>; final: boolean };

/** `answer` is the flight's now; once it arrives, the flight is answered (kept for #settleOldest, never sent again). */
function answerWith(f: PutFlight<unknown>, answer: Promise<Outcome>): void {
  f.answer = answer;
  answer.then(
    (outcome) => {
      if (f.answer === answer) f.outcome = outcome;
    },
    () => undefined,
  );
}

/**
 * Detached uploads unanswered at once: each holds its file open until answered. Within the
 * server's bound (stx-recv: 8 per connection, §9.11), so the server never stops reading for them.
 */
export const DETACHED_WINDOW_FILES = 8;

/**
 * V8's young generation is collected after this many bytes sealed and sent in PUTs, as after an
 * upload's (transfer/sender.ts): node:crypto's ciphertext buffers for them are garbage by then,
 * and left to V8 they add up to 32 MiB whose pages malloc gives back and faults in again
 * (runtime/young-gc.ts).
 */
const YOUNG_GC_INTERVAL_BYTES = 2 * 1024 * 1024;
const youngGc = new YoungGenerationCollector(YOUNG_GC_INTERVAL_BYTES);

/** Turns of the event loop a pack waits for more files (PUT_PACK, §9.11 step 8) while the walk hands them over. */
const PACK_WAIT_TURNS = 4;

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

/** A small file's stat, taken from the open file (fstat). */
export interface SmallStat {
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
}

/**
 * Memory small files are read into, one after another: files read together lie side by side, so
 * that a pack's bytes are one piece (no copy into a DATA frame) and no file costs an allocation
 * of its own. A slab is used again once every file read into it is answered (`release`).
 */
export class Slab {
  readonly buffer: Buffer;
  used = 0;
  /** Files read into it and not yet answered. */
  holders = 0;
  constructor(
    bytes: number,
    private readonly freed: (slab: Slab) => void,
  ) {
    this.buffer = Buffer.allocUnsafeSlow(bytes);
  }
  /** One of its files is answered (never sent again). */
  release(): void {
    if (--this.holders === 0) this.freed(this);
  }
}

/** One slab holds a pack's worth of bytes (and any file that goes by PUT). */
export const SLAB_BYTES = MAX_PACK_BYTES;
/** Slabs kept for reuse once all their files are answered. */
const MAX_FREE_SLABS = 4;

/**
 * Reads small files whole into slabs. Memory: the files unanswered lie in consecutive slabs
 * (files are read and answered in the same order), so it is bounded by the window's bytes
 * (PUT_WINDOW_BYTES) plus two slabs, and MAX_FREE_SLABS slabs kept for reuse.
 */
export class SmallFiles {
  #slab: Slab | null = null;
  readonly #freed = (slab: Slab): void => {
    if (slab !== this.#slab && slab.buffer.length === SLAB_BYTES && this.#free.length < MAX_FREE_SLABS) {
      slab.used = 0;
      this.#free.push(slab);
    }
  };
  /**
   * Holds the first slab from the start: to V8 an empty array holds small integers until an
   * object goes in, and that change, made after V8 had optimized `read`, deoptimized it
   * (--trace-deopt: "wrong map").
   */
  readonly #free: Slab[] = [new Slab(SLAB_BYTES, this.#freed)];

  /**
   * Reads the regular file `path` whole (at most MAX_PUT_BYTES); Unreadable, or LocalFileError if
   * it changed since the walk. `expectedSize` is its size from the walk, or null when the walk did
   * not stat it (walk.ts `regular`): then a file above MAX_PUT_BYTES is not read, and its stat is
   * returned as `large`. Synchronous: for a file this small each asynchronous call (a thread-pool
   * trip) cost the main thread 50–100 µs, several times the system call itself (a profile of
   * 10,000 files of 4 KiB), and the client has nothing else to do meanwhile but send what it read.
   */
  read(path: string, expectedSize: number | null): { data: Buffer; slab: Slab; mtime: number; mode: number } | { large: SmallStat } {
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
      const mtime = Math.round(st.mtimeMs);
      const mode = st.mode & 0o7777;
      if (expectedSize === null && st.size > MAX_PUT_BYTES) return { large: { size: st.size, mtime, mode } };
      if ((expectedSize !== null && st.size !== expectedSize) || st.size > MAX_PUT_BYTES) throw changed(path);
      const slab = this.#room(st.size);
      const data = slab.buffer.subarray(slab.used, slab.used + st.size);
      let got = 0;
      while (got < data.length) {
        const bytesRead = readSync(fd, data, got, data.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== data.length) throw changed(path);
      slab.used += data.length;
      slab.holders++;
      return { data, slab, mtime, mode };
    } finally {
      try {
        closeSync(fd);
      } catch {
        // Read already; nothing to lose.
      }
    }
  }

  /** The slab the next `bytes` go into: the current one if they fit, else a free or new one. */
  #room(bytes: number): Slab {
    const slab = this.#slab;
    if (slab !== null && slab.used + bytes <= slab.buffer.length) return slab;
    // The slab left behind is free once its files are answered (at once if none is left).
    const next = (bytes <= SLAB_BYTES ? this.#free.pop() : undefined) ?? new Slab(Math.max(SLAB_BYTES, bytes), this.#freed);
    this.#slab = next;
    if (slab !== null && slab.holders === 0) this.#freed(slab);
    return next;
  }
}

function changed(path: string): LocalFileError {
  return new LocalFileError(`${path} changed while it was being sent; run stx-send again to send the new version`);
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

/**
 * The items' bytes, in order, as few pieces as they make: files read one after another into a
 * slab lie side by side and become one piece (sealed as they lie, never copied into one buffer).
 */
export function adjacentRuns(items: readonly { readonly data: Buffer }[]): Buffer[] {
  const runs: Buffer[] = [];
  let start: Buffer | null = null;
  let length = 0;
  for (const { data } of items) {
    if (data.length === 0) continue;
    if (start !== null && data.buffer === start.buffer && data.byteOffset === start.byteOffset + length) {
      length += data.length;
      continue;
    }
    if (start !== null) runs.push(Buffer.from(start.buffer, start.byteOffset, length));
    start = data;
    length = data.length;
  }
  if (start !== null) runs.push(Buffer.from(start.buffer, start.byteOffset, length));
  return runs;
}

/**
 * The PUT_PACK that starts at `flights[start]`: where it ends (exclusive) and its data bytes,
 * within #addToPack's bounds (MAX_PACK_FILES, MAX_PACK_BYTES, the header within
 * MAX_CONTROL_PAYLOAD_BYTES). A function of its own because it loops over files: inside
 * PutPipeline#sendPuts the loop made V8 optimize #sendPuts with all it calls (the largest
 * compile of a run), up to three times a run as code first taken later deoptimized it
 * (--trace-opt --trace-deopt); alone, it is small to optimize and #sendPuts, run once a pack, is not.
 */
function packAt(flights: readonly PutFlight<unknown>[], start: number): { end: number; bytes: number } {
  let end = start;
  let bytes = 0;
  let header = PACK_HEADER_BASE_BYTES;
  for (; end < flights.length && end - start < MAX_PACK_FILES; end++) {
    const item = (flights[end] as PutFlight<unknown>).item;
    const more = PACK_HEADER_FILE_BYTES + Buffer.byteLength(item.name, 'utf8');
    if (bytes + item.data.length > MAX_PACK_BYTES || header + more > MAX_CONTROL_PAYLOAD_BYTES) break;
    bytes += item.data.length;
    header += more;
  }
  return { end, bytes };
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
  /** Files in flight not yet sent: the pack being filled this turn, sent at the next (#flushPack). */
  readonly #pack: PutFlight<E>[] = [];
  #packBytes = 0;
  #packHeader = PACK_HEADER_BASE_BYTES;
  #packDue = false;
  /** Files in the pack at the last turn #schedulePack looked. */
  #packAtTurn = 0;
  /** Set while the connection's socket takes no more (a pack found it full): put() waits for it. */
  #draining: Promise<void> | null = null;
  /** Whether files go in PUT_PACKs: until a server refused one as unknown (revision ≤ 1.8). */
  #packs: boolean;

  constructor(
    private readonly session: Session,
    private readonly retry: Retry,
    private readonly on: PutCallbacks<E>,
    packs = true,
  ) {
    this.#packs = packs;
  }

  /**
   * Sends `item` once the window has room; throws what stops the run. Returns nothing when it
   * went at once on the connection of the PUTs before it (the usual case: no promise per file).
   */
  put(item: PutItem<E>): Promise<void> | undefined {
    // While the socket takes no more (a pack found it full), the caller reads no more files: what
    // it holds stays bounded, and the files read after the drain go together in the next pack.
    const draining = this.#draining;
    if (draining !== null) return draining.then(() => this.put(item));
    if (!this.#hasRoom(item)) this.#settleAnswered();
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
    if (conn === null && this.#conn === null && this.#packs && this.session.dialing) {
      // The first connection is still being made (Session.dialAhead): the files read meanwhile
      // wait in the pack, within the window, and go as soon as it is Ready (the next put, or
      // #sendPending when the window is full or the walk is done).
      this.#addToPack(flight);
      return undefined;
    }
    if (conn === null || conn !== this.#conn) return this.#send([...this.#takePack(), flight]);
    if (this.#packs) {
      this.#addToPack(flight);
      // A pack that found the socket full: the caller reads no more files until it drained.
      return this.#draining ?? undefined;
    }
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
    const flight: PutFlight<E> = { kind: 'put', item, answer: NO_ANSWER_YET, outcome: undefined };
    this.#inFlight.push(flight);
    this.#bytes += item.data.length;
    return flight;
  }

  /**
   * Puts `flight` in the pack being filled, sending that pack first if the file would not fit in
   * it (MAX_PACK_FILES, MAX_PACK_BYTES, the header within MAX_CONTROL_PAYLOAD_BYTES); the pack
   * leaves at the next turn of the event loop at the latest.
   */
  #addToPack(flight: PutFlight<E>): void {
    const header = PACK_HEADER_FILE_BYTES + Buffer.byteLength(flight.item.name, 'utf8');
    if (this.#pack.length === MAX_PACK_FILES || this.#packBytes + flight.item.data.length > MAX_PACK_BYTES || this.#packHeader + header > MAX_CONTROL_PAYLOAD_BYTES) {
      this.#flushPack();
    }
    this.#pack.push(flight);
    this.#packBytes += flight.item.data.length;
    this.#packHeader += header;
    this.#schedulePack();
  }

  /**
   * The pack being filled leaves at the next turn of the event loop, or, while the socket drains,
   * at the turn after the drain (the files read meanwhile join it).
   */
  #schedulePack(turns = 0): void {
    if (this.#packDue) return;
    this.#packDue = true;
    setImmediate(() => {
      const draining = this.#draining;
      if (draining !== null) {
        void draining.then(() => {
          this.#packDue = false;
          if (this.#pack.length > 0) this.#schedulePack();
        });
        return;
      }
      this.#packDue = false;
      // The walk hands over 64 entries a turn: a pack waits a few turns for more (while files came
      // in the last one), so that it holds up to MAX_PACK_FILES, and leaves once none came.
      const grew = this.#pack.length > this.#packAtTurn;
      this.#packAtTurn = this.#pack.length;
      if (grew && turns < PACK_WAIT_TURNS) {
        this.#schedulePack(turns + 1);
        return;
      }
      this.#flushPack();
    });
  }

  /** The files of the pack being filled, which is then empty. */
  #takePack(): PutFlight<E>[] {
    // The same array stays (see SmallFiles #free): a new empty one deoptimized #addToPack.
    const pack = this.#pack.splice(0);
    this.#packBytes = 0;
    this.#packHeader = PACK_HEADER_BASE_BYTES;
    this.#packAtTurn = 0;
    return pack;
  }

  /**
   * Sends the pack being filled on the connection of the files before it; false (and nothing
   * sent) if that connection is not Ready now: then #sendPending sends it, with the files before
   * it if the connection was lost.
   */
  #flushPack(): boolean {
    if (this.#pack.length === 0) return true;
    const conn = this.session.readyNow;
    if (conn === null || conn !== this.#conn) return false;
    const flights = this.#takePack();
    try {
      if (!this.#sendPuts(conn, flights) && this.#draining === null) {
        this.#draining = conn
          .drain()
          .catch(() => undefined)
          .finally(() => (this.#draining = null));
      }
    } catch (err) {
      // The connection failed: the files not sent wait for it as those sent do (#settleOldest sends them again).
      const failed = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      failed.catch(() => undefined);
      for (const f of flights) if (f.answer === NO_ANSWER_YET) f.answer = failed;
    }
    return true;
  }

  /** Sends what waits in the pack being filled, before anything waits for an answer. */
  async #sendPending(): Promise<void> {
    if (!this.#flushPack()) await this.#send(this.#takePack());
  }

  /**
   * Sends consecutive PUTs on `conn` (Ready): as PUT_PACKs of two files or more when packs are on
   * (each within the bounds of #addToPack), else one by one; whether the socket takes more now.
   */
  #sendPuts(conn: Connection, flights: readonly PutFlight<E>[]): boolean {
    let ok = true;
    let i = 0;
    while (i < flights.length) {
      const pack = this.#packs ? packAt(flights, i) : { end: i + 1, bytes: 0 };
      // A pack has two files or more, and at least one byte of data (§9.11 step 8).
      if (pack.end - i >= 2 && pack.bytes > 0) {
        ok = this.#sendPack(conn, flights.slice(i, pack.end), pack.bytes);
        i = pack.end;
      } else {
        ok = this.#sendPut(conn, flights[i] as PutFlight<E>);
        i++;
      }
    }
    return ok;
  }

  /** Sends `flights` as one PUT_PACK and its DATA (§9.11 step 8); whether the socket takes more now. */
  #sendPack(conn: Connection, flights: readonly PutFlight<E>[], bytes: number): boolean {
    // A loop, not flights.map: map's result changed elements kind between calls, and deoptimized
    // this code and adjacentRuns each run ("wrong map", --trace-deopt).
    const files: (Omit<PackFile, 'start'> & { readonly data: Buffer })[] = [];
    for (const { item } of flights) files.push({ name: item.name, size: item.data.length, mtime: item.mtime, mode: item.mode, sha256: item.sha256, data: item.data });
    // Each answer is the file's as it is read (no promise per file); the pack's promise settles once all are.
    const sent = conn.putPack(packFrame(files), files.length, adjacentRuns(files), (i, outcome) => {
      const f = flights[i];
      if (f !== undefined && f.answer === sent.answered) f.outcome = outcome;
    });
    for (const f of flights) f.answer = sent.answered;
    youngGc.dropped(bytes);
    this.on.sent(bytes);
    return sent.ok;
  }

  /** Sends a PUT on `conn` (Ready); whether the socket takes more now. */
  #sendPut(conn: Connection, f: PutFlight<E>): boolean {
    const { item } = f;
    const sent = fitsInline(item)
      ? conn.putInline({ type: 'PUT_INLINE', name: item.name, mtime: item.mtime, mode: item.mode, sha256: item.sha256, data: item.data })
      : conn.put({ type: 'PUT', name: item.name, size: item.data.length, mtime: item.mtime, mode: item.mode }, item.data, item.sha256);
    answerWith(f, sent.answer);
    youngGc.dropped(item.data.length);
    this.on.sent(item.data.length);
    return sent.ok;
  }

  /** Waits for every answer. */
  async drain(): Promise<void> {
    await this.#sendPending();
    while (this.#inFlight.length > 0) await this.#settleOldest();
  }

  /** Waits until another detached upload may start (DETACHED_WINDOW_FILES). */
  async detachRoom(): Promise<void> {
    // The pack being filled goes before the detached upload's OPEN, in the order of the answers.
    await this.#sendPending();
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
        let puts: PutFlight<E>[] = [];
        for (const f of flights) {
          if (f.kind === 'put') {
            puts.push(f);
            continue;
          }
          if (puts.length > 0) ok = this.#sendPuts(conn, puts);
          puts = [];
          // Its whole exchange, up to DONE, before the next command on this connection.
          const outcome = await f.item.resend(conn);
          f.answer = Promise.resolve(outcome);
          f.final = true;
          // Refused: the server closed the connection; the rest go on the next one.
          refused = outcome instanceof StxError;
          if (refused) break;
        }
        if (!refused && puts.length > 0) ok = this.#sendPuts(conn, puts);
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

  /** The files in flight whose answer is still the connection's to give (the pack being filled is then empty). */
  #unsettled(): InFlight<E>[] {
    // The pack being filled is among them: it goes with them, not again later.
    this.#takePack();
    return this.#inFlight.filter((f) => (f.kind === 'put' && f.outcome === undefined) || (f.kind === 'detached' && !f.final));
  }

  /** The connection failed: drop it, wait as the retry policy says (or throw what stops the run). */
  async #lost(err: unknown): Promise<void> {
    this.session.drop(err);
    // A server of revision 1.8 or before does not know PUT_PACK (§9.11 step 8): the same files go
    // again, without packs, on the next connection (at once: nothing failed but our choice).
    if (this.#packs && err instanceof StxError && err.code === 'UNKNOWN_FRAME_TYPE') {
      this.#packs = false;
      return;
    }
    const progressed = this.#answered > 0;
    this.#answered = 0;
    await this.retry.after(err, progressed, this.session.handshakes);
  }

  async #settleOldest(): Promise<void> {
    const oldest = this.#inFlight[0];
    if (oldest === undefined) return;
    // Not sent yet: it is in the pack being filled, which goes now (only then, so that waiting
    // for room in the window does not send packs of one file).
    if (oldest.answer === NO_ANSWER_YET) await this.#sendPending();
    let answer: Outcome;
    if (oldest.kind === 'put' && oldest.outcome !== undefined) {
      // Answered (a pack's promise may still reject: its connection failed before the pack's last answer).
      answer = oldest.outcome;
    } else {
      try {
        const got = await oldest.answer;
        if (oldest.kind === 'put') {
          if (oldest.outcome === undefined) throw new ResourceError('INTERNAL', `no answer recorded for ${oldest.item.name}`);
          answer = oldest.outcome;
        } else answer = got as Outcome;
      } catch (err) {
        if (err instanceof ResourceError && err.code === 'INTERNAL') throw err;
        await this.#resendAfter(err);
        return;
      }
    }
    this.#inFlight.shift();
    this.#answered++;
    this.retry.reset();
    if (oldest.kind === 'put') {
      this.#settlePut(oldest.item, answer);
      return;
    }
    this.#detached--;
    let confirmed = false;
    try {
      confirmed = this.#settleDetached(oldest.item, answer);
    } finally {
      await oldest.item.close(confirmed);
    }
  }

  /**
   * Settles, without waiting, the answered PUTs at the head of the window (usually many: answers
   * come in runs), so that put() makes room without a promise per file.
   */
  #settleAnswered(): void {
    for (;;) {
      const oldest = this.#inFlight[0];
      if (oldest === undefined || oldest.kind !== 'put' || oldest.outcome === undefined) return;
      this.#inFlight.shift();
      this.#answered++;
      this.retry.reset();
      this.#settlePut(oldest.item, oldest.outcome);
    }
  }

  /** A PUT's answer (taken off the window), checked as DONE (§9.1 step 7) against its size and SHA-256. */
  #settlePut(item: PutItem<E>, answer: Outcome): void {
    this.#bytes -= item.data.length;
    item.slab?.release();
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
