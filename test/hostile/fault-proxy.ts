// A TCP proxy on 127.0.0.1 in front of a real stx-recv that injects one fault per connection at
// a chosen byte of a chosen direction: a reset, a close, a stall followed by a reset, a close or
// nothing, a flipped bit, or a black hole (forwards nothing more and never closes). Connection i
// gets faults[i]; later connections pass untouched. For the client fault-injection suite.
import net from 'node:net';

export type FaultKind = 'reset' | 'close' | 'stall-reset' | 'stall-close' | 'stall-resume' | 'corrupt' | 'blackhole';

export interface Fault {
  readonly kind: FaultKind;
  /** Which direction's byte count triggers it: client→server ('up') or server→client ('down'). */
  readonly direction: 'up' | 'down';
  /** The fault happens before this byte (0-based) of that direction is forwarded. */
  readonly at: number;
  /** For stall-*: how long nothing moves. */
  readonly stallMs?: number;
}

export interface FaultProxy {
  readonly port: number;
  readonly connections: number;
  /** Faults that actually fired (a connection may end before its fault's byte). */
  readonly fired: number;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, faults: readonly Fault[]): Promise<FaultProxy> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let connections = 0;
  let fired = 0;
  const server = net.createServer((client) => {
    const fault = faults[connections++];
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let count = { up: 0, down: 0 };
    let held = false;
    let blackhole = false;
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    const act = (): void => {
      if (fault === undefined) return;
      fired++;
      switch (fault.kind) {
        case 'reset':
          client.resetAndDestroy();
          upstream.resetAndDestroy();
          return;
        case 'close':
          client.end();
          upstream.destroy();
          return;
        case 'blackhole':
          blackhole = true;
          return;
        case 'corrupt':
          return;
        case 'stall-reset':
        case 'stall-close':
        case 'stall-resume': {
          held = true;
          client.pause();
          upstream.pause();
          const t = setTimeout(() => {
            timers.delete(t);
            held = false;
            if (fault.kind === 'stall-reset') {
              client.resetAndDestroy();
              upstream.resetAndDestroy();
            } else if (fault.kind === 'stall-close') {
              client.end();
              upstream.destroy();
            } else {
              client.resume();
              upstream.resume();
            }
          }, fault.stallMs ?? 500);
          timers.add(t);
          return;
        }
      }
    };
    const pipe = (from: net.Socket, to: net.Socket, dir: 'up' | 'down'): void => {
      from.on('data', (chunk: Buffer) => {
        if (blackhole) return;
        let data = chunk;
        const start = count[dir];
        count = { ...count, [dir]: start + data.length };
        if (fault !== undefined && fault.direction === dir && start <= fault.at && fault.at < start + data.length) {
          const i = fault.at - start;
          if (fault.kind === 'corrupt') {
            data = Buffer.from(data);
            data[i] = (data[i] ?? 0) ^ 0x10;
            act();
          } else {
            if (i > 0 && !to.destroyed) to.write(data.subarray(0, i));
            act();
            if (fault.kind !== 'stall-resume') return;
            data = data.subarray(i);
          }
        }
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- act() may have set it
        if (to.destroyed || blackhole) return;
        if (!to.write(data) && !held) from.pause();
      });
      to.on('drain', () => {
        if (!held && !blackhole) from.resume();
      });
    };
    pipe(client, upstream, 'up');
    pipe(upstream, client, 'down');
    const end = (): void => {
      // A black hole keeps the client's socket open whatever the daemon does.
      if (blackhole) {
        upstream.destroy();
        sockets.delete(upstream);
        return;
      }
      teardown();
    };
    client.on('close', teardown).on('error', teardown);
    upstream.on('close', end).on('error', end);
    client.on('end', () => {
      if (!blackhole) upstream.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('fault proxy has no port');
  return {
    port: addr.port,
    get connections() {
      return connections;
    },
    get fired() {
      return fired;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
