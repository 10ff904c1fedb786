// Contender "raw ×N" of the long-link bench: bench/wan-raw-streams.ts, N plain TCP connections,
// each one Nth of the file, positional writes, one fsync. The ceiling for an N-connection upload
// through the emulated link: what TCP start-up and the link leave, with nothing of stx's.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { READY_TIMEOUT_MS, transferTimeoutMs, type Contender, type RunResult } from '../contenders/types.js';
import { describeExit, startMeasured } from './measure.js';
import { benchScript } from './paths.js';
import { LOCAL, type Placement } from './placement.js';
import type { TestFile } from './testfile.js';

const SCRIPT = benchScript('wan-raw-streams.js');

async function run(streams: number, file: TestFile, workdir: string, place: Placement = LOCAL): Promise<RunResult> {
  const receivedPath = join(workdir, 'received.bin');
  const timeoutMs = transferTimeoutMs(file.size);
  const recvArgs = [SCRIPT, 'recv', '--host', place.host, '--port', '0', '--out', receivedPath, '--size', String(file.size), '--streams', String(streams)];
  const recv = startMeasured(...place.command('server', process.execPath, recvArgs), { timeoutMs });
  const ready = await recv.waitForMatch('stdout', /listening on \S+:(\d+)/, READY_TIMEOUT_MS);
  if (ready === null) {
    await recv.signal('SIGKILL');
    return { kind: 'failed', reason: describeExit(`raw ×${streams} receiver did not listen;`, await recv.done) };
  }
  const t0 = performance.now();
  const sendArgs = [SCRIPT, 'send', '--host', place.host, '--port', ready[1] ?? '', '--file', file.path, '--streams', String(streams)];
  const send = startMeasured(...place.command('client', process.execPath, sendArgs), { timeoutMs });
  const [sent, received] = await Promise.all([send.done, recv.done]);
  const wallSeconds = (performance.now() - t0) / 1000;
  if (sent.exitCode !== 0 || sent.rusage === null) return { kind: 'failed', reason: describeExit(`raw ×${streams} sender`, sent) };
  if (received.exitCode !== 0 || received.rusage === null) return { kind: 'failed', reason: describeExit(`raw ×${streams} receiver`, received) };
  const summary: unknown = JSON.parse(received.stdout.trim().split('\n').pop() ?? '{}');
  const steady = Number(typeof summary === 'object' && summary !== null ? Reflect.get(summary, 'steadyMiBps') : NaN);
  const firstByteMs = Number(typeof summary === 'object' && summary !== null ? Reflect.get(summary, 'firstByteMs') : NaN);
  const notes = Number.isFinite(steady) ? [`steady ${steady.toFixed(1)} MiB/s, first byte at ${firstByteMs} ms`] : [];
  return { kind: 'ok', wallSeconds, sender: sent.rusage, receiver: received.rusage, receivedPath, notes };
}

/** N plain TCP connections through the link: the N-connection ceiling. */
export function rawStreams(streams: number): Contender {
  return {
    name: `raw ×${streams}`,
    measures: `node, ${streams} TCP connections each sending one ${streams}th of the file → node receiver (positional writes, one fsync); wall = sender start → both exited`,
    available: () => Promise.resolve(null),
    version: () => Promise.resolve(`node ${process.version}`),
    run: (file, workdir, place) => run(streams, file, workdir, place),
  };
}
