// What a daemon holds on disk and says in its log, read by end-to-end tests while it runs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeRecordFile } from '../../src/storage/local/record.js';

/** Highest durable offset recorded for any partial upload under `out`. */
export function durableOnDisk(out: string): number {
  const dir = path.join(out, '.stx', 'partials');
  if (!existsSync(dir)) return 0;
  let best = 0;
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.json')) continue;
    try {
      // A record being replaced reads as none: read it on the next poll.
      best = Math.max(best, decodeRecordFile(readFileSync(path.join(dir, f)))?.durable ?? 0);
    } catch {
      // Gone meanwhile.
    }
  }
  return best;
}

/** Polls `cond` every 10 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The daemon's JSON log lines (stdout when not a TTY) whose `event` is `event`. */
export function logEvents(stdout: string, event: string): Record<string, unknown>[] {
  const found: Record<string, unknown>[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v === 'object' && v !== null && Reflect.get(v, 'event') === event) found.push(Object.fromEntries(Object.entries(v)));
    } catch {
      // A line cut by a buffer boundary: not an event.
    }
  }
  return found;
}
