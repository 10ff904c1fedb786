// Peak resident memory of both stx sides by file size: one stx transfer per size, measured like
// the main runs (GNU time's maxrss of stx-send and of the stx-recv daemon), the file checked by
// SHA-256.
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { runStx } from '../contenders/stx.js';
import { makeTestFile, sha256File } from '../lib/testfile.js';

export interface MemoryResult {
  readonly fileBytes: number;
  /** Null when the transfer failed (see `failure`). */
  readonly senderPeakRssMiB: number | null;
  readonly receiverPeakRssMiB: number | null;
  readonly mibPerSecond: number | null;
  readonly failure: string | null;
}

const MiB = 1024 * 1024;

export async function peakMemory(sizes: readonly number[], tmpRoot: string, syncDisks: () => void): Promise<MemoryResult[]> {
  const results: MemoryResult[] = [];
  for (const size of sizes) {
    const dir = await mkdtemp(join(tmpRoot, `memory-${size}-`));
    try {
      const file = await makeTestFile(join(dir, 'payload.bin'), size);
      syncDisks();
      const r = await runStx(file, join(dir, 'run'));
      if (r.kind === 'failed') {
        results.push({ fileBytes: size, senderPeakRssMiB: null, receiverPeakRssMiB: null, mibPerSecond: null, failure: r.reason });
        continue;
      }
      const ok = (await sha256File(r.receivedPath)) === file.sha256;
      results.push({
        fileBytes: size,
        senderPeakRssMiB: r.sender.maxRssBytes / MiB,
        receiverPeakRssMiB: r.receiver.maxRssBytes / MiB,
        mibPerSecond: size / MiB / r.wallSeconds,
        failure: ok ? null : "received file's SHA-256 does not match",
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
      syncDisks();
    }
  }
  return results;
}
