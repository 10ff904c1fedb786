// Contender "stx-sealed": stx-send --seal (issue 17), the same transfer as "stx" with every byte
// sealed on the client into the age format (ChaCha20-Poly1305 payload, node:crypto) before it
// leaves. The server stores NAME.age; after the measured transfer that age file is opened
// (unmeasured) with the bench's identity, and the runner checks the plaintext's SHA-256, so a
// verified run is a whole round trip. Its sender CPU s/GiB next to stx's is what sealing costs.
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { finished } from 'node:stream/promises';

import { generateAgeIdentity, openAge, parseAgeIdentity } from '../../src/transfer/age.js';
import { describeExit, startMeasured } from '../lib/measure.js';
import { commandLine, stxCommands } from '../lib/paths.js';
import { LOCAL, type Placement } from '../lib/placement.js';
import type { TestFile } from '../lib/testfile.js';
import { startStxDaemon } from './stx.js';
import { transferTimeoutMs, type Contender, type RunResult } from './types.js';

const { recvCli: RECV_CLI, sendCli: SEND_CLI } = stxCommands();

/** Opens `sealed` with `identity` into `plainPath`, a verified 64 KiB chunk at a time. */
async function openInto(sealed: string, identity: string, plainPath: string): Promise<void> {
  const opened = await openAge(parseAgeIdentity(identity), createReadStream(sealed, { highWaterMark: 1024 * 1024 }));
  const out = createWriteStream(plainPath);
  for await (const chunk of opened.plaintext) {
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end();
  await finished(out);
}

export async function runStxSealed(file: TestFile, outDir: string, place: Placement = LOCAL): Promise<RunResult> {
  const recvDir = join(outDir, 'received');
  await mkdir(recvDir, { recursive: true });
  const timeoutMs = transferTimeoutMs(file.size);
  const env = { ...process.env, STX_HOME: outDir };
  const id = generateAgeIdentity();
  const daemon = await startStxDaemon(recvDir, env, timeoutMs, place);
  if ('failed' in daemon) return { kind: 'failed', reason: daemon.failed };
  const sendArgs = [place.host, String(daemon.port), file.path, '--seal', id.recipient, '--fingerprint', daemon.fingerprint, '--json', '--quiet'];
  const t0 = performance.now();
  const sent = await startMeasured(...place.command('client', ...commandLine(SEND_CLI, sendArgs)), { timeoutMs, env }).done;
  const wallSeconds = (performance.now() - t0) / 1000;
  await daemon.proc.signal('SIGTERM');
  const received = await daemon.proc.done;
  if (sent.exitCode !== 0 || sent.rusage === null) return { kind: 'failed', reason: describeExit('stx-send --seal', sent) };
  if (received.rusage === null) return { kind: 'failed', reason: describeExit('stx-recv', received) };
  const sealed = join(recvDir, `${basename(file.path)}.age`);
  if (!existsSync(sealed)) return { kind: 'failed', reason: `no ${basename(sealed)} in ${recvDir}` };
  const plainPath = join(outDir, 'opened');
  await openInto(sealed, id.identity, plainPath);
  return {
    kind: 'ok',
    wallSeconds,
    sender: sent.rusage,
    receiver: received.rusage,
    receivedPath: plainPath,
    notes: ['stx-send --seal: the age file the server stored was opened afterwards (not timed) and its plaintext checked'],
  };
}

export const stxSealed: Contender = {
  name: 'stx-sealed',
  measures: 'stx-send --seal RECIPIENT → stx-recv (the file sealed into age on the client as it is sent); wall = sender start → sender exit',
  available: () => Promise.resolve(existsSync(RECV_CLI) && existsSync(SEND_CLI) ? null : 'not available: stx-recv or stx-send not built yet (npm run build)'),
  version: () => Promise.resolve('this checkout'),
  run: runStxSealed,
};
