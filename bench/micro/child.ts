// Runs churn.js (the data path's buffer churn) in a child process under a given STX_TUNING: peak
// RSS and page faults are per process, so each variant needs a process of its own.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChurnReport } from './churn.js';
import type { Sample } from './lib.js';

const CHURN = fileURLToPath(new URL('./churn.js', import.meta.url));
/** A run churns about 1.5 GiB of buffers; far below this on any machine we run on. */
const CHILD_TIMEOUT_MS = 120_000;

export function churn(tuning: string, mib: number, intervalMiB: number): Sample {
  const out = execFileSync(process.execPath, [CHURN, String(mib), String(intervalMiB)], {
    env: { ...process.env, STX_TUNING: tuning },
    encoding: 'utf8',
    timeout: CHILD_TIMEOUT_MS,
  });
  const r = JSON.parse(out) as ChurnReport;
  return { wallMs: r.wallMs, cpuMs: r.cpuMs, extra: { rss: r.maxRssMiB, faults: r.minorFaults / 1000 } };
}

export const CHURN_COLUMNS = [
  ['rss', 'peak RSS MiB'],
  ['faults', 'minor faults ×1000'],
] as const;
