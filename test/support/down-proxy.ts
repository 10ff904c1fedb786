// A TCP proxy on 127.0.0.1 for downloads: counts the server→client bytes and cuts every
// connection each time their total crosses one of `cutAt` (a network failure mid-download), or
// holds that direction (stops reading from the server, so TCP backs up into it) until released.
import net from 'node:net';

export interface DownProxy {
  readonly port: number;
  /** Server→client bytes forwarded so far, over all connections. */
  readonly bytesDown: number;
  readonly connections: number;
  readonly cuts: number;
  /** Resolves once the server→client total reached `bytes`. */
  reached(bytes: number): Promise<void>;
  /** From now on, stops reading from the server on every connection until release(). */
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function startDownProxy(targetPort: number, opts: { readonly cutAt?: readonly number[]; readonly holdAt?: number } = {}): Promise<DownProxy> {
  const open = new Set<net.Socket>();
  const upstreams = new Set<net.Socket>();
  const cutAt = [...(opts.cutAt ?? [])];
  const waiters: { bytes: number; resolve: () => void }[] = [];
  let bytesDown = 0;
  let connections = 0;
  let cuts = 0;
  let held = false;
  let holdAt = opts.holdAt;
  const hold = (): void => {
    held = true;
    for (const u of upstreams) u.pause();
  };
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1' });
    open.add(client).add(upstream);
    upstreams.add(upstream);
    if (held) upstream.pause();
    client.pipe(upstream);
    upstream.on('data', (d: Buffer) => {
      bytesDown += d.length;
      // With backpressure: counted bytes are on their way to the client, not piling up here while
      // a busy client reads slowly (a cut then took away what had never reached it).
      if (!client.write(d)) {
        upstream.pause();
        client.once('drain', () => {
          if (!held) upstream.resume();
        });
      }
      for (const w of waiters.filter((x) => bytesDown >= x.bytes)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      if (holdAt !== undefined && bytesDown >= holdAt) {
        holdAt = undefined; // once
        hold();
      }
      if (cutAt.length > 0 && bytesDown >= (cutAt[0] ?? Infinity)) {
        cutAt.shift();
        cuts++;
        for (const s of open) s.resetAndDestroy();
        open.clear();
        upstreams.clear();
      }
    });
    const drop = (): void => {
      open.delete(client);
      open.delete(upstream);
      upstreams.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    // The server's end reaches the client after everything it sent (client.end() flushes first).
    upstream.on('error', drop).on('end', () => client.end());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    port: address.port,
    get bytesDown() {
      return bytesDown;
    },
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    reached: (bytes) => (bytesDown >= bytes ? Promise.resolve() : new Promise((resolve) => waiters.push({ bytes, resolve }))),
    hold,
    release() {
      held = false;
      for (const u of upstreams) u.resume();
    },
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
