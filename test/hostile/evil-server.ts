// A server that plays the real handshake when its script asks (serveHandshake) and then does
// whatever the script says: the peer for the client's hostile tests (client-faults,
// send-server-text). Every connection gets the script; bytes received are kept per connection.
import type { KeyObject } from 'node:crypto';
import net from 'node:net';
import { fingerprint, serverKeySpki } from '../../src/crypto/index.js';
import { RawClient, serveHandshake } from './raw-client.js';

export interface EvilServer {
  readonly port: number;
  readonly fingerprint: string;
  /** Every byte received from clients, per connection. */
  readonly received: Buffer[][];
  close(): Promise<void>;
}

/** `handshake()` plays the server's handshake with `key`; false if the client strayed. */
export type Script = (peer: RawClient, handshake: () => Promise<boolean>) => Promise<void>;

export async function startEvilServer(key: KeyObject, script: Script): Promise<EvilServer> {
  const received: Buffer[][] = [];
  const peers = new Set<RawClient>();
  const server = net.createServer((socket) => {
    const peer = RawClient.adopt(socket);
    peers.add(peer);
    received.push(peer.received);
    script(peer, () => serveHandshake(peer, key))
      .catch(() => undefined)
      .finally(() => setTimeout(() => peer.destroy(), 200));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return {
    port: addr.port,
    fingerprint: fingerprint(serverKeySpki(key)),
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of peers) p.destroy();
        server.close(() => resolve());
      }),
  };
}
