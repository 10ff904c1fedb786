// AES-256-GCM throughput: node:crypto (through our record layer, src/crypto/record.ts) against
// node-forge, on the same data in 1 MiB records (the largest DATA record, §2, §8). The loops are
// bounded: 64 MiB for node:crypto, 8 MiB for forge (about 100x slower). Also times small records
// to show the per-record cost of a createCipheriv per record.
//
//   npx tsc -p tsconfig.json && node dist/bench/crypto.js
import { randomBytes } from 'node:crypto';
import forge from 'node-forge';
import { RecordOpener, RecordSealer, recordNonce } from '../src/crypto/index.js';

const MiB = 1024 * 1024;
const RECORD_BYTES = 1 * MiB;
const NODE_TOTAL_BYTES = 64 * MiB;
const FORGE_TOTAL_BYTES = 8 * MiB;
const SMALL_RECORD_BYTES = 16 * 1024;
const SMALL_TOTAL_BYTES = 64 * MiB;

const key = randomBytes(32);
const iv = randomBytes(12);
const record = randomBytes(RECORD_BYTES);

function rate(bytes: number, startNs: bigint): number {
  const seconds = Number(process.hrtime.bigint() - startNs) / 1e9;
  return bytes / MiB / seconds;
}

function benchNode(recordBytes: number, total: number): { seal: number; open: number } {
  const body = record.subarray(0, recordBytes);
  const n = total / recordBytes;
  const sealer = new RecordSealer(key, iv);
  const sealed: Buffer[] = [];
  let t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const pieces = sealer.seal(body);
    if (i < 8) sealed.push(Buffer.concat(pieces));
  }
  const seal = rate(total, t);
  // Open needs the records in order: reuse the first 8 with fresh openers at their seq.
  t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const j = i % sealed.length;
    const rec = sealed[j];
    if (rec === undefined) throw new Error('no record');
    new RecordOpener(key, iv, { start: { seq: j } }).open(rec);
  }
  return { seal, open: rate(total, t) };
}

function benchForge(total: number): { seal: number; check: Buffer } {
  const n = total / RECORD_BYTES;
  const data = forge.util.createBuffer(record.toString('binary'));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(RECORD_BYTES + 16);
  let first: Buffer | null = null;
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const cipher = forge.cipher.createCipher('AES-GCM', forge.util.createBuffer(key.toString('binary')));
    cipher.start({ iv: recordNonce(iv, i).toString('binary'), additionalData: header.toString('binary'), tagLength: 128 });
    cipher.update(data.copy());
    cipher.finish();
    if (first === null) first = Buffer.concat([header, Buffer.from(cipher.output.getBytes(), 'binary'), Buffer.from(cipher.mode.tag.getBytes(), 'binary')]);
  }
  if (first === null) throw new Error('no record');
  return { seal: rate(total, t), check: first };
}

// Same bytes from both implementations, or the comparison is meaningless.
const reference = Buffer.concat(new RecordSealer(key, iv).seal(record));
const node1m = benchNode(RECORD_BYTES, NODE_TOTAL_BYTES);
const node16k = benchNode(SMALL_RECORD_BYTES, SMALL_TOTAL_BYTES);
const f = benchForge(FORGE_TOTAL_BYTES);
if (!f.check.equals(reference)) throw new Error('node-forge and node:crypto disagree on the first record');

const fmt = (x: number): string => x.toFixed(1).padStart(8);
console.log(`AES-256-GCM, ${process.version}, ${process.arch}`);
console.log(`node:crypto seal, 1 MiB records x ${NODE_TOTAL_BYTES / RECORD_BYTES}: ${fmt(node1m.seal)} MiB/s`);
console.log(`node:crypto open, 1 MiB records x ${NODE_TOTAL_BYTES / RECORD_BYTES}: ${fmt(node1m.open)} MiB/s`);
console.log(`node:crypto seal, 16 KiB records x ${SMALL_TOTAL_BYTES / SMALL_RECORD_BYTES}: ${fmt(node16k.seal)} MiB/s`);
console.log(`node:crypto open, 16 KiB records x ${SMALL_TOTAL_BYTES / SMALL_RECORD_BYTES}: ${fmt(node16k.open)} MiB/s`);
console.log(`node-forge  seal, 1 MiB records x ${FORGE_TOTAL_BYTES / RECORD_BYTES}: ${fmt(f.seal)} MiB/s`);
console.log(`ratio node:crypto / node-forge (seal, 1 MiB records): ${(node1m.seal / f.seal).toFixed(0)}x`);
