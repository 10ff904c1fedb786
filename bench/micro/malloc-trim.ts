// What keeping freed memory in malloc's heap (src/runtime/young-gc.ts keepFreedMemory: glibc's
// trim threshold raised to 32 MiB) buys on top of young-GC pacing: the data path's buffer churn
// (churn.ts) in a child process with and without it, in turn, with young-GC pacing at the
// client's interval (the client is the side that keeps freed memory) and without pacing.
//
//   node dist/bench/micro/malloc-trim.js [--runs N]
import { pathToFileURL } from 'node:url';
import { CHURN_COLUMNS, churn } from './child.js';
import { compare, runsArg, table, type Row } from './lib.js';

const MIB = 256;

export async function mallocTrimRows(runs: number): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [job, pacing] of [['young-gc every 8 MiB', ',young-gc'], ['no young-gc pacing', '']] as const) {
    rows.push(...(await compare(`churn ${MIB} MiB, ${job}`, runs, [
      { name: 'keep freed memory (threshold 32 MiB)', run: () => churn(`aligned-memory,keep-freed-memory${pacing}`, MIB, 8) },
      { name: 'malloc trims (default threshold)', run: () => churn(`aligned-memory${pacing}`, MIB, 8) },
    ])));
  }
  return rows;
}

export const MALLOC_TRIM_TITLE = 'glibc trim threshold: freed memory kept or given back, one process per run';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = runsArg(process.argv.slice(2));
  process.stdout.write(table(MALLOC_TRIM_TITLE, runs, await mallocTrimRows(runs), CHURN_COLUMNS));
}
