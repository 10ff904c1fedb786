// A TCP load balancer on 127.0.0.1 for the several-daemons tests, as HAProxy in TCP mode would
// be: each new connection goes to the daemon `target` names when it arrives; cutAll() resets
// every open connection (a daemon's host gone from the network), cutClients() only their client
// side (the daemon keeps a half-open connection until its idle timeout), and a rate cap keeps an
// upload going long enough to be cut in the middle.
import net from 'node:net';

export interface Balancer {
  readonly port: number;
  /** Client→daemon bytes forwarded so far, over all connections. */
  readonly bytesUp: number;
  /** The daemon port new connections go to. */
  target: number;
  /** Resets every open connection, both sides. */
  cutAll(): void;
  /**
   * Resets the client side of every open connection and forwards nothing more, but leaves the
   * daemon side open: the client's link is gone while the daemon notices only at its idle timeout.
   */
  cutClients(): void;
  close(): Promise<void>;
}

/** `bytesPerSecond` caps the client→daemon bytes of all connections together. */
export async function startBalancer(target: number, bytesPerSecond = Number.POSITIVE_INFINITY): Promise<Balancer> {
  const open = new Set<net.Socket>();
  /** Client socket → its daemon socket, while both are open. */
  const pairs = new Map<net.Socket, net.Socket>();
  /** For each client socket: leave its daemon socket open when the client side goes. */
  const orphans = new Map<net.Socket, () => void>();
  let bytesUp = 0;
  let window = { start: Date.now(), bytes: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(balancer.target, '127.0.0.1');
    open.add(client);
    open.add(upstream);
    pairs.set(client, upstream);
    let orphaned = false;
    const drop = (): void => {
      client.destroy();
      pairs.delete(client);
      orphans.delete(client);
      open.delete(client);
      if (orphaned) return;
      upstream.destroy();
      open.delete(upstream);
    };
    orphans.set(client, () => {
      orphaned = true;
      upstream.removeAllListeners('data');
      upstream.on('data', () => undefined);
      upstream.once('close', () => open.delete(upstream));
    });
    client.on('data', (d: Buffer) => {
      bytesUp += d.length;
      // The cap over windows of 250 ms: no burst saved up while idle.
      const now = Date.now();
      if (now - window.start > 250) window = { start: now, bytes: 0 };
      window.bytes += d.length;
      const early = window.bytes / bytesPerSecond - (now - window.start) / 1000;
      if (!upstream.write(d) || early > 0) client.pause();
      if (early > 0) setTimeout(() => client.resume(), Math.ceil(early * 1000));
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (d: Buffer) => {
      if (!client.write(d)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const balancer: Balancer = {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    get bytesUp() {
      return bytesUp;
    },
    target,
    cutAll() {
      for (const s of open) s.resetAndDestroy();
      open.clear();
    },
    cutClients() {
      for (const client of [...pairs.keys()]) {
        orphans.get(client)?.();
        orphans.delete(client);
        client.resetAndDestroy();
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
  return balancer;
}
