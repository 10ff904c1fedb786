// What young-GC pacing (src/runtime/young-gc.ts YoungGenerationCollector) buys: the data path's
// buffer churn (churn.ts) in a child process with and without it, in turn, as each side runs it:
// the daemon every 4 MiB with malloc trimming, the client every 8 MiB keeping freed memory.
//
//   node dist/bench/micro/young-gc.js [--runs N]
import { pathToFileURL } from 'node:url';
import { CHURN_COLUMNS, churn } from './child.js';
import { compare, runsArg, table, type Row } from './lib.js';

const MIB = 256;

export async function youngGcRows(runs: number): Promise<Row[]> {
  const trims = 'aligned-memory';
  const keeps = 'aligned-memory,keep-freed-memory';
  return [
    ...(await compare(`daemon: churn ${MIB} MiB, malloc trims`, runs, [
      { name: 'young-gc every 4 MiB', run: () => churn(`${trims},young-gc`, MIB, 4) },
      { name: 'no pacing (V8 decides)', run: () => churn(trims, MIB, 4) },
    ])),
    ...(await compare(`client: churn ${MIB} MiB, freed memory kept`, runs, [
      { name: 'young-gc every 8 MiB', run: () => churn(`${keeps},young-gc`, MIB, 8) },
      { name: 'no pacing (V8 decides)', run: () => churn(keeps, MIB, 8) },
    ])),
  ];
}

export const YOUNG_GC_TITLE = 'Young-GC pacing: the data path\'s buffer churn, one process per run';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = runsArg(process.argv.slice(2));
  process.stdout.write(table(YOUNG_GC_TITLE, runs, await youngGcRows(runs), CHURN_COLUMNS));
}
