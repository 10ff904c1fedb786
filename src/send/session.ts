// One run's way to the server over as many connections as it takes (spec/PROTOCOL.md §9.1, §10):
// a Ready connection when asked, dialled (connect, handshake, trust) only when the last one is
// gone. Jobs of many commands (a tree, a stream) run them one after another on it; the retry
// policy is retry.ts's.
import { LocalError } from '../proto/errors.js';
import { HANDSHAKE_TIMEOUT_MS } from '../proto/limits.js';
import type { Connection, ConnectionOptions } from './connection.js';
import { dial, type HandshakeOptions } from './handshake.js';

/** What dial() takes: the handshake's options and the connection's, and how long a connect may take. */
export interface SessionOptions extends HandshakeOptions, ConnectionOptions {
  readonly connectTimeoutMs?: number | undefined;
}

export class Session {
  #conn: Connection | null = null;
  /** The dial under way, shared by whoever asks for a connection meanwhile. */
  #dialing: Promise<Connection> | null = null;
  /** Whether anyone but dialAhead() waits for the dial under way (then its failure is theirs). */
  #asked = false;
  /** A dial started by dialAhead() that failed before anyone asked: the next ready() throws it. */
  #aheadFailed: { readonly err: unknown } | null = null;
  /** Counts drop()s: a dial that was under way at one is not the session's connection. */
  #generation = 0;
  /** Handshakes that worked in this run: before the first, a refused connect is final (retry.ts). */
  handshakes = 0;
  /** Connections after the first. */
  reconnects = 0;
  fingerprint = '';

  constructor(private readonly opts: SessionOptions) {}

  /** The current connection if it is Ready now, else null (ready() would dial). */
  get readyNow(): Connection | null {
    const current = this.#conn;
    return current !== null && current.error === null && current.state === 'Ready' ? current : null;
  }

  /** Whether a connection is being dialled (connect and handshake) now. */
  get dialing(): boolean {
    return this.#dialing !== null;
  }

  /** A Ready connection: the current one, or a new one (connect and handshake, §6). */
  ready(): Promise<Connection> {
    const current = this.readyNow;
    if (current !== null) return Promise.resolve(current);
    const failed = this.#aheadFailed;
    if (failed !== null) {
      this.#aheadFailed = null;
      return Promise.reject(failed.err instanceof Error ? failed.err : new Error(String(failed.err)));
    }
    this.#asked = true;
    return this.#dialing ?? this.#startDial();
  }

  /**
   * Starts dialling now, so that the handshake's round trips overlap the caller's own work (a
   * tree's first files are read meanwhile); ready() then takes the connection, or the error.
   */
  dialAhead(): void {
    if (this.readyNow !== null || this.#dialing !== null || this.#aheadFailed !== null) return;
    this.#asked = false;
    const generation = this.#generation;
    this.#startDial().catch((err: unknown) => {
      if (!this.#asked && generation === this.#generation) this.#aheadFailed = { err };
    });
  }

  #startDial(): Promise<Connection> {
    const dialing = this.#dial().finally(() => {
      if (this.#dialing === dialing) this.#dialing = null;
    });
    this.#dialing = dialing;
    return dialing;
  }

  async #dial(): Promise<Connection> {
    this.drop();
    const generation = this.#generation;
    const opts = this.opts;
    const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    if (this.handshakes > 0) this.reconnects++;
    const { connection, fingerprint } = await dial({ ...opts, connectTimeoutMs: opts.connectTimeoutMs ?? handshakeMs, handshakeTimeoutMs: handshakeMs });
    if (generation !== this.#generation) {
      // Dropped meanwhile (the run ended): not this session's connection any more.
      connection.close();
      throw new LocalError('CONNECTION_LOST', 'the connection was dropped while it was being made');
    }
    this.handshakes++;
    this.fingerprint = fingerprint;
    this.#conn = connection;
    return connection;
  }

  /** Ends the current connection (because of `err`, which the server hears unless it is its own). */
  drop(err?: unknown): void {
    this.#conn?.close(err);
    this.#conn = null;
  }

  /** Ends the current connection and any dial under way: the end of the run. */
  close(): void {
    this.#generation++;
    this.#dialing = null;
    this.#aheadFailed = null;
    this.drop();
  }
}
