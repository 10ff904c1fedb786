// The order `npm test` hands the test files to node's runner: longest first. The runner starts
// files in the order given, a few at a time (--test-concurrency), so a long file started last
// runs on alone while the other slot idles; most of the long files wait on timers and peers, not
// the CPU (a whole run keeps about one of the two cores busy). Longest first is the classic
// greedy schedule for that.
//
//   node dist/test/support/test-order.js   prints the built test files, one per line
//
// The weights are seconds of wall time per file, measured one file at a time on the 2-core
// machine (`node --test dist/test/X.test.js`); a file not listed counts as short. They only
// order the files: a wrong weight costs time, never a test.
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { DIST_DIR, REPO_ROOT } from './paths.js';

const SECONDS: Readonly<Record<string, number>> = {
  'hostile/resources.test.js': 120,
  'hostile/client-faults.test.js': 100,
  'recv-cli.test.js': 60,
  'hostile/crypto.test.js': 55,
  'hostile/client-flood.test.js': 60,
  'hostile/uploads.test.js': 50,
  'hostile/frames.test.js': 45,
  'e2e-s3.test.js': 80,
  'bench-smoke.test.js': 30,
  'e2e-takeover.test.js': 40,
  'e2e-upload.test.js': 34,
  'e2e-download.test.js': 32,
  'hostile/memory.test.js': 28,
  'send-failures.test.js': 25,
  'hostile/names.test.js': 25,
  'e2e-concurrency.test.js': 18,
  'hostile/disk.test.js': 17,
  'store.test.js': 15,
  'e2e-resume.test.js': 15,
  'bench-wan.test.js': 15,
  'e2e-ranges.test.js': 8,
  'e2e-tree.test.js': 14,
  'fuzz.test.js': 12,
  'conformance.test.js': 11,
  'e2e-client.test.js': 9,
  'e2e-seal.test.js': 8,
  'e2e-pipeline.test.js': 11,
  'hostile/handshake-flood.test.js': 8,
  'hostile/namespaces.test.js': 7,
  'e2e-detach.test.js': 4,
};

/** Every *.test.js under `dir`, relative to it, with '/' separators. */
function testFiles(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...testFiles(dir, rel));
    // Only tests whose source still exists: `npm run build` is incremental and leaves the output
    // of a deleted test file behind.
    else if (entry.isFile() && entry.name.endsWith('.test.js') && existsSync(path.join(REPO_ROOT, 'test', rel.replace(/\.js$/, '.ts')))) out.push(rel);
  }
  return out;
}

/** The built test files, longest first; ties (the short ones) by name. */
export function orderedTestFiles(root = path.join(DIST_DIR, 'test')): string[] {
  const weight = (f: string): number => SECONDS[f] ?? 1;
  return testFiles(root)
    .sort((a, b) => weight(b) - weight(a) || (a < b ? -1 : a > b ? 1 : 0))
    .map((f) => path.join(root, f));
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  process.stdout.write(`${orderedTestFiles().join('\n')}\n`);
}
