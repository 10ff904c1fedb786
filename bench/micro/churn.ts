// The child process of the young-GC and malloc micro-benchmarks: churns buffers the way the data
// path does, under the STX_TUNING its parent gives it, and prints one JSON line of what it cost
// (its own resource usage, read just before it exits). Per 1 MiB record: the sender's seal drops
// its ciphertext buffers (node:crypto allocates each update's output), the receiver's socket drops
// a new 64 KiB buffer per read and its open drops each update's plaintext buffer (copied into a
// pooled body). Everything is reported dropped to one YoungGenerationCollector, as the data path
// does; the event loop turns once per record, as it does between socket reads.
//
//   STX_TUNING=… node dist/bench/micro/churn.js [MiB] [interval MiB]
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { setImmediate as turn } from 'node:timers/promises';
import { RecordOpener, RecordSealer } from '../../src/crypto/record.js';
import { encodeDataHead } from '../../src/proto/codec.js';
import { DATA_HEADER_BYTES, MAX_DATA_CHUNK_BYTES } from '../../src/proto/limits.js';
import { alignedMemory } from '../../src/runtime/aligned-memory.js';
import { tuneRuntime } from '../../src/runtime/tuning.js';
import { keepFreedMemory, YoungGenerationCollector } from '../../src/runtime/young-gc.js';

const MiB = 1024 * 1024;
const MAX_MIB = 4096;
const BODY_BYTES = 1 + DATA_HEADER_BYTES + MAX_DATA_CHUNK_BYTES;
const SLOT_BYTES = MAX_DATA_CHUNK_BYTES + 4096;

export interface ChurnReport {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly maxRssMiB: number;
  readonly minorFaults: number;
}

/**
 * This process's peak resident set in KiB. Not getrusage's maxrss: Linux carries that over
 * execve from the process that forked us (the parent's peak), so it is read from VmHWM.
 */
async function peakRssKiB(): Promise<number> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  return kib === undefined ? process.resourceUsage().maxRSS : Number(kib);
}

async function main(): Promise<void> {
  const mib = Number(process.argv[2] ?? 512);
  const intervalMiB = Number(process.argv[3] ?? 4);
  if (!Number.isInteger(mib) || mib < 1 || mib > MAX_MIB) throw new RangeError(`MiB must be an integer in 1..${MAX_MIB}`);
  if (!Number.isInteger(intervalMiB) || intervalMiB < 1) throw new RangeError('interval must be a positive integer');
  tuneRuntime(['aligned-memory', 'young-gc', 'keep-freed-memory']);
  keepFreedMemory();
  const youngGc = new YoungGenerationCollector(intervalMiB * MiB);
  const key = randomBytes(32);
  const iv = randomBytes(12);
  const sealer = new RecordSealer(key, iv);
  const opener = new RecordOpener(key, iv);
  // The sender's read buffer and the receiver's pooled body, where aligned memory is on.
  const memory = alignedMemory(2 * SLOT_BYTES, true);
  const chunk = memory === null ? Buffer.allocUnsafeSlow(MAX_DATA_CHUNK_BYTES) : Buffer.from(memory, 0, MAX_DATA_CHUNK_BYTES);
  const body = memory === null ? Buffer.allocUnsafeSlow(BODY_BYTES) : Buffer.from(memory, 2 * SLOT_BYTES - BODY_BYTES, BODY_BYTES);
  chunk.fill(1);
  const records = (mib * MiB) / MAX_DATA_CHUNK_BYTES;
  const cpu = process.cpuUsage();
  const start = performance.now();
  for (let i = 0; i < records; i++) {
    const wire = sealer.seal([encodeDataHead(i * MAX_DATA_CHUNK_BYTES), chunk]);
    let sealed = 0;
    for (const piece of wire) sealed += piece.length;
    youngGc.dropped(sealed);
    const stream = opener.begin(wire[0] ?? Buffer.alloc(0), body);
    // What a socket hands over: the record's bytes after its header, each piece in a new buffer.
    for (const sent of wire.slice(1)) {
      const piece = Buffer.from(sent);
      stream.push(piece);
      youngGc.dropped(piece.length);
    }
    stream.finish();
    await turn();
  }
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  const report: ChurnReport = {
    wallMs,
    cpuMs: (used.user + used.system) / 1000,
    maxRssMiB: (await peakRssKiB()) / 1024,
    minorFaults: process.resourceUsage().minorPageFault,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
