// A client that floods stx-recv with handshakes from one source address (issue 14, item 7): as
// many connections at once as `width`, each sending its preamble and CLIENT_HELLO and, when
// SERVER_HELLO comes back, a KEY_EXCHANGE of random bytes (the daemon decrypts them all the same,
// spec §7.1), then closing; a connection refused with TOO_MANY_CONNECTIONS closes at once. Every
// attempt starts the next one, until `stop()` or the deadline. No cryptography on this side: the
// CLIENT_HELLO is a fixed valid one and the KEY_EXCHANGE random, so the flood costs the daemon
// what a real one would and this process little.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { FrameChannel } from '../../src/crypto/channel.js';
import { encodeFrame } from '../../src/proto/codec.js';
import { codeFromWire } from '../../src/proto/errors.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import { sampleFrame } from './raw-client.js';

export interface FloodCounts {
  /** Connections opened. */
  attempts: number;
  /** Refused in plaintext with TOO_MANY_CONNECTIONS. */
  refused: number;
  /** Got SERVER_HELLO and sent KEY_EXCHANGE: the daemon had to decrypt. */
  keyExchanges: number;
  /** Anything else (a reset, a timeout, another answer). */
  other: number;
  /** Milliseconds the flood ran (until stop() or the deadline). */
  ms: number;
}

export interface Flood {
  readonly counts: FloodCounts;
  /** Stops: no new attempts, open connections cut; resolves once every one is closed. */
  stop(): Promise<FloodCounts>;
}

/** Longest one attempt may take before it is given up. */
const ATTEMPT_TIMEOUT_MS = 5000;

/** Starts the flood against 127.0.0.1:`port` from `from` (a local address), for at most `maxMs`. */
export function flood(port: number, opts: { from: string; width: number; maxMs: number; rsaBytes: number }): Flood {
  const hello = Buffer.concat([encodePreamble(), encodeFrame(sampleFrame('CLIENT_HELLO'))]);
  const keyExchange = encodeFrame({ type: 'KEY_EXCHANGE', encrypted_secret: randomBytes(opts.rsaBytes) });
  const counts: FloodCounts = { attempts: 0, refused: 0, keyExchanges: 0, other: 0, ms: 0 };
  const started = Date.now();
  const deadline = started + opts.maxMs;
  let stopped = false;
  const open = new Set<net.Socket>();

  const attempt = (): Promise<void> =>
    new Promise((resolve) => {
      counts.attempts++;
      const rx = new FrameChannel();
      let preamble = false;
      let outcome: 'refused' | 'keyExchange' | 'other' = 'other';
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: opts.from, noDelay: true }, () => socket.write(hello));
      open.add(socket);
      const timer = setTimeout(() => socket.destroy(), ATTEMPT_TIMEOUT_MS);
      socket.on('data', (d: Buffer) => {
        if (outcome !== 'other') return;
        try {
          rx.push(d);
          preamble ||= rx.readPreamble() !== null;
          const got = preamble ? rx.next() : null;
          if (got === null) return;
          if (got.frame.type === 'SERVER_HELLO') {
            outcome = 'keyExchange';
            socket.end(keyExchange);
            return;
          }
          if (got.frame.type === 'ERROR' && codeFromWire(got.frame.code) === 'TOO_MANY_CONNECTIONS') outcome = 'refused';
        } catch {
          // Not what a server sends: counted as other.
        }
        socket.destroy();
      });
      socket.on('error', () => socket.destroy());
      socket.on('close', () => {
        open.delete(socket);
        clearTimeout(timer);
        counts[outcome === 'keyExchange' ? 'keyExchanges' : outcome]++;
        resolve();
      });
    });

  const loop = async (): Promise<void> => {
    while (!stopped && Date.now() < deadline) await attempt();
  };
  const loops = Promise.all(Array.from({ length: opts.width }, () => loop()));
  return {
    counts,
    stop: async () => {
      stopped = true;
      counts.ms = Math.min(Date.now(), deadline) - started;
      for (const socket of open) socket.destroy();
      await loops;
      return counts;
    },
  };
}
