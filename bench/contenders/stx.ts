// Contender "stx": the hook for our own stx-recv / stx-send, once they are built.
//
//   node dist/src/recv/cli.js --listen 127.0.0.1:0 --out DIR --key KEYFILE
//     logs "listening on 127.0.0.1:PORT" and "fingerprint SHA256:…" on stderr, runs until SIGTERM.
//   node dist/src/send/cli.js 127.0.0.1 PORT FILE --fingerprint FP --json --quiet
//     exits once the receiver has confirmed the whole file.
// Until dist/src/recv/cli.js exists, available() says so and the runner skips stx.
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { describeExit, startMeasured } from '../lib/measure.js';
import { distFile } from '../lib/paths.js';
import type { TestFile } from '../lib/testfile.js';
import { READY_TIMEOUT_MS, transferTimeoutMs, type Contender, type RunResult } from './types.js';

const RECV_CLI = distFile('src/recv/cli.js');
const SEND_CLI = distFile('src/send/cli.js');
/** Sender's --json summary kept in the results, at most this long. */
const SUMMARY_NOTE_CHARS = 500;

/** One stx transfer of `file` into `outDir`/received. */
export async function runStx(file: TestFile, outDir: string): Promise<RunResult> {
  const recvDir = join(outDir, 'received');
  await mkdir(recvDir, { recursive: true });
  // The receiver's long-term key; stx-recv is expected to create it when it does not exist.
  const keyFile = join(outDir, 'recv.key');
  const timeoutMs = transferTimeoutMs(file.size);
  const recvArgs = [RECV_CLI, '--listen', '127.0.0.1:0', '--out', recvDir, '--key', keyFile];
  const recv = startMeasured(process.execPath, recvArgs, { timeoutMs });
  const listening = await recv.waitForMatch('stderr', /listening on 127\.0\.0\.1:(\d+)/, READY_TIMEOUT_MS);
  const fingerprint = await recv.waitForMatch('stderr', /fingerprint (SHA256:\S+)/, READY_TIMEOUT_MS);
  const port = listening?.[1];
  const fp = fingerprint?.[1];
  if (port === undefined || fp === undefined) {
    await recv.signal('SIGKILL');
    return { kind: 'failed', reason: describeExit('stx-recv gave no port and fingerprint;', await recv.done) };
  }
  const sendArgs = [SEND_CLI, '127.0.0.1', port, file.path, '--fingerprint', fp, '--json', '--quiet'];
  const t0 = performance.now();
  const sent = await startMeasured(process.execPath, sendArgs, { timeoutMs }).done;
  const wallSeconds = (performance.now() - t0) / 1000;
  // A daemon: it stays up after the transfer, so stop it to get its totals.
  await recv.signal('SIGTERM');
  const received = await recv.done;

  if (sent.exitCode !== 0 || sent.rusage === null) return { kind: 'failed', reason: describeExit('stx-send', sent) };
  if (received.rusage === null) return { kind: 'failed', reason: describeExit('stx-recv', received) };
  const receivedPath = await findReceived(recvDir, file);
  if (receivedPath === null) return { kind: 'failed', reason: `no ${file.size}-byte file in ${recvDir}` };
  const summary = sent.stdout.trim().slice(-SUMMARY_NOTE_CHARS);
  return {
    kind: 'ok',
    wallSeconds,
    sender: sent.rusage,
    receiver: received.rusage,
    receivedPath,
    notes: summary === '' ? [] : [`stx-send: ${summary}`],
  };
}

/** The file under its own name, else the one regular file of the right size. */
async function findReceived(dir: string, file: TestFile): Promise<string | null> {
  const named = join(dir, basename(file.path));
  if (existsSync(named)) return named;
  const matches: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(dir, entry.name);
    if ((await stat(path)).size === file.size) matches.push(path);
  }
  const [only] = matches;
  return matches.length === 1 && only !== undefined ? only : null;
}

export const stx: Contender = {
  name: 'stx',
  measures: 'stx-send → stx-recv daemon (this project); wall = sender start → sender exit',
  available: () =>
    Promise.resolve(
      existsSync(RECV_CLI) && existsSync(SEND_CLI)
        ? null
        : 'not available: dist/src/recv/cli.js or dist/src/send/cli.js not built yet',
    ),
  version: () => Promise.resolve('this checkout'),
  run: runStx,
};
