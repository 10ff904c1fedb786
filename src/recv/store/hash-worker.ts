// The daemon's hashing thread (hasher.ts): the SHA-256 of every upload, in stream order, off the
// event loop that reads sockets and opens records for every connection. One thread serves all
// uploads. The main thread sends each upload's requests in order and they are answered in that
// order; an update's bytes are read in place (shared memory) or were copied for this thread.
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { hashPrefix } from './file-hash.js';
import { errnoOf } from './io-error.js';
import type { HashReply, HashRequest } from './hasher.js';

const port = parentPort;
if (port === null) throw new Error('hash-worker.js runs as a worker thread (hasher.ts starts it)');

const hashes = new Map<number, Hash>();

function reply(message: HashReply): void {
  port?.postMessage(message);
}

async function open(id: number, fd: number, length: number): Promise<void> {
  const hash = createHash('sha256');
  try {
    await hashPrefix(fd, length, hash);
    hashes.set(id, hash);
    reply({ kind: 'opened', id });
  } catch (err) {
    reply({ kind: 'failed', id, message: err instanceof Error ? err.message : String(err), errno: errnoOf(err) });
  }
}

port.on('message', (m: HashRequest) => {
  switch (m.kind) {
    case 'open':
      void open(m.id, m.fd, m.length);
      return;
    case 'update':
      // An upload closed meanwhile has no hash any more; its buffers are still answered for.
      hashes.get(m.id)?.update(new Uint8Array(m.memory, m.offset, m.length));
      reply({ kind: 'hashed', id: m.id });
      return;
    case 'digest': {
      const hash = hashes.get(m.id);
      hashes.delete(m.id);
      reply({ kind: 'digest', id: m.id, sha256: hash?.digest() ?? null });
      return;
    }
    case 'close':
      hashes.delete(m.id);
      return;
  }
});
