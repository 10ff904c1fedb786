// Round-trip probe for the emulated long link (bench/lib/wan.ts): a one-byte TCP echo, timed.
// This kernel's ping may be missing; a TCP echo with Nagle off measures the same RTT.
//
//   node dist/bench/wan-probe.js server --host ADDR
//     prints "listening on ADDR:PORT", echoes every byte back, exits on SIGTERM or when idle.
//   node dist/bench/wan-probe.js rtt --host ADDR --port PORT [--count N]
//     connects, sends one byte N times, each after the previous echo, and prints
//     {"connectMs":…,"rttMs":[…]} (the connect time is one round trip: SYN, SYN-ACK).
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

/** A probe that sees no traffic for this long has been forgotten: exit. */
const IDLE_TIMEOUT_MS = 60_000;
const DEFAULT_COUNT = 10;
const MAX_COUNT = 1000;

async function server(host: string): Promise<void> {
  const srv = createServer((socket) => {
    socket.setNoDelay(true);
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    socket.on('data', (data: Buffer) => socket.write(data));
    socket.on('error', () => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, host, () => resolve());
  });
  const address = srv.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  process.stdout.write(`listening on ${host}:${address.port}\n`);
  const idle = setTimeout(() => process.emit('SIGTERM'), IDLE_TIMEOUT_MS);
  await new Promise<void>((resolve) => process.once('SIGTERM', () => resolve()));
  clearTimeout(idle);
  srv.close();
}

async function rtt(host: string, port: number, count: number): Promise<void> {
  const t0 = performance.now();
  const socket = connect({ host, port });
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('probe timed out')));
  await once(socket, 'connect');
  const connectMs = performance.now() - t0;
  socket.setNoDelay(true);
  const rttMs: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    const echoed = once(socket, 'data');
    socket.write('x');
    await echoed;
    rttMs.push(performance.now() - t);
  }
  socket.destroy();
  process.stdout.write(`${JSON.stringify({ connectMs, rttMs })}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      port: { type: 'string' },
      count: { type: 'string', default: String(DEFAULT_COUNT) },
    },
  });
  const [mode] = positionals;
  const { host } = values;
  if (host === undefined) throw new Error('--host is required');
  if (mode === 'server') return server(host);
  const port = Number(values.port);
  const count = Number(values.count);
  if (mode === 'rtt' && Number.isInteger(port) && port > 0 && port < 65536 && Number.isInteger(count) && count >= 1 && count <= MAX_COUNT) {
    return rtt(host, port, count);
  }
  throw new Error(`usage: wan-probe server --host ADDR | rtt --host ADDR --port PORT [--count 1..${MAX_COUNT}]`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`wan-probe: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
