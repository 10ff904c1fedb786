// What sealing a PUT_INLINE in parts (src/proto/codec.ts encodeBodyParts: the file's bytes apart
// from the rest of the frame) saves over encoding the whole body first (two copies of the data and
// two allocations per file), for stx-send's 10,000 files of 4 KiB: CPU milliseconds of encode and
// seal, each variant in turn in one process. On the shared 2-core machine (2026-12-02, two runs of
// 5 under different loads): whole 205 and 404 ms, parts 152 and 309 ms: a quarter less.
//
//   node dist/bench/micro/put-inline.js [--runs N]
import { createHash, randomBytes } from 'node:crypto';
import { RecordSealer } from '../../src/crypto/record.js';
import { encodeBody, encodeBodyParts } from '../../src/proto/codec.js';
import { runsArg } from './lib.js';

const FILES = 10_000;
const FILE_BYTES = 4096;

const runs = runsArg(process.argv.slice(2));
const key = randomBytes(32);
const iv = randomBytes(12);
const files = Array.from({ length: FILES }, () => randomBytes(FILE_BYTES));
const hashes = files.map((d) => createHash('sha256').update(d).digest());

/** CPU milliseconds to encode and seal every file once, whole or in parts. */
function run(parts: boolean): number {
  const sealer = new RecordSealer(key, iv);
  const start = process.cpuUsage();
  files.forEach((data, i) => {
    const frame = { type: 'PUT_INLINE', name: `d${i % 100}/f${i}.bin`, mtime: 1_700_000_000_000, mode: 0o644, sha256: hashes[i] ?? Buffer.alloc(32), data } as const;
    sealer.seal(parts ? encodeBodyParts(frame) : encodeBody(frame));
  });
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const whole: number[] = [];
const inParts: number[] = [];
for (let r = 0; r < runs; r++) {
  whole.push(run(false));
  inParts.push(run(true));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
process.stdout.write(`${FILES} PUT_INLINE of ${FILE_BYTES} bytes, encode + seal, CPU ms (median of ${runs}): whole ${median(whole).toFixed(0)}, parts ${median(inParts).toFixed(0)}\n`);
