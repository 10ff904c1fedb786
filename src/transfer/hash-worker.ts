// The daemon's hashing thread (hasher.ts): the SHA-256 of every upload, in stream order, off the
// event loop that reads sockets and opens records for every connection. One thread serves all
// uploads. The main thread sends each upload's requests in order and they are answered in that
// order; an update's bytes are read in place (shared memory) or were copied for this thread.
// Interrupted uploads' hashes stay parked here until their upload resumes (§9.7).
import type { Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { hashPrefix, ParkedHashes, readAtFd, RehashCancelled } from './file-hash.js';
import { errnoOf } from './io-error.js';
import type { HashReply, HashRequest } from './hasher.js';
import { exposedGc } from '../runtime/young-gc.js';
import { WORKER_COLLECT_INTERVAL_BYTES } from './config.js';

const port = parentPort;
if (port === null) throw new Error('hash-worker.js runs as a worker thread (hasher.ts starts it)');

/** Open uploads' hashes and the bytes each has taken. */
const hashes = new Map<number, { hash: Hash; length: number }>();
const parked = new ParkedHashes();
/** Opens (re-hashes) asked to stop. */
const cancelled = new Set<number>();
/** Bytes of shared memory hashed since this thread last collected its young generation. */
let sinceCollect = 0;

/**
 * Each update brings a handle to the body pool's shared memory, and this thread's heap keeps it
 * until it collects, which a thread that allocates next to nothing hardly ever does: the pool's
 * arenas that the main thread let go stayed mapped for as long (issue 15: 100 uploads at once held
 * ~300 MiB of them). A scavenge of this small heap every WORKER_COLLECT_INTERVAL_BYTES drops them.
 */
function handled(bytes: number): void {
  sinceCollect += bytes;
  if (sinceCollect < WORKER_COLLECT_INTERVAL_BYTES) return;
  sinceCollect = 0;
  exposedGc()?.({ type: 'minor' });
}

function reply(message: HashReply): void {
  port?.postMessage(message);
}

async function open(id: number, fd: number, length: number, key: string | null): Promise<void> {
  const from = parked.take(key, length);
  try {
    const hash = await hashPrefix(readAtFd(fd), from, length, {
      onProgress: (done) => reply({ kind: 'progress', id, done }),
      cancelled: () => cancelled.has(id),
    });
    hashes.set(id, { hash, length });
    reply({ kind: 'opened', id, reused: from.length });
  } catch (err) {
    // What was read before the cancel is kept: the next OPEN of this upload goes on from there.
    if (err instanceof RehashCancelled) parked.park(key, err.partial);
    const message = err instanceof Error ? err.message : String(err);
    reply({ kind: 'failed', id, message, errno: errnoOf(err), cancelled: err instanceof RehashCancelled });
  } finally {
    cancelled.delete(id);
  }
}

port.on('message', (m: HashRequest) => {
  switch (m.kind) {
    case 'open':
      void open(m.id, m.fd, m.length, m.key);
      return;
    case 'update': {
      // An upload closed meanwhile has no hash any more; its buffers are still answered for.
      const entry = hashes.get(m.id);
      if (entry !== undefined) {
        entry.hash.update(new Uint8Array(m.memory, m.offset, m.length));
        entry.length += m.length;
      }
      reply({ kind: 'hashed', id: m.id });
      if (m.memory instanceof SharedArrayBuffer) handled(m.length);
      return;
    }
    case 'digest': {
      const entry = hashes.get(m.id);
      hashes.delete(m.id);
      reply({ kind: 'digest', id: m.id, sha256: entry?.hash.digest() ?? null });
      return;
    }
    case 'park': {
      const entry = hashes.get(m.id);
      hashes.delete(m.id);
      if (entry !== undefined && entry.length === m.length) parked.park(m.key, entry);
      return;
    }
    case 'cancel':
      cancelled.add(m.id);
      return;
    case 'drop':
      parked.drop(m.key);
      return;
    case 'close':
      hashes.delete(m.id);
      return;
  }
});
