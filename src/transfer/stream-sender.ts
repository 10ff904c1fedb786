// The sending half for a stream of unknown length (spec/PROTOCOL.md §9.8), e.g. stdin: its bytes
// are read once, hashed once, and kept in memory until the server acknowledges them durable (ACK),
// so that a connection lost mid-stream resumes from OPEN_OK's offset within the same run. The
// window is bounded: while it is full nothing more is read or sent until an ACK frees some.
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { CryptoError, UploadError } from '../proto/errors.js';
import { DATA_HEADER_BYTES, MAX_DATA_CHUNK_BYTES, STREAM_ID_BYTES } from '../proto/limits.js';
import { checkAck, type DataSink } from './sender.js';
import { LocalFileError } from './source.js';

/** Bytes read but not yet acknowledged durable, at most (stx-send's window, §9.8). */
export const STREAM_WINDOW_BYTES = 64 * 1024 * 1024;
/**
 * The smallest window: above the 16 MiB after which a server must ACK (§9.1 step 4), plus a
 * chunk, or a full window could wait for an ACK that waits for more data (§9.8).
 */
const MIN_STREAM_WINDOW_BYTES = 16 * 1024 * 1024 + MAX_DATA_CHUNK_BYTES;

/** How often a wait for our own input tells the connection it is not the server that is slow. */
const INPUT_WAIT_TICK_MS = 1000;

/** What the stream needs of a connection besides DATA: its end, and our own slowness excused (§9.6). */
export interface StreamSink extends DataSink {
  onFailure(cb: (e: Error) => void): () => void;
  /** The error that ended the connection, if it ended. */
  readonly error: Error | null;
  /** Called while we wait for our input: the server is not what keeps the upload from moving. */
  progressed(): void;
}

export class StreamSender {
  /** OPEN's `stream`: random per run, so two runs never resume each other (§9.2). */
  readonly id = randomBytes(STREAM_ID_BYTES);
  readonly #input: Readable;
  readonly #windowBytes: number;
  readonly #hash = createHash('sha256');
  /** Chunks read and not yet acknowledged, in order; the first starts at #windowStart. */
  readonly #window: Buffer[] = [];
  #windowStart = 0;
  /** Bytes read from the input so far (the end of the window). */
  #read = 0;
  #sent = 0;
  #acked = 0;
  #ended = false;
  #failed: Error | null = null;
  #digest: Buffer | null = null;
  /** Wakes a send() waiting for room in the window. */
  #wake: (() => void) | null = null;

  constructor(input: Readable, windowBytes = STREAM_WINDOW_BYTES) {
    this.#input = input;
    this.#windowBytes = Math.max(windowBytes, MIN_STREAM_WINDOW_BYTES);
    input.on('end', () => {
      this.#ended = true;
      this.#wake?.();
    });
    input.on('error', (err) => {
      this.#failed = err;
      this.#wake?.();
    });
  }

  /** Bytes read from the input so far. */
  get read(): number {
    return this.#read;
  }

  /** Bytes handed to the connection on this attempt (its offset plus what followed). */
  get sent(): number {
    return this.#sent;
  }

  /** The most bytes held at once (for the report). */
  get windowBytes(): number {
    return this.#windowBytes;
  }

  /** Bytes held in memory now. */
  get held(): number {
    return this.#read - this.#windowStart;
  }

  /** OPEN_OK: the server holds `offset` bytes; the stream goes on from there if the window still has it. */
  begin(offset: number): void {
    if (offset < this.#windowStart || offset > this.#read) {
      throw new UploadError(
        'BAD_OFFSET',
        `the server holds ${offset} bytes of the stream, but only bytes ${this.#windowStart} to ${this.#read} are still here: a stream cannot be rewound`,
      );
    }
    this.#drop(offset);
    this.#sent = offset;
    this.#acked = offset;
  }

  /** ACK: never more than was sent, never less than before (checkAck, as Sender.acknowledge). */
  acknowledge(offset: number): void {
    checkAck(offset, this.#acked, this.#sent);
    this.#acked = offset;
    this.#drop(offset);
    this.#wake?.();
  }

  /** Sends what the window holds from #sent on, then reads and sends the rest of the input. */
  async send(sink: StreamSink, onSent: (sent: number) => void): Promise<void> {
    onSent(this.#sent);
    let at = this.#windowStart;
    for (const chunk of [...this.#window]) {
      const end = at + chunk.length;
      if (end > this.#sent) await this.#put(sink, chunk.subarray(Math.max(0, this.#sent - at)), onSent);
      at = end;
    }
    for (;;) {
      while (this.#read - this.#acked >= this.#windowBytes) await this.#wait(sink, false);
      const chunk = await this.#next(sink);
      if (chunk === null) return;
      this.#hash.update(chunk);
      this.#window.push(chunk);
      this.#read += chunk.length;
      await this.#put(sink, chunk, onSent);
    }
  }

  /** END's fields once send() reached the end of the input. */
  end(): Promise<{ sha256: Buffer; size: number; announce: true }> {
    this.#digest ??= this.#hash.digest();
    return Promise.resolve({ sha256: this.#digest, size: this.#read, announce: true });
  }

  async #put(sink: StreamSink, chunk: Buffer, onSent: (sent: number) => void): Promise<void> {
    if (sink.nearKeyLimit(1 + DATA_HEADER_BYTES + chunk.length)) throw new CryptoError('KEY_LIMIT', 'per-connection key limit reached; reconnecting with new keys');
    const flowing = sink.sendData(this.#sent, chunk);
    this.#sent += chunk.length;
    if (!flowing) await sink.drain();
    onSent(this.#sent);
  }

  /** The next chunk of input (at most one DATA chunk), or null at its end. */
  async #next(sink: StreamSink): Promise<Buffer | null> {
    for (;;) {
      if (this.#failed !== null) throw new LocalFileError(`reading the input failed: ${this.#failed.message}`);
      const got: unknown = this.#input.read();
      if (Buffer.isBuffer(got)) {
        if (got.length <= MAX_DATA_CHUNK_BYTES) return got;
        this.#input.unshift(got.subarray(MAX_DATA_CHUNK_BYTES));
        return got.subarray(0, MAX_DATA_CHUNK_BYTES);
      }
      if (this.#ended) return null;
      await this.#wait(sink, true);
    }
  }

  /** Until the input has more (or ends), or an ACK frees room; rejects when the connection fails. */
  #wait(sink: StreamSink, input: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (sink.error !== null) {
        reject(sink.error);
        return;
      }
      const tick = input ? setInterval(() => sink.progressed(), INPUT_WAIT_TICK_MS) : undefined;
      const done = (): void => {
        clearInterval(tick);
        off();
        this.#input.off('readable', done);
        this.#wake = null;
        resolve();
      };
      const off = sink.onFailure((err) => {
        clearInterval(tick);
        this.#input.off('readable', done);
        this.#wake = null;
        reject(err);
      });
      this.#wake = done;
      if (input) this.#input.once('readable', done);
    });
  }

  /** Forgets the bytes below `offset`: the server holds them durably. */
  #drop(offset: number): void {
    for (;;) {
      const first = this.#window[0];
      if (first === undefined || this.#windowStart + first.length > offset) return;
      this.#window.shift();
      this.#windowStart += first.length;
    }
  }
}
