// Loopback-only network helpers. Every bench socket is on 127.0.0.1.
import { createServer, type Server } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A port that was free a moment ago (for servers that can't report one they picked). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no port assigned'))));
    });
  });
}

/** `server` listening on host:port (resolves once it is, rejects on its error). */
export function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
}
