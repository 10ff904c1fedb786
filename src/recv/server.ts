// The stx-recv daemon: one event loop, many connections (spec/PROTOCOL.md §9.6). Accepts,
// bounds the number of connections, sweeps abandoned partials, and shuts down cleanly.
import type { KeyObject } from 'node:crypto';
import net from 'node:net';
import type { Logger } from 'pino';
import os from 'node:os';
import { HANDSHAKE_TIMEOUT_MS, IDLE_TIMEOUT_MS } from '../proto/limits.js';
import { HandshakeAdmission, withDefaultLimits, type AdmissionLimits } from './admission.js';
import { MemoryBudget } from '../transfer/budget.js';
import { defaultMaxMemoryBytes, KEEP_FREED_BYTES, MEMORY_FLOOR_BYTES, recordBuffersMaxBytes } from './config.js';
import { keepFreedMemory } from '../runtime/young-gc.js';
import type { Access } from './access.js';
import { Connection, refuse } from './connection.js';
import { withSharedReads } from './reads.js';
import { Store } from './store.js';
import type { StorageBackend } from '../storage/backend.js';

export interface ServerOptions {
  readonly host: string;
  readonly port: number;
  readonly outDir: string;
  /** Where the files go instead of the local disk under outDir (--store; outDir is then only a label). */
  readonly backend?: StorageBackend;
  readonly serverKey: KeyObject;
  readonly authorizedKeys: ReadonlySet<string> | null;
  /** Who may connect and each client's rights (access.ts, §7.4); without it, `authorizedKeys` with no options. */
  readonly access?: Access;
  readonly appendOnly: boolean;
  /** Serve listings and downloads of the published files (§9.9, §9.10). */
  readonly allowDownload?: boolean;
  readonly maxConnections: number;
  /** Handshakes in progress and started per second (recv/admission.ts); the defaults of config.ts where not given. */
  readonly handshakes?: Partial<AdmissionLimits>;
  readonly maxFileBytes?: number;
  /** Bytes one client's partial uploads may reserve (§9.5); default: see Store. */
  readonly maxPartialBytes?: number;
  readonly partialTtlMs: number;
  readonly handshakeTimeoutMs?: number;
  readonly idleTimeoutMs?: number;
  /** What all connections may hold in memory (--max-memory); defaultMaxMemoryBytes() by default. */
  readonly maxMemoryBytes?: number;
  readonly log: Logger;
}

/** Bound on how long shutdown waits for connections to flush and say GOAWAY. */
export const SHUTDOWN_GRACE_MS = 8000;

export interface RunningServer {
  readonly address: { host: string; port: number };
  readonly connections: number;
  /** Clients that connect from now on get in and get their rights by `access`; established ones keep what they met. */
  setAccess(access: Access): void;
  /** Stops accepting, GOAWAYs every client after making its data durable, resolves when all are closed. */
  shutdown(): Promise<void>;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const store = new Store(opts.outDir, { maxPartialBytes: opts.maxPartialBytes, ...(opts.backend === undefined ? {} : { backend: opts.backend }) });
  await store.init();
  const connections = new Set<Connection>();
  let nextId = 1;
  // malloc keeps freed memory from the start (config.ts KEEP_FREED_BYTES).
  keepFreedMemory(KEEP_FREED_BYTES);
  let access: Access | undefined = opts.access;
  const maxMemoryBytes = opts.maxMemoryBytes ?? defaultMaxMemoryBytes(os.totalmem());
  const ctx = {
    serverKey: opts.serverKey,
    store,
    appendOnly: opts.appendOnly,
    allowDownload: opts.allowDownload === true,
    maxFileBytes: opts.maxFileBytes,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    idleTimeoutMs: opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS,
    memory: new MemoryBudget(maxMemoryBytes, MEMORY_FLOOR_BYTES, undefined, { held: () => store.bodies.pooledBytesOut, maxBytes: recordBuffersMaxBytes(maxMemoryBytes) }),
    log: opts.log,
  };
  const admission = new HandshakeAdmission(withDefaultLimits(opts.handshakes), opts.log);
  // Paused at first: withSharedReads takes the socket over before anything is read.
  const server: net.Server = net.createServer({ pauseOnConnect: true, noDelay: true }, (accepted) => {
    const { socket, attach } = withSharedReads(accepted, server);
    if (connections.size >= opts.maxConnections) {
      opts.log.warn({ event: 'refused', remote: socket.remoteAddress, reason: 'connection limit' }, 'connection refused');
      refuse(socket, 'TOO_MANY_CONNECTIONS', `server is at its limit of ${opts.maxConnections} connections; retry later`);
      return;
    }
    // Before a Connection exists: a refusal costs no key generation and no decryption (§9.6).
    const admitted = admission.admit(socket.remoteAddress);
    if (!admitted.admitted) {
      refuse(socket, 'TOO_MANY_CONNECTIONS', admitted.message);
      return;
    }
    const { ticket } = admitted;
    const connection = new Connection(socket, { ...ctx, authorizedKeys: opts.authorizedKeys, access, handshake: ticket }, nextId++, (c) => {
      ticket.end();
      connections.delete(c);
    });
    attach(connection);
    if (!connection.closed) connections.add(connection);
  });
  server.on('error', (err) => opts.log.error({ err }, 'server error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('server has no TCP address');

  const sweepEvery = Math.min(Math.max(opts.partialTtlMs / 4, 1000), 3_600_000);
  const sweep = async (): Promise<void> => {
    try {
      const removed = await store.sweep(opts.partialTtlMs);
      if (removed > 0) opts.log.info({ event: 'sweep', removed }, 'removed abandoned partial uploads');
    } catch (err) {
      opts.log.error({ err }, 'sweep failed');
    }
  };
  void sweep();
  const sweeper = setInterval(() => void sweep(), sweepEvery);
  sweeper.unref();

  let stopping: Promise<void> | null = null;
  return {
    address: { host: addr.address, port: addr.port },
    get connections() {
      return connections.size;
    },
    setAccess(next) {
      access = next;
    },
    shutdown() {
      stopping ??= (async () => {
        clearInterval(sweeper);
        admission.close();
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        await Promise.all([...connections].map((c) => c.goAway(SHUTDOWN_GRACE_MS)));
        await closed;
        await store.close();
      })();
      return stopping;
    },
  };
}
