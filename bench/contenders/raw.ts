// Contender "raw": bench/baseline-raw.ts, plain TCP into positional writes, fsync at the end.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { describeExit, startMeasured } from '../lib/measure.js';
import { benchScript } from '../lib/paths.js';
import { LOCAL, type Placement } from '../lib/placement.js';
import type { TestFile } from '../lib/testfile.js';
import { READY_TIMEOUT_MS, transferTimeoutMs, type Contender, type RunResult } from './types.js';

const SCRIPT = benchScript('baseline-raw.js');

async function run(file: TestFile, workdir: string, place: Placement = LOCAL): Promise<RunResult> {
  const receivedPath = join(workdir, 'received.bin');
  const timeoutMs = transferTimeoutMs(file.size);
  const recvArgs = [SCRIPT, 'recv', '--host', place.host, '--port', '0', '--out', receivedPath];
  const recv = startMeasured(...place.command('server', process.execPath, recvArgs), { timeoutMs });
  const ready = await recv.waitForMatch('stdout', /listening on \S+:(\d+)/, READY_TIMEOUT_MS);
  if (ready === null) {
    await recv.signal('SIGKILL');
    return { kind: 'failed', reason: describeExit('raw receiver did not listen;', await recv.done) };
  }
  const port = ready[1] ?? '';
  const t0 = performance.now();
  const sendArgs = [SCRIPT, 'send', '--host', place.host, '--port', port, '--file', file.path];
  const send = startMeasured(...place.command('client', process.execPath, sendArgs), { timeoutMs });
  const [sent, received] = await Promise.all([send.done, recv.done]);
  const wallSeconds = (performance.now() - t0) / 1000;
  if (sent.exitCode !== 0 || sent.rusage === null) return { kind: 'failed', reason: describeExit('raw sender', sent) };
  if (received.exitCode !== 0 || received.rusage === null) {
    return { kind: 'failed', reason: describeExit('raw receiver', received) };
  }
  return { kind: 'ok', wallSeconds, sender: sent.rusage, receiver: received.rusage, receivedPath, notes: [] };
}

export const raw: Contender = {
  name: 'raw',
  measures: 'node TCP sender → node receiver (positional writes, fsync); wall = sender start → both exited',
  available: () => Promise.resolve(null),
  version: () => Promise.resolve(`node ${process.version}`),
  run,
};
