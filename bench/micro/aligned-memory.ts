// What page-aligned memory (src/runtime/aligned-memory.ts) buys, each job with and without it in
// the same process, in turn: AES-256-GCM seal and open of 1 MiB records (src/crypto/record.ts),
// the copy of cipher output into shared memory (V8's set() at and off 8-byte alignment, and the
// memcpy of Buffer.fill that RecordStream uses), a
// file read into the sender's buffers, and the receiver's write (O_DIRECT needs aligned memory,
// src/storage/local/direct-io.ts; without it every chunk goes through the page cache).
//
//   node dist/bench/micro/aligned-memory.js [--runs N]
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fdatasyncSync, mkdtempSync, openSync, readSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RecordOpener, RecordSealer } from '../../src/crypto/record.js';
import { GCM_UPDATE_BYTES } from '../../src/crypto/aead.js';
import { encodeDataHead } from '../../src/proto/codec.js';
import { DATA_HEADER_BYTES, LENGTH_PREFIX_BYTES, MAX_DATA_CHUNK_BYTES } from '../../src/proto/limits.js';
import { alignedMemory } from '../../src/runtime/aligned-memory.js';
import { compare, MiB, runsArg, table, timed, type Row, type Sample } from './lib.js';

/** Bytes each job moves per run; bounded so that the whole file runs in well under a minute. */
const VOLUME_BYTES = 128 * MiB;
/** The write job goes to disk: less of it. */
const WRITE_VOLUME_BYTES = 64 * MiB;
/** What a socket read hands the receiver at most (libuv reads 64 KiB). */
const SOCKET_PIECE_BYTES = 64 * 1024;
const PAGE_BYTES = 4096;
/** A DATA body: type ‖ offset ‖ data (§2.2), as BodyPool lays it out: data on a page boundary. */
const HEAD_BYTES = 1 + DATA_HEADER_BYTES;
const RECORDS = VOLUME_BYTES / MAX_DATA_CHUNK_BYTES;

const key = randomBytes(32);
const iv = randomBytes(12);

/** `bytes` of page-aligned memory as a Buffer starting `offset` bytes into it. */
function aligned(bytes: number, offset = 0, shared = false): Buffer {
  const memory = alignedMemory(offset + bytes, shared);
  if (memory === null) throw new Error('no aligned memory here (WebAssembly.Memory failed)');
  return Buffer.from(memory, offset, bytes);
}

/** Like Node's own large buffers: malloc'd, so 16 bytes into a page. */
const malloced = (bytes: number): Buffer => Buffer.allocUnsafeSlow(bytes);

function sealJob(source: Buffer): Sample {
  source.fill(7);
  const sealer = new RecordSealer(key, iv);
  return timed(() => {
    for (let i = 0; i < RECORDS; i++) sealer.seal([encodeDataHead(i * MAX_DATA_CHUNK_BYTES), source]);
  });
}

/** The wire bytes of RECORDS DATA records, sealed once for every open run. */
function sealedStream(): Buffer[] {
  const sealer = new RecordSealer(key, iv);
  const chunk = randomBytes(MAX_DATA_CHUNK_BYTES);
  return Array.from({ length: RECORDS }, (_, i) => Buffer.concat(sealer.seal([encodeDataHead(i * MAX_DATA_CHUNK_BYTES), chunk])));
}

function openJob(records: readonly Buffer[], body: Buffer): Sample {
  const opener = new RecordOpener(key, iv);
  return timed(() => {
    for (const record of records) {
      const stream = opener.begin(record.subarray(0, LENGTH_PREFIX_BYTES), body);
      for (let at = LENGTH_PREFIX_BYTES; at < record.length; at += SOCKET_PIECE_BYTES) stream.push(record.subarray(at, at + SOCKET_PIECE_BYTES));
      stream.finish();
    }
  });
}

/**
 * Cipher-update-sized outputs copied into shared memory, `skew` bytes past 8-byte alignment, by
 * V8 (set) or by one memcpy in Node's C++ (fill with a buffer as long as the range).
 */
