// What every bench run does before its first measurement: ask each contender whether it can run
// here, and make the test file with the page cache written back.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Contender } from '../contenders/types.js';
import type { ContenderInfo } from './report.js';
import { makeTestFile, type TestFile } from './testfile.js';

const SYNC_TIMEOUT_MS = 120_000;

/** Writes back dirty pages, so that one contender's writes are not flushed in another's time. */
export function syncDisks(): void {
  spawnSync('sync', { timeout: SYNC_TIMEOUT_MS });
}

/** Each contender's version, or why it cannot run here (logged); and those that can. */
export async function checkContenders(contenders: readonly Contender[], log: (line: string) => void): Promise<{ infos: ContenderInfo[]; ready: Contender[] }> {
  const infos: ContenderInfo[] = [];
  const ready: Contender[] = [];
  for (const c of contenders) {
    const unavailable = await c.available();
    infos.push({ name: c.name, measures: c.measures, version: unavailable === null ? await c.version() : '', unavailable });
    if (unavailable === null) ready.push(c);
    else log(`${c.name}: ${unavailable}`);
  }
  return { infos, ready };
}

/** The test file of `size` bytes in `dir`, written back to disk. */
export async function prepareTestFile(dir: string, size: number, log: (line: string) => void): Promise<TestFile> {
  log(`making a ${size}-byte test file in ${dir}`);
  const file = await makeTestFile(join(dir, 'payload.bin'), size);
  syncDisks();
  return file;
}
