// One run's way to the server over as many connections as it takes (spec/PROTOCOL.md §9.1, §10):
// a Ready connection when asked, dialled (connect, handshake, trust) only when the last one is
// gone. Jobs of many commands (a tree, a stream) run them one after another on it; the retry
// policy is retry.ts's.
import { HANDSHAKE_TIMEOUT_MS } from '../proto/limits.js';
import type { Connection, ConnectionOptions } from './connection.js';
import { dial, type HandshakeOptions } from './handshake.js';

/** What dial() takes: the handshake's options and the connection's, and how long a connect may take. */
export interface SessionOptions extends HandshakeOptions, ConnectionOptions {
  readonly connectTimeoutMs?: number | undefined;
}

export class Session {
  #conn: Connection | null = null;
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

  /** A Ready connection: the current one, or a new one (connect and handshake, §6). */
  async ready(): Promise<Connection> {
    const current = this.readyNow;
    if (current !== null) return current;
    this.drop();
    const opts = this.opts;
    const handshakeMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    if (this.handshakes > 0) this.reconnects++;
    const { connection, fingerprint } = await dial({ ...opts, connectTimeoutMs: opts.connectTimeoutMs ?? handshakeMs, handshakeTimeoutMs: handshakeMs });
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
}
