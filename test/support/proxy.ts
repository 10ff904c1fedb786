// A TCP proxy on 127.0.0.1 between a real client and a real daemon: counts the bytes that cross
// it, can throttle them, and cuts every connection at given byte counts or on demand, as a
// network failure would, or freezes them (a pulled cable: both ends stay open, nothing crosses).
import net from 'node:net';

export interface ProxyOptions {
  /** Client→server bytes per second, or unlimited. */
  readonly bytesPerSecond?: number;
  /** Cut all connections each time the client→server total crosses one of these (ascending). */
  readonly cutAt?: readonly number[];
  /**
   * Once the client→server total crosses this, drop what the server sends on the connections
   * open then (they stay open): the client hears nothing more on them, until a cut.
   */
  readonly dropDownAt?: number;
  /** Server→client bytes reach the client this much later, in order (the way back of a long link). */
  readonly delayDownMs?: number;
}

export interface CutProxy {
  readonly port: number;
  /** Client→server bytes forwarded so far, over all connections. */
  readonly bytesUp: number;
  readonly connections: number;
  readonly cuts: number;
  /** What happened, in order: a client's connection accepted, or server bytes handed to a client. */
  readonly order: readonly ('accept' | 'down')[];
  /** Destroys every open connection (both sides) with a reset. */
  cutAll(): void;
  /** From now on, drops whatever the connections open now carry, in both directions, and keeps them open. */
  freezeAll(): void;
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
  const frozen = new Set<net.Socket>();
  /** Upstream legs whose server→client bytes are dropped (dropDownAt). */
  const mute = new Set<net.Socket>();
  let dropDownAt = opts.dropDownAt;
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
  // Half-open allowed on both legs, so an orderly close crosses as one: what was sent arrives,
  // then the FIN (closing both legs at the first FIN would reset data still in flight).
  const order: ('accept' | 'down')[] = [];
  const later = (delayMs: number | undefined, f: () => void): void => {
    if (delayMs === undefined) f();
    else setTimeout(f, delayMs);
  };
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    connections++;
    order.push('accept');
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1', allowHalfOpen: true });
    open.add(client);
    open.add(upstream);
    client.on('data', (d: Buffer) => {
      if (frozen.has(client)) return;
      bytesUp += d.length;
      allowance -= d.length;
      const full = !upstream.write(d);
      if (dropDownAt !== undefined && bytesUp >= dropDownAt) {
        dropDownAt = undefined;
        for (const s of open) mute.add(s);
      }
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
      if (frozen.has(upstream) || mute.has(upstream)) return;
      later(opts.delayDownMs, () => {
        if (client.destroyed) return;
        order.push('down');
        if (!client.write(d)) upstream.pause();
      });
    });
    client.on('drain', () => upstream.resume());
    client.on('end', () => {
      if (!frozen.has(client)) upstream.end();
    });
    upstream.on('end', () => {
      if (!frozen.has(upstream)) later(opts.delayDownMs, () => client.end());
    });
    const forget = (): void => {
      open.delete(client);
      open.delete(upstream);
      throttled.delete(client);
    };
    const reset = (): void => {
      // A frozen pair is a pulled cable: one end going away tells the other nothing.
      if (frozen.has(client)) return;
      client.destroy();
      upstream.destroy();
      forget();
    };
    client.on('error', reset);
    upstream.on('error', reset);
    client.on('close', () => {
      if (upstream.destroyed) forget();
    });
    upstream.on('close', () => {
      if (client.destroyed) forget();
    });
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
    order,
    cutAll,
    freezeAll() {
      for (const s of open) {
        frozen.add(s);
        s.resume();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        if (ticker !== null) clearInterval(ticker);
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}
