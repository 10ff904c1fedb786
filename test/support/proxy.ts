// A TCP proxy on 127.0.0.1 between a real client and a real daemon: counts the bytes that cross
// it, can throttle them, and cuts every connection at given byte counts or on demand, as a
// network failure would.
import net from 'node:net';

export interface ProxyOptions {
  /** Client→server bytes per second, or unlimited. */
  readonly bytesPerSecond?: number;
  /** Cut all connections each time the client→server total crosses one of these (ascending). */
  readonly cutAt?: readonly number[];
}

export interface CutProxy {
  readonly port: number;
  /** Client→server bytes forwarded so far, over all connections. */
  readonly bytesUp: number;
  readonly connections: number;
  readonly cuts: number;
  /** Destroys every open connection (both sides) with a reset. */
  cutAll(): void;
  close(): Promise<void>;
}

const TICK_MS = 20;

export async function startProxy(targetPort: number, opts: ProxyOptions = {}): Promise<CutProxy> {
  const open = new Set<net.Socket>();
  const cutAt = [...(opts.cutAt ?? [])];
  let bytesUp = 0;
  let connections = 0;
  let cuts = 0;
  let allowance = Number.POSITIVE_INFINITY;
  const throttled = new Set<net.Socket>();
  const cutAll = (): void => {
    cuts++;
    for (const s of open) s.resetAndDestroy();
    open.clear();
  };
  let ticker: NodeJS.Timeout | null = null;
  if (opts.bytesPerSecond !== undefined) {
    const perTick = (opts.bytesPerSecond * TICK_MS) / 1000;
    allowance = perTick;
    ticker = setInterval(() => {
      allowance = perTick;
      for (const s of throttled) if (!s.destroyed) s.resume();
      throttled.clear();
    }, TICK_MS);
  }
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    client.on('data', (d: Buffer) => {
      bytesUp += d.length;
      allowance -= d.length;
      const full = !upstream.write(d);
      const next = cutAt[0];
      if (next !== undefined && bytesUp >= next) {
        cutAt.shift();
        cutAll();
        return;
      }
      if (full) client.pause();
      if (allowance <= 0) {
        client.pause();
        throttled.add(client);
      }
    });
    upstream.on('drain', () => {
      if (!throttled.has(client)) client.resume();
    });
    upstream.on('data', (d: Buffer) => {
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
      throttled.delete(client);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('proxy has no port');
  return {
    port: addr.port,
    get bytesUp() {
      return bytesUp;
    },
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    cutAll,
    close: () =>
      new Promise<void>((resolve) => {
        if (ticker !== null) clearInterval(ticker);
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
