// Entry point of `npm run bench:micro`: every runtime-tuning micro-benchmark, each comparing with
// and without its feature in the same run (median of N runs, variants in turn), one table each.
// About two minutes at the default 5 runs.
//
//   node dist/bench/micro/run.js [--runs N]
import { ALIGNED_TITLE, alignedMemoryRows } from './aligned-memory.js';
import { CHURN_COLUMNS } from './child.js';
import { runsArg, table } from './lib.js';
import { MALLOC_TRIM_TITLE, mallocTrimRows } from './malloc-trim.js';
import { YOUNG_GC_TITLE, youngGcRows } from './young-gc.js';

const runs = runsArg(process.argv.slice(2));
process.stdout.write(`Node ${process.version}, ${process.platform} ${process.arch}\n\n`);
process.stdout.write(table(ALIGNED_TITLE, runs, await alignedMemoryRows(runs)));
process.stdout.write(table(YOUNG_GC_TITLE, runs, await youngGcRows(runs), CHURN_COLUMNS));
process.stdout.write(table(MALLOC_TRIM_TITLE, runs, await mallocTrimRows(runs), CHURN_COLUMNS));
