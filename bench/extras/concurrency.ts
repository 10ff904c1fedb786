// Many clients at once against one stx-recv: `clients` uploads of the same file under different
// names, all started together from this process (the client's own upload(), so no process
// start-up per client), each received file checked by SHA-256. Aggregate MiB/s = bytes of all
// files ÷ wall time from the first connect to the last confirmed upload.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { upload } from '../../src/send/upload.js';
import { sha256File, type TestFile } from '../lib/testfile.js';

/** Attempts without progress before one upload gives up (the CLI's default). */
const RETRIES = 8;

export interface ConcurrencyResult {
  readonly clients: number;
  readonly fileBytes: number;
  readonly seconds: number;
  readonly aggregateMiBPerSecond: number;
  /** Received files whose SHA-256 matched, out of `clients`. */
  readonly verified: number;
  readonly failures: readonly string[];
}

const name = (i: number): string => `c${String(i).padStart(3, '0')}.bin`;

export async function concurrentUploads(
  target: { readonly port: number; readonly fingerprint: string },
  file: TestFile,
  clients: number,
  recvDir: string,
): Promise<ConcurrencyResult> {
  const t0 = performance.now();
  const outcomes = await Promise.allSettled(
    Array.from({ length: clients }, (_, i) =>
      upload({
        host: '127.0.0.1',
        port: target.port,
        file: file.path,
        name: name(i),
        fingerprint: target.fingerprint,
        knownHostsFile: '/dev/null',
        retries: RETRIES,
      }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  const failures: string[] = [];
  let verified = 0;
  for (const [i, o] of outcomes.entries()) {
    if (o.status === 'rejected') {
      failures.push(`${name(i)}: ${o.reason instanceof Error ? o.reason.message : String(o.reason)}`);
      continue;
    }
    const sha = await sha256File(join(recvDir, name(i))).catch(() => '');
    if (sha === file.sha256 && o.value.sha256 === file.sha256) verified++;
    else failures.push(`${name(i)}: received file's SHA-256 does not match`);
  }
  return {
    clients,
    fileBytes: file.size,
    seconds,
    aggregateMiBPerSecond: (clients * file.size) / 1024 ** 2 / seconds,
    verified,
    failures,
  };
}
