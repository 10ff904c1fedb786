// The long-link ceiling: N parallel plain TCP connections, each carrying one Nth of the file, into
// positional writes and one fsync. No crypto, no hashing, no framing, no round trips of its own
// beyond TCP's: what any application using N connections through the same link could reach.
//
//   node dist/bench/wan-raw-streams.js recv [--host ADDR] --port 0 --out FILE --size BYTES --streams N
//     prints "listening on ADDR:PORT", takes N connections (each starts with a 16-byte header:
//     offset and length, big-endian), writes them to FILE, fsyncs, closes every connection, prints
//     {"bytes":N,"firstByteMs":…,"steadyMiBps":…} (times from the first connection) and exits.
//   node dist/bench/wan-raw-streams.js send [--host ADDR] --port PORT --file FILE --streams N
//     exits once the receiver has closed every connection (so: durable).
//
// steadyMiBps: the bytes received between 25 % and 75 % of the file ÷ the time between — the rate
// once slow start is over and before the tail, for a reader to set beside the whole-run rate.
import { once } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

import { readFully, SocketToFile } from './lib/fileio.js';
import { listen, LOOPBACK } from './lib/net.js';

const HEADER_BYTES = 16;
const READ_BLOCK_BYTES = 1024 * 1024;
const WRITE_BLOCK_BYTES = 1024 * 1024;
const QUEUE_HIGH_WATER_BYTES = 8 * 1024 * 1024;
const QUEUE_LOW_WATER_BYTES = 2 * 1024 * 1024;
const IDLE_TIMEOUT_MS = 30_000;
const MAX_STREAMS = 64;

/** Each connection's share of a file of `size` bytes in `n` pieces: [offset, length]. */
function shares(size: number, n: number): [number, number][] {
  const out: [number, number][] = [];
  const base = Math.floor(size / n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const length = i === n - 1 ? size - at : base;
    out.push([at, length]);
    at += length;
  }
  return out;
}

async function recv(host: string, port: number, outPath: string, size: number, streams: number): Promise<void> {
  const fh = await open(outPath, 'w');
  const server = createServer({ allowHalfOpen: true });
  await listen(server, host, port);
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  process.stdout.write(`listening on ${host}:${address.port}\n`);

  let t0 = 0;
  let firstByteMs = -1;
  let total = 0;
  let quarterMs = -1;
  let quarterBytes = 0;
  let threeQuarterMs = -1;
  let threeQuarterBytes = 0;
  const count = (n: number): void => {
    total += n;
    const now = performance.now() - t0;
    if (firstByteMs < 0) firstByteMs = now;
    if (quarterMs < 0 && total >= size / 4) [quarterMs, quarterBytes] = [now, total];
    if (threeQuarterMs < 0 && total >= (size * 3) / 4) [threeQuarterMs, threeQuarterBytes] = [now, total];
  };

  const sockets: Socket[] = [];
  const done: Promise<number>[] = [];
  await new Promise<void>((resolve) => {
    server.on('connection', (socket: Socket) => {
      if (sockets.length === 0) t0 = performance.now();
      sockets.push(socket);
      done.push(receiveOne(socket, fh, count));
      if (sockets.length === streams) {
        server.close();
        resolve();
      }
    });
  });
  const written = (await Promise.all(done)).reduce((a, b) => a + b, 0);
  if (written !== size) throw new Error(`received ${written} bytes, expected ${size}`);
  await fh.sync();
  await fh.close();
  for (const s of sockets) s.end();
  await Promise.all(sockets.map((s) => (s.closed ? Promise.resolve() : once(s, 'close'))));
  const steady = threeQuarterMs > quarterMs ? (threeQuarterBytes - quarterBytes) / 1048576 / ((threeQuarterMs - quarterMs) / 1000) : 0;
  process.stdout.write(`${JSON.stringify({ bytes: written, firstByteMs: Math.round(firstByteMs), steadyMiBps: Number(steady.toFixed(1)) })}\n`);
}

/** One connection: its header, then its share into the file; resolves with the bytes written. */
function receiveOne(socket: Socket, fh: FileHandle, count: (n: number) => void): Promise<number> {
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('idle timeout')));
  let header: Buffer | null = Buffer.alloc(0);
  let sink: SocketToFile | undefined;
  let end = 0;
  socket.on('data', (chunk: Buffer) => {
    if (header !== null) {
      header = Buffer.concat([header, chunk]);
      if (header.length < HEADER_BYTES) return;
      const offset = Number(header.readBigUInt64BE(0));
      end = offset + Number(header.readBigUInt64BE(8));
      sink = new SocketToFile(socket, fh, offset, { blockBytes: WRITE_BLOCK_BYTES, highWater: QUEUE_HIGH_WATER_BYTES, lowWater: QUEUE_LOW_WATER_BYTES, end });
      chunk = header.subarray(HEADER_BYTES);
      header = null;
      if (chunk.length === 0) return;
    }
    count(chunk.length);
    sink?.push(chunk);
  });
  return new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
    socket.once('close', () => reject(sink?.failure ?? new Error('connection closed before end')));
  }).then(async () => {
    if (sink === undefined) throw new Error('connection ended before its header');
    await sink.finish();
    if (sink.offset !== end) throw new Error('connection ended short of its share');
    return sink.written;
  });
}

async function send(host: string, port: number, filePath: string, streams: number): Promise<void> {
  const fh = await open(filePath, 'r');
  const { size } = await fh.stat();
  const sendOne = async ([from, length]: [number, number]): Promise<number> => {
    const socket = connect({ host, port });
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('idle timeout')));
    await once(socket, 'connect');
    const closed = new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.once('close', () => resolve());
    });
    void closed.catch(() => undefined);
    socket.resume();
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeBigUInt64BE(BigInt(from), 0);
    header.writeBigUInt64BE(BigInt(length), 8);
    socket.write(header);
    const end = from + length;
    const readAt = (at: number): Promise<Buffer> => readFully(fh, Math.min(READ_BLOCK_BYTES, end - at), at);
    let position = from;
    let next = length > 0 ? readAt(from) : undefined;
    while (next !== undefined) {
      const block = await next;
      position += block.length;
      next = position < end ? readAt(position) : undefined;
      if (!socket.write(block)) await once(socket, 'drain');
    }
    socket.end();
    await closed;
    return position - from;
  };
  const sent = (await Promise.all(shares(size, streams).map(sendOne))).reduce((a, b) => a + b, 0);
  await fh.close();
  process.stdout.write(`${JSON.stringify({ bytes: sent })}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string', default: LOOPBACK },
      port: { type: 'string' },
      out: { type: 'string' },
      file: { type: 'string' },
      size: { type: 'string' },
      streams: { type: 'string', default: '8' },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
  const streams = Number(values.streams);
  if (!Number.isInteger(streams) || streams < 1 || streams > MAX_STREAMS) throw new Error(`--streams must be 1..${MAX_STREAMS}`);
  const [mode] = positionals;
  const size = Number(values.size);
  if (mode === 'recv' && values.out !== undefined && Number.isSafeInteger(size) && size >= 0) return recv(values.host, port, values.out, size, streams);
  if (mode === 'send' && values.file !== undefined && port > 0) return send(values.host, port, values.file, streams);
  throw new Error('usage: wan-raw-streams recv [--host ADDR] --port 0 --out FILE --size BYTES --streams N | send [--host ADDR] --port PORT --file FILE --streams N');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`wan-raw-streams: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
