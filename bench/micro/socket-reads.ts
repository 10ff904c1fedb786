// What reading an accepted socket costs the receiver (src/recv/reads.ts): through Node's stream
// ('data' events, a new 64 KiB buffer per read) or into the one shared buffer (withSharedReads,
// net.Socket's onread). A child process sends 256 MiB over 127.0.0.1 in 1 MiB writes; this
// process's CPU (every thread's) from the connection to the last byte, per GiB; the two ways in
// turn. 2026-12-04, AMD EPYC VM, an earlier form of this loop over 1 GiB: 'data' 0.41-0.61 CPU
// s/GiB, shared buffer 0.15-0.18 (most of the difference is system time: each new buffer is
// faulted in).
//
//   node dist/bench/micro/socket-reads.js [--runs N]
import { spawn } from 'node:child_process';
import net from 'node:net';
import { withSharedReads } from '../../src/recv/reads.js';
import { MiB, runsArg } from './lib.js';

const BYTES = 256 * MiB;
/** Bound on one transfer; a stuck one fails the run. */
const TIMEOUT_MS = 60_000;

const SENDER = `
const s = require('node:net').connect(Number(process.argv[1]), '127.0.0.1');
const b = Buffer.alloc(1 << 20, 7);
let n = 0;
const more = () => { while (n < ${BYTES / MiB}) { n++; if (!s.write(b)) return s.once('drain', more); } s.end(); };
s.on('connect', more);`;

type Way = 'data events' | 'shared buffer';

/** CPU seconds per GiB this process spent receiving BYTES one way. */
function receive(way: Way): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    let cpu: NodeJS.CpuUsage | null = null;
    const timer = setTimeout(() => reject(new Error(`${way}: no end within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    const count = (bytes: number): void => {
      got += bytes;
      if (got < BYTES || cpu === null) return;
      const used = process.cpuUsage(cpu);
      clearTimeout(timer);
      server.close();
      resolve((used.user + used.system) / 1e6 / (BYTES / (1024 * MiB)));
    };
    const server: net.Server = net.createServer({ pauseOnConnect: true }, (accepted) => {
      cpu = process.cpuUsage();
      if (way === 'data events') {
        accepted.on('data', (chunk: Buffer) => count(chunk.length));
        accepted.resume();
      } else {
        const { attach } = withSharedReads(accepted, server);
        attach({ receiveShared: (chunk) => count(chunk.length) });
      }
    });
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error('no port'));
        return;
      }
      spawn(process.execPath, ['-e', SENDER, String(address.port)], { stdio: 'inherit' }).on('error', reject);
    });
  });
}

const runs = runsArg(process.argv);
const results: Record<Way, number[]> = { 'data events': [], 'shared buffer': [] };
for (let i = 0; i < runs; i++) {
  for (const way of ['data events', 'shared buffer'] as const) results[way].push(await receive(way));
}
for (const [way, values] of Object.entries(results)) {
  const sorted = [...values].sort((a, b) => a - b);
  process.stdout.write(`${way}: receiver CPU s/GiB median ${(sorted[sorted.length >> 1] ?? NaN).toFixed(3)} (${sorted.map((v) => v.toFixed(3)).join(', ')})\n`);
}
