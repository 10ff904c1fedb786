// The sending half of the data path (spec/PROTOCOL.md §9.1, §9.2): a DataSource's bytes as DATA
// frames from the server's offset, as fast as the connection takes them, the whole-stream SHA-256
// in stream order, and what was sent against what the server acknowledged.
import { createHash, type Hash } from 'node:crypto';
import { CryptoError, UploadError } from '../proto/errors.js';
import { DATA_HEADER_BYTES } from '../proto/limits.js';
import { YoungGenerationCollector } from '../runtime/young-gc.js';
import { LocalFileError, type DataSource } from './source.js';

/** Where DATA goes: a connection, as the data path sees it. */
export interface DataSink {
  /** Seals and queues DATA at `offset` (§2.2); false once the socket's buffer is full: await drain(). */
  sendData(offset: number, chunk: Buffer): boolean;
  /** Resolves once the socket takes more; rejects if the connection failed. */
  drain(): Promise<void>;
  /** Whether a record with a body of `bodyBytes` would reach the key's limits (§8). */
  nearKeyLimit(bodyBytes: number): boolean;
}

/** Snapshots of the running hash every SNAPSHOT_EVERY bytes, so a resume re-reads little (§9.2). */
const SNAPSHOT_EVERY_BYTES = 64 * 1024 * 1024;
const MAX_SNAPSHOTS = 64;

/**
 * The client collects V8's young generation after this many bytes sealed and sent: the ciphertext
 * buffers node:crypto allocated for them are garbage by then (runtime/young-gc.ts).
 */
const YOUNG_GC_INTERVAL_BYTES = 8 * 1024 * 1024;
const youngGc = new YoungGenerationCollector(YOUNG_GC_INTERVAL_BYTES);

/** The SHA-256 of a source's bytes in stream order, resumable at any offset. */
class StreamHash {
  private hash: Hash = createHash('sha256');
  private at = 0;
  private readonly snapshots = new Map<number, Hash>([[0, createHash('sha256')]]);

  constructor(private readonly source: DataSource) {}

  get offset(): number {
    return this.at;
  }

  /** Positions the hash at `offset`: from the nearest snapshot at or below it, re-reading the rest. */
  async seek(offset: number): Promise<void> {
    if (offset === this.at) return;
    if (!this.source.seekable) {
      throw new LocalFileError(`${this.source.label} cannot be read again: resuming at ${offset} needs it from ${this.at}`);
    }
    let base = 0;
    for (const k of this.snapshots.keys()) if (k <= offset && k > base) base = k;
    const snap = this.snapshots.get(base);
    if (snap === undefined) throw new Error('hash snapshot missing');
    this.hash = snap.copy();
    this.at = base;
    while (this.at < offset) {
      const chunk = await this.source.read(this.at);
      if (chunk.length === 0) throw shorter(this.source);
      this.update(chunk.subarray(0, Math.min(chunk.length, offset - this.at)));
    }
  }

  update(data: Buffer): void {
    let rest = data;
    while (rest.length > 0) {
      const toSnap = SNAPSHOT_EVERY_BYTES - (this.at % SNAPSHOT_EVERY_BYTES);
      const piece = rest.length > toSnap ? rest.subarray(0, toSnap) : rest;
      this.hash.update(piece);
      this.at += piece.length;
      rest = rest.subarray(piece.length);
      if (this.at % SNAPSHOT_EVERY_BYTES === 0 && !this.snapshots.has(this.at)) {
        this.snapshots.set(this.at, this.hash.copy());
        if (this.snapshots.size > MAX_SNAPSHOTS) {
          const oldest = [...this.snapshots.keys()].find((k) => k !== 0);
          if (oldest !== undefined) this.snapshots.delete(oldest);
        }
      }
    }
  }

  digest(): Buffer {
    return this.hash.copy().digest();
  }
}

/**
 * One source's way to the server, over as many connections as it takes: each starts at the
 * server's offset (begin), sends to the end (send), and checks the server's ACKs against what it
 * sent (acknowledge). The hash lives across connections, so a resume re-reads at most one
 * snapshot interval.
 */
export class Sender {
  readonly #hash: StreamHash;
  #sent = 0;
  #acked = 0;

  constructor(readonly source: DataSource) {
    this.#hash = new StreamHash(source);
  }

  /** Bytes handed to the connection: the stream's offset plus what followed it. */
  get sent(): number {
    return this.#sent;
  }

  /** The highest offset the server acknowledged durable on this connection. */
  get acked(): number {
    return this.#acked;
  }

  /** A connection's stream starts at the server's `offset` (OPEN_OK, §9.1): nothing beyond it sent or held yet. */
  begin(offset: number): void {
    this.#sent = offset;
    this.#acked = offset;
  }

  /** ACK (§4, §9.1): checked by checkAck(). */
  acknowledge(offset: number): void {
    checkAck(offset, this.#acked, this.#sent);
    this.#acked = offset;
  }

  /**
   * DATA from begin()'s offset to the end of the source (§9.1 step 3), reading one chunk ahead
   * while the last one is sealed and sent, waiting whenever the socket is full. `onSent` hears
   * the offset once the hash is there and after every chunk.
   */
  async send(sink: DataSink, onSent: (sent: number) => void): Promise<void> {
    const { source } = this;
    const size = source.identity.size;
    await this.#hash.seek(this.#sent);
    onSent(this.#sent);
    let pending = source.read(this.#sent);
    try {
      while (this.#sent < size) {
        const chunk = await pending;
        const n = chunk.length;
        if (n === 0) throw shorter(source);
        this.#hash.update(chunk);
        if (sink.nearKeyLimit(1 + DATA_HEADER_BYTES + n)) throw new CryptoError('KEY_LIMIT', 'per-connection key limit reached; reconnecting with new keys');
        const flowing = sink.sendData(this.#sent, chunk);
        youngGc.dropped(n);
        this.#sent += n;
        pending = source.read(this.#sent);
        if (!flowing) await sink.drain();
        onSent(this.#sent);
      }
    } finally {
      // The source reuses its buffers: no read may still land in one when the next attempt reads.
      await pending.catch(() => undefined);
    }
  }

  /** The SHA-256 of everything sent, once send() reached the end (END, §9.1 step 5). */
  digest(): Buffer {
    return this.#hash.digest();
  }
}

function shorter(source: DataSource): LocalFileError {
  return new LocalFileError(`${source.label} became shorter while uploading`);
}

/**
 * An ACK says what is durable (§4, §9.1): never more than was sent, never less than before
 * (`acked`). A server that says otherwise could fake progress and keep the retries from ever
 * running out: BAD_OFFSET.
 */
export function checkAck(offset: number, acked: number, sent: number): void {
  if (offset < acked || offset > sent) {
    throw new UploadError('BAD_OFFSET', `the server acknowledged offset ${offset}, outside what it may hold (${acked} to the ${sent} bytes sent)`);
  }
}
