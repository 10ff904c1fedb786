// The raw ceiling: plain TCP on 127.0.0.1 into positional file writes. No crypto, no hashing,
// no framing; what stx adds on top of this is what the comparison shows.
//
//   node dist/bench/baseline-raw.js recv [--host ADDR] --port 0 --out FILE [--no-fsync]
//     prints "listening on 127.0.0.1:PORT", takes one connection, writes it to FILE, fsyncs,
//     closes the connection, prints {"bytes":N} and exits.
//   node dist/bench/baseline-raw.js send [--host ADDR] --port PORT --file FILE
//     (--host: where to listen / connect; default 127.0.0.1)
//     sends FILE in 1 MiB positional reads and exits once the receiver has closed (so: durable).
import { once } from 'node:events';
import { open } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';

import { readFully, SocketToFile } from './lib/fileio.js';
import { listen, LOOPBACK } from './lib/net.js';

const READ_BLOCK_BYTES = 1024 * 1024;
/** Socket chunks (~64 KiB) are gathered into file writes of this size. */
const WRITE_BLOCK_BYTES = 1024 * 1024;
/** Bytes received but not yet written: pause the socket above high water, resume below low. */
const QUEUE_HIGH_WATER_BYTES = 16 * 1024 * 1024;
const QUEUE_LOW_WATER_BYTES = 4 * 1024 * 1024;
/** A connection (or connect attempt) that moves nothing for this long is dead. */
const IDLE_TIMEOUT_MS = 30_000;

async function recv(host: string, port: number, outPath: string, fsync: boolean): Promise<void> {
  const fh = await open(outPath, 'w');
  // Half-open: the peer's FIN must not close our side before the data is on disk.
  const server = createServer({ allowHalfOpen: true });
  await listen(server, host, port);
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('server has no address');
  process.stdout.write(`listening on ${host}:${address.port}\n`);

  const socket = await new Promise<Socket>((resolve) => server.once('connection', resolve));
  server.close();
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('idle timeout')));

  const sink = new SocketToFile(socket, fh, 0, { blockBytes: WRITE_BLOCK_BYTES, highWater: QUEUE_HIGH_WATER_BYTES, lowWater: QUEUE_LOW_WATER_BYTES });
  socket.on('data', (chunk: Buffer) => sink.push(chunk));
  await new Promise<void>((resolve, reject) => {
    socket.once('end', resolve);
    socket.once('error', reject);
    socket.once('close', () => reject(sink.failure ?? new Error('connection closed before end')));
  });
  await sink.finish();
  if (fsync) await fh.sync();
  await fh.close();
  // Closing tells the sender the data is on disk.
  socket.end();
  await once(socket, 'close');
  process.stdout.write(`${JSON.stringify({ bytes: sink.offset })}\n`);
}

async function send(host: string, port: number, filePath: string): Promise<void> {
  const fh = await open(filePath, 'r');
  const { size } = await fh.stat();
  const socket = connect({ host, port });
  socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy(new Error('idle timeout')));
  await once(socket, 'connect');
  // The receiver closes once everything is on disk; 'close' after our end() means that.
  const closed = new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('close', () => resolve());
  });
  void closed.catch(() => undefined); // awaited below, where errors surface
  socket.resume();

  const readAt = (at: number): Promise<Buffer> => readFully(fh, Math.min(READ_BLOCK_BYTES, size - at), at);
  let position = 0;
  // Read one block ahead so disk and socket overlap.
  let next = size > 0 ? readAt(0) : undefined;
  while (next !== undefined) {
    const block = await next;
    position += block.length;
    next = position < size ? readAt(position) : undefined;
    if (!socket.write(block)) await once(socket, 'drain');
  }
  await fh.close();
  socket.end();
  await closed;
  process.stdout.write(`${JSON.stringify({ bytes: position })}\n`);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      host: { type: 'string', default: LOOPBACK },
      port: { type: 'string' },
      out: { type: 'string' },
      file: { type: 'string' },
      'no-fsync': { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error('--port must be 0..65535');
  const [mode] = positionals;
  if (mode === 'recv' && values.out !== undefined) return recv(values.host, port, values.out, !values['no-fsync']);
  if (mode === 'send' && values.file !== undefined && port > 0) return send(values.host, port, values.file);
  throw new Error('usage: baseline-raw recv [--host ADDR] --port 0 --out FILE [--no-fsync] | send [--host ADDR] --port PORT --file FILE');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`baseline-raw: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
