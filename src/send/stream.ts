// The stdin job of stx-send (spec/PROTOCOL.md §9.8): `stx-send HOST PORT - --as NAME` uploads a
// stream of unknown length. Its bytes are kept until acknowledged (transfer/stream-sender.ts), so
// a lost connection resumes within this run; a new run is a new stream (its own random id).
import type { Readable } from 'node:stream';
import { StreamSender, STREAM_WINDOW_BYTES } from '../transfer/stream-sender.js';
import { upload } from './commands/upload.js';
import { Retry, type RetryOptions } from './retry.js';
import { Session, type SessionOptions } from './session.js';

export interface StreamOptions extends SessionOptions, RetryOptions {
  readonly input: Readable;
  readonly name: string;
  /** Modification time and mode the file gets on the server (default: now, 0o644 less the server's umask). */
  readonly mtime?: number;
  readonly mode?: number;
  readonly windowBytes?: number;
  readonly onProgress?: ((sent: number, acked: number, reconnects: number) => void) | undefined;
}

export interface StreamResult {
  readonly name: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly seconds: number;
  readonly bytes_per_second: number;
  readonly reconnects: number;
  readonly server_fingerprint: string;
}

export async function sendStream(opts: StreamOptions): Promise<StreamResult> {
  const started = Date.now();
  const session = new Session(opts);
  const retry = new Retry(opts);
  const stream = new StreamSender(opts.input, opts.windowBytes ?? STREAM_WINDOW_BYTES);
  const mtime = opts.mtime ?? Date.now();
  const body = {
    open: { size: 0, mtime, mode: opts.mode ?? 0o644, stream: stream.id },
    begin: (offset: number) => stream.begin(offset),
    acknowledge: (offset: number) => stream.acknowledge(offset),
    send: stream.send.bind(stream),
    end: () => stream.end(),
  };
  let acked = 0;
  try {
    for (;;) {
      const before = acked;
      try {
        const conn = await session.ready();
        const sha = await upload(
          conn,
          { name: opts.name, body },
          {
            opened: (offset) => (acked = Math.max(acked, offset)),
            acked: (offset) => (acked = Math.max(acked, offset)),
            sent: (sent) => opts.onProgress?.(sent, acked, session.reconnects),
          },
        );
        const seconds = (Date.now() - started) / 1000;
        return {
          name: opts.name,
          bytes: stream.read,
          sha256: sha.toString('hex'),
          seconds,
          bytes_per_second: Math.round(stream.read / Math.max(seconds, 1e-6)),
          reconnects: session.reconnects,
          server_fingerprint: session.fingerprint,
        };
      } catch (err) {
        session.drop(err);
        await retry.after(err, acked > before, session.handshakes);
      }
    }
  } finally {
    session.drop();
  }
}