function sharedCopyJob(into: Buffer, skew: number, how: 'set' | 'fill'): Sample {
  const piece = Buffer.allocUnsafeSlow(GCM_UPDATE_BYTES).fill(3);
  return timed(() => {
    for (let copied = 0; copied < VOLUME_BYTES; copied += piece.length) {
      const at = ((copied % (into.length - piece.length - 8)) & ~7) + skew;
      if (how === 'set') into.set(piece, at);
      else into.fill(piece, at, at + piece.length);
    }
  });
}

function readJob(fd: number, into: Buffer): Sample {
  return timed(() => {
    for (let at = 0; at < VOLUME_BYTES; at += into.length) readSync(fd, into, 0, into.length, at);
  });
}

function writeJob(path: string, from: Buffer, direct: boolean): Sample {
  from.fill(5);
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | (direct ? constants.O_DIRECT : 0);
  const fd = openSync(path, flags, 0o600);
  try {
    return timed(() => {
      for (let at = 0; at < WRITE_VOLUME_BYTES; at += from.length) writeSync(fd, from, 0, from.length, at);
      fdatasyncSync(fd);
    });
  } finally {
    closeSync(fd);
    unlinkSync(path);
  }
}

export async function alignedMemoryRows(runs: number): Promise<Row[]> {
  const rows: Row[] = [];
  rows.push(...(await compare('seal 1 MiB records', runs, [
    { name: 'source aligned', run: () => sealJob(aligned(MAX_DATA_CHUNK_BYTES)) },
    { name: 'source malloc', run: () => sealJob(malloced(MAX_DATA_CHUNK_BYTES)) },
  ])));
  const records = sealedStream();
  const poolSlot = (shared: boolean): Buffer => aligned(HEAD_BYTES + MAX_DATA_CHUNK_BYTES, PAGE_BYTES - HEAD_BYTES, shared);
  rows.push(...(await compare('open 1 MiB records', runs, [
    { name: 'into pool slot (aligned, shared)', run: () => openJob(records, poolSlot(true)) },
    { name: 'into aligned, not shared', run: () => openJob(records, poolSlot(false)) },
    { name: 'into malloc', run: () => openJob(records, malloced(HEAD_BYTES + MAX_DATA_CHUNK_BYTES)) },
  ])));
  const sharedArena = aligned(4 * MiB, 0, true);
  rows.push(...(await compare('copy cipher output into shared memory', runs, [
    { name: 'set(), 8-byte aligned', run: () => sharedCopyJob(sharedArena, 0, 'set') },
    { name: 'set(), 3 bytes off', run: () => sharedCopyJob(sharedArena, 3, 'set') },
    { name: 'fill(), 3 bytes off (RecordStream)', run: () => sharedCopyJob(sharedArena, 3, 'fill') },
  ])));

  const dir = mkdtempSync(join(tmpdir(), 'stx-micro-'));
  try {
    const file = join(dir, 'read.bin');
    const fd = openSync(file, 'w+', 0o600);
    try {
      const fill = randomBytes(MAX_DATA_CHUNK_BYTES);
      for (let at = 0; at < VOLUME_BYTES; at += fill.length) writeSync(fd, fill, 0, fill.length, at);
      rows.push(...(await compare('read 1 MiB chunks (page cache)', runs, [
        { name: 'into aligned', run: () => readJob(fd, aligned(MAX_DATA_CHUNK_BYTES)) },
        { name: 'into malloc', run: () => readJob(fd, malloced(MAX_DATA_CHUNK_BYTES)) },
      ])));
    } finally {
      closeSync(fd);
    }
    const out = join(dir, 'write.bin');
    rows.push(...(await compare(`write ${WRITE_VOLUME_BYTES / MiB} MiB + fdatasync`, runs, [
      { name: 'O_DIRECT from aligned', run: () => writeJob(out, aligned(MAX_DATA_CHUNK_BYTES), true) },
      { name: 'page cache from malloc', run: () => writeJob(out, malloced(MAX_DATA_CHUNK_BYTES), false) },
    ])));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

export const ALIGNED_TITLE = `Aligned memory: ${VOLUME_BYTES / MiB} MiB per run`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = runsArg(process.argv.slice(2));
  process.stdout.write(table(ALIGNED_TITLE, runs, await alignedMemoryRows(runs)));
}
