// The data path (spec §2.2, §8). Receiver: long DATA records opened piece by piece as they arrive
// (RecordStream, FrameChannel.nextData) into pooled buffers (BodyPool) must mean exactly what
// opening the whole record means: same frames, same errors, nothing unauthenticated let out.
// Sender: chunks read into aligned buffers are the file's bytes.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameChannel, type BodyBuffers, type Received, type ReceivedData } from '../src/crypto/channel.js';
import { RecordOpener, RecordSealer } from '../src/crypto/record.js';
import { encodeBody, encodeDataHead } from '../src/proto/codec.js';
import { StxError } from '../src/proto/errors.js';
import type { Frame } from '../src/proto/frames.js';
import { MAX_DATA_CHUNK_BYTES, MAX_FRAME_LENGTH_BYTES, MAX_RECORDS_PER_KEY } from '../src/proto/limits.js';
import { BodyPool } from '../src/transfer/body-pool.js';
import { isAligned } from '../src/storage/local/direct-io.js';
import { YoungGenerationCollector } from '../src/runtime/young-gc.js';
import { inAlignedMemory, PAGE_BYTES } from '../src/runtime/aligned-memory.js';
import { ChunkReader, ReadSlots, spareReadSlots } from '../src/transfer/source.js';

const RUNS = { numRuns: 60, seed: 0xda7a, endOnFailure: true };
const KEY = randomBytes(32);
const IV = randomBytes(12);
const LONG = 64 * 1024; // well above any control frame (§2), so nextData opens it piece by piece

const fresh: BodyBuffers = { take: (n) => Buffer.alloc(n), give: () => undefined };

/** Wire bytes of `bodies` sealed in order. */
function sealAll(bodies: readonly Buffer[]): Buffer {
  const sealer = new RecordSealer(KEY, IV);
  return Buffer.concat(bodies.flatMap((b) => sealer.seal(b)));
}

/** Splits `wire` at the given (sorted, in-range) cut points. */
function cut(wire: Buffer, at: readonly number[]): Buffer[] {
  const points = [...new Set(at.map((a) => a % (wire.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of [...points, wire.length]) {
    if (p > from) out.push(wire.subarray(from, p));
    from = p;
  }
  return out;
}

type Item = { kind: 'frame'; frame: Frame } | { kind: 'data'; offset: number; data: Buffer } | { kind: 'error'; code: string };

function drain(chunks: readonly Buffer[], useNextData: boolean): Item[] {
  const ch = new FrameChannel();
  ch.startOpening(new RecordOpener(KEY, IV));
  const items: Item[] = [];
  try {
    for (const c of chunks) {
      ch.push(c);
      for (;;) {
        const r: Received | ReceivedData | null = useNextData ? ch.nextData(fresh) : ch.next();
        if (r === null) break;
        if ('body' in r) items.push({ kind: 'data', offset: r.offset, data: Buffer.from(r.data) });
        else if (r.frame.type === 'DATA') items.push({ kind: 'data', offset: r.frame.offset, data: Buffer.from(r.frame.data) });
        else items.push({ kind: 'frame', frame: r.frame });
      }
    }
    ch.end();
  } catch (err) {
    items.push({ kind: 'error', code: err instanceof StxError ? err.code : String(err) });
  }
  return items;
}

describe('opening long DATA records piece by piece (FrameChannel.nextData)', () => {
  it('gives the same frames as whole-record opening, whatever the chunking (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 3 * LONG }), { minLength: 1, maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (sizes, cuts) => {
          const bodies: Buffer[] = [encodeBody({ type: 'PING', seq: 7 })];
          let offset = 0;
          for (const n of sizes) {
            bodies.push(Buffer.concat([encodeDataHead(offset), randomBytes(Math.min(n, MAX_DATA_CHUNK_BYTES))]));
            offset += n;
          }
          bodies.push(encodeBody({ type: 'END', sha256: Buffer.alloc(32, 1) }));
          const chunks = cut(sealAll(bodies), cuts);
          assert.deepEqual(drain(chunks, true), drain(chunks, false));
        },
      ),
      RUNS,
    );
  });

  it('one altered byte anywhere in a long record: DECRYPT_FAILED, exactly as for a whole record', () => {
    const body = Buffer.concat([encodeDataHead(0), randomBytes(3 * LONG)]);
    const wire = sealAll([body]);
    for (const at of [4, 5, 4 + 9, wire.length >> 1, wire.length - 17, wire.length - 1]) {
      const bad = Buffer.from(wire);
      bad[at] = (bad[at] ?? 0) ^ 0x40;
      const chunks = cut(bad, [1000, 70_000, 140_000]);
      const got = drain(chunks, true);
      assert.deepEqual(got, [{ kind: 'error', code: 'DECRYPT_FAILED' }], `byte ${at}`);
      assert.deepEqual(got, drain(chunks, false));
    }
  });

  it('a long record that is not DATA fails as decodeBody says (FRAME_TOO_LARGE, UNKNOWN_FRAME_TYPE)', () => {
    const ping = Buffer.concat([encodeBody({ type: 'PING', seq: 1 }), Buffer.alloc(LONG)]);
    const unknown = Buffer.concat([Buffer.from([0x7f]), Buffer.alloc(LONG)]);
    for (const [body, code] of [[ping, 'FRAME_TOO_LARGE'], [unknown, 'UNKNOWN_FRAME_TYPE']] as const) {
      const chunks = cut(sealAll([body]), [5000]);
      assert.deepEqual(drain(chunks, true), [{ kind: 'error', code }]);
      assert.deepEqual(drain(chunks, false), [{ kind: 'error', code }]);
    }
  });

  it('a DATA offset above 2^53 − 1 is MALFORMED_FRAME', () => {
    const head = Buffer.from([0x12, 0x00, 0x20, 0, 0, 0, 0, 0, 0]);
    const chunks = [sealAll([Buffer.concat([head, Buffer.alloc(LONG)])])];
    assert.deepEqual(drain(chunks, true), [{ kind: 'error', code: 'MALFORMED_FRAME' }]);
  });

  it('every buffer taken comes back once: through ReceivedData.body, or from the channel when the record fails or is abandoned', () => {
    const good = Buffer.concat([encodeDataHead(0), randomBytes(3 * LONG)]);
    const tampered = sealAll([good]);
    tampered[tampered.length >> 1] = (tampered[tampered.length >> 1] ?? 0) ^ 1;
    const notData = sealAll([Buffer.concat([encodeBody({ type: 'PING', seq: 1 }), Buffer.alloc(LONG)])]);
    const wholeGood = sealAll([good]);
    const cases: [string, Buffer, boolean, number][] = [
      ['opened', wholeGood, false, 0],
      ['failed tag', tampered, false, 0],
      ['not DATA', notData, false, 0],
      ['abandoned halfway', wholeGood.subarray(0, wholeGood.length >> 1), true, 0],
      // The opener refuses the record at its header (KEY_LIMIT) after the channel took a buffer for it.
      ['past the key limit', wholeGood, false, MAX_RECORDS_PER_KEY],
    ];
    for (const [name, wire, abandon, seq] of cases) {
      const out = new Map<Buffer, number>();
      const counting: BodyBuffers = {
        take: (n) => {
          const b = Buffer.alloc(n);
          out.set(b, 0);
          return b;
        },
        give: (b) => out.set(b, (out.get(b) ?? Number.NaN) + 1),
      };
      const ch = new FrameChannel();
      ch.startOpening(new RecordOpener(KEY, IV, { start: { seq } }));
      try {
        for (const c of cut(wire, [3000, 70_000])) {
          ch.push(c);
          for (let r = ch.nextData(counting); r !== null; r = ch.nextData(counting)) {
            if ('body' in r) counting.give(r.body);
          }
        }
      } catch {
        // the record's error; what matters here is the buffer
      }
      if (abandon) ch.abandon(counting);
      assert.equal(out.size, 1, `${name}: one buffer taken`);
      assert.deepEqual([...out.values()], [1], `${name}: given back exactly once, as the object taken`);
    }
  });

  it('a connection that ends inside a long record is TRUNCATED', () => {
    const wire = sealAll([Buffer.concat([encodeDataHead(0), Buffer.alloc(LONG)])]);
    assert.deepEqual(drain([wire.subarray(0, 40_000)], true), [{ kind: 'error', code: 'TRUNCATED' }]);
  });
});

describe('RecordStream', () => {
  it('hands out nothing of a record whose tag fails, and zeroes what it had opened', () => {
    const body = Buffer.concat([encodeDataHead(0), Buffer.alloc(LONG, 0x5a)]);
    const wire = sealAll([body]);
    wire[wire.length - 1] = (wire[wire.length - 1] ?? 0) ^ 1;
    const into = Buffer.alloc(body.length);
    const opener = new RecordOpener(KEY, IV);
    const stream = opener.begin(wire.subarray(0, 4), into);
    stream.push(wire.subarray(4));
    assert.throws(() => stream.finish(), (e: unknown) => e instanceof StxError && e.code === 'DECRYPT_FAILED');
    assert.ok(into.equals(Buffer.alloc(body.length)), 'the opened plaintext was zeroed');
    assert.throws(() => opener.open(wire), (e: unknown) => e instanceof StxError && e.code === 'DECRYPT_FAILED', 'refuses all after a failure');
  });

  it('opens into shared memory at any offset, in pieces of any size, the same body as open() (property)', () => {
    // Where the daemon opens records: BodyPool's shared memory, whose copies are not V8's (record.ts).
    const shared = Buffer.from(new WebAssembly.Memory({ initial: 20, maximum: 20, shared: true }).buffer);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 * LONG }),
        fc.integer({ min: 0, max: 15 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 30 }),
        (n, skew, sizes) => {
          const body = Buffer.concat([encodeDataHead(0), randomBytes(n)]);
          const wire = Buffer.concat(new RecordSealer(KEY, IV).seal(body));
          const into = shared.subarray(skew, skew + body.length);
          const stream = new RecordOpener(KEY, IV).begin(wire.subarray(0, 4), into);
          for (let at = 4, i = 0; at < wire.length; i++) {
            const len = Math.min(sizes[i % sizes.length] ?? 1, wire.length - at);
            stream.push(wire.subarray(at, at + len));
            at += len;
          }
          assert.ok(stream.finish().equals(body));
          assert.ok(into.equals(body));
        },
      ),
      RUNS,
    );
  });

  it('counts like open(): the next record is the next seq, either way', () => {
    const bodies = [Buffer.concat([encodeDataHead(0), randomBytes(LONG)]), encodeBody({ type: 'PING', seq: 2 })];
    const sealer = new RecordSealer(KEY, IV);
    const [first, second] = bodies.map((b) => Buffer.concat(sealer.seal(b)));
    assert.ok(first !== undefined && second !== undefined);
    const opener = new RecordOpener(KEY, IV);
    const stream = opener.begin(first.subarray(0, 4), Buffer.alloc(MAX_FRAME_LENGTH_BYTES));
    for (let at = 4; at < first.length; at += 1000) stream.push(first.subarray(at, Math.min(at + 1000, first.length)));
    assert.deepEqual(stream.finish(), bodies[0]);
    assert.equal(opener.seq, 1);
    assert.deepEqual(opener.open(second), bodies[1]);
  });

  it('the first record fails with the handshake error, a record past the key limit with KEY_LIMIT', () => {
    const body = Buffer.concat([encodeDataHead(0), Buffer.alloc(LONG)]);
    const wire = Buffer.concat(new RecordSealer(randomBytes(32), IV).seal(body));
    const first = new RecordOpener(KEY, IV, { firstRecordError: { code: 'HANDSHAKE_FAILED', message: 'handshake failed' } });
    const s = first.begin(wire.subarray(0, 4), Buffer.alloc(body.length));
    s.push(wire.subarray(4));
    assert.throws(() => s.finish(), (e: unknown) => e instanceof StxError && e.code === 'HANDSHAKE_FAILED');
    const full = new RecordOpener(KEY, IV, { start: { seq: MAX_RECORDS_PER_KEY } });
    assert.throws(() => full.begin(wire.subarray(0, 4), Buffer.alloc(body.length)), (e: unknown) => e instanceof StxError && e.code === 'KEY_LIMIT');
  });
});

describe('BodyPool', () => {
  const BODY = 1 + 8 + MAX_DATA_CHUNK_BYTES;

  it('hands out buffers whose full-chunk data is aligned for O_DIRECT, and reuses them', () => {
    const pool = new BodyPool(2, 4);
    const a = pool.take(BODY);
    const b = pool.take(BODY / 2 + 1);
    assert.equal(a.length, BODY);
    assert.equal(b.length, BODY);
    for (const body of [a, b]) assert.ok(isAligned(body.subarray(9)), 'the data of a full chunk is aligned');
    assert.ok(!isAligned(Buffer.allocUnsafeSlow(BODY).subarray(9)), 'ordinary buffers are not');
    pool.give(a);
    assert.equal(pool.take(BODY), a, 'the buffer just given back comes out next');
    assert.throws(() => pool.take(BODY + 1), RangeError);
  });

  it("takes back a pooled buffer given for a shorter body (a file's last chunk)", () => {
    const pool = new BodyPool(2, 4);
    const last = pool.take(BODY / 2 + 1);
    const free = pool.freeBuffers;
    pool.give(last);
    assert.equal(pool.freeBuffers, free + 1);
  });

  it('gives small bodies buffers of their own size, not whole pooled buffers', () => {
    const pool = new BodyPool(2, 4);
    const small = pool.take(1000);
    assert.equal(small.length, 1000);
    pool.give(small);
    assert.equal(pool.freeBuffers, 0);
  });

  it('counts the bytes in pooled buffers out (the record share of the memory budget), not exact-size ones', () => {
    const pool = new BodyPool(2, 4);
    const a = pool.take(BODY);
    const b = pool.take(BODY / 2 + 1);
    const small = pool.take(1000);
    assert.equal(pool.pooledBytesOut, 2 * BODY);
    pool.give(small);
    pool.give(a);
    assert.equal(pool.pooledBytesOut, BODY);
    pool.give(b);
    assert.equal(pool.pooledBytesOut, 0);
  });

  it('hands out buffers of the arena with the fewest free, so that the others can empty and go', () => {
    const pool = new BodyPool(2, 4);
    const [a0, a1, , , b0] = Array.from({ length: 8 }, () => pool.take(BODY)); // arenas a0–a3 and b0–b3
    assert.ok(a0 && a1 && b0);
    pool.give(b0);
    pool.give(a0);
    pool.give(a1);
    assert.equal(pool.take(BODY), b0, 'from the arena with 1 free, not the last given back');
    assert.equal(pool.take(BODY), a1);
  });

  it('lets go of a whole arena once more than maxFree buffers would stay free without it (once idle)', async () => {
    let now = 0;
    const pool = new BodyPool(2, 4, 20, () => now);
    const taken = Array.from({ length: 8 }, () => pool.take(BODY)); // two arenas of 4
    for (const t of taken) pool.give(t);
    now = 100; // two quiet windows: the reserve no longer covers the second arena
    const deadline = Date.now() + 2000;
    while (pool.freeBuffers === 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.freeBuffers, 4, 'one arena (4 free) kept, the other let go');
  });

  it('keeps a reserve up to the recent peak of buffers out while any are out, and lets it go after two quiet windows or once all are back', () => {
    let now = 0;
    const pool = new BodyPool(2, 4, 1000, () => now);
    const taken = Array.from({ length: 12 }, () => pool.take(BODY)); // arenas A, B, C
    const perArena = pool.arenaBytes / 3;
    for (const t of taken.slice(0, 8)) pool.give(t); // A and B free, C out
    assert.equal(pool.arenaBytes, 3 * perArena, 'both free arenas kept: 12 were out a moment ago (before: one let go)');
    const again = Array.from({ length: 8 }, () => pool.take(BODY));
    assert.equal(pool.arenaBytes, 3 * perArena, 'taken again from the reserve, no new arena');
    for (const t of again) pool.give(t);
    now = 5000; // two windows with no new peak
    const [c0] = taken.slice(8);
    assert.ok(c0);
    pool.give(c0);
    assert.equal(pool.arenaBytes, 2 * perArena, 'the reserve beyond maxFree went: C (3 out) and one free arena stay');
    for (const t of taken.slice(9)) pool.give(t);
    assert.equal(pool.outstanding, 0);
    assert.equal(pool.freeBuffers, 4, 'all back: one arena kept (maxFree 2)');
  });

  it('keeps the reserve when the last buffer comes back, and lets it go two quiet windows later', async () => {
    let now = 0;
    const pool = new BodyPool(2, 4, 20, () => now);
    const taken = Array.from({ length: 12 }, () => pool.take(BODY)); // arenas A, B, C
    const arenas = pool.arenaBytes;
    for (const t of taken) pool.give(t);
    assert.equal(pool.outstanding, 0);
    // With a hundred uploads, nothing is out for a moment many times a run: the arenas that went
    // then were mapped and faulted in again a moment later (issue 15).
    assert.equal(pool.arenaBytes, arenas, 'all back: the reserve (12 were out a moment ago) is kept');
    const again = Array.from({ length: 12 }, () => pool.take(BODY));
    assert.equal(pool.arenaBytes, arenas, 'taken again from the reserve, no new arena');
    for (const t of again) pool.give(t);
    now = 100; // two quiet windows pass; the idle timer (2 × 20 ms) lets the reserve go
    const deadline = Date.now() + 2000;
    while (pool.arenaBytes === arenas && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pool.arenaBytes, arenas / 3, 'idle: one arena kept (maxFree 2)');
    assert.equal(pool.freeBuffers, 4);
  });
});

describe('YoungGenerationCollector', () => {
  it('collects after each interval of dropped bytes without disturbing live buffers', () => {
    const keep = Buffer.alloc(1024, 7);
    const young = new YoungGenerationCollector(1024 * 1024);
    for (let i = 0; i < 64; i++) young.dropped(Buffer.alloc(64 * 1024).length);
    assert.ok(keep.every((b) => b === 7));
    assert.throws(() => new YoungGenerationCollector(0), RangeError);
  });
});

describe("the sender's data path", () => {
  it('ChunkReader returns the file bytes at any offset, page-aligned like the file, two chunks alive at once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stx-chunks-'));
    try {
      const content = randomBytes(3 * MAX_DATA_CHUNK_BYTES + 12_345);
      await writeFile(join(dir, 'f'), content);
      const fh = await open(join(dir, 'f'), 'r');
      try {
        const reader = new ChunkReader(fh, content.length);
        for (const at of [0, MAX_DATA_CHUNK_BYTES, 12_345, 3 * MAX_DATA_CHUNK_BYTES + 4095, content.length - 1]) {
          const first = await reader.read(at);
          const second = await reader.read(at + first.length);
          assert.deepEqual(first, content.subarray(at, at + MAX_DATA_CHUNK_BYTES), `chunk at ${at}`);
          assert.deepEqual(second, content.subarray(at + first.length, at + first.length + MAX_DATA_CHUNK_BYTES));
          assert.ok(inAlignedMemory(first), 'read into aligned memory');
          assert.equal(first.byteOffset % PAGE_BYTES, at % PAGE_BYTES, `page offset of the chunk at ${at}`);
        }
        assert.equal((await reader.read(content.length)).length, 0, 'nothing past the end');
      } finally {
        await fh.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('readers reuse the read slots of released ones, never more spares than were in use at once', async () => {
    const content = randomBytes(2 * MAX_DATA_CHUNK_BYTES);
    const readAt = (into: Buffer, at: number): Promise<number> => Promise.resolve(content.copy(into, 0, at, at + into.length));
    const base = spareReadSlots.spare;
    // Three uploads at once: three pairs in use, then all three spare.
    const readers = [0, 1, 2].map(() => new ChunkReader(readAt, content.length));
    const first = await Promise.all(readers.map((r) => r.read(0)));
    const memories = new Set(first.map((c) => c.buffer));
    assert.equal(memories.size, 3, 'readers at once read into memories of their own');
    await Promise.all(readers.map((r) => r.release()));
    assert.equal(spareReadSlots.spare, base + 3);
    // The next upload reads into one of them (no fresh memory to fault in) and reads right.
    const next = new ChunkReader(readAt, content.length);
    const chunk = await next.read(MAX_DATA_CHUNK_BYTES);
    assert.ok(memories.has(chunk.buffer), 'a released reader\'s memory was read into again');
    assert.deepEqual(chunk, content.subarray(MAX_DATA_CHUNK_BYTES));
    assert.equal(spareReadSlots.spare, base + 2);
    await next.release();
    await next.release();
    assert.equal(spareReadSlots.spare, base + 3, 'released once, given back once');
    // Slots the caller brought (a tree's) stay the caller's.
    const own = new ReadSlots();
    const tree = new ChunkReader(readAt, content.length, own);
    assert.equal((await tree.read(0)).buffer, own.buffers[0]?.buffer);
    await tree.release();
    assert.equal(spareReadSlots.spare, base + 3);
  });

  it('a reader gives its slots back only once its last read landed, and reads no more', async () => {
    let land: (() => void) | undefined;
    const slow = (into: Buffer): Promise<number> =>
      new Promise((resolve) => {
        land = () => resolve(into.fill(7).length);
      });
    const reader = new ChunkReader(slow, MAX_DATA_CHUNK_BYTES);
    const reading = reader.read(0);
    const before = spareReadSlots.spare;
    let released = false;
    const release = reader.release().then(() => {
      released = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(released, false, 'released while a read could still land in the slots');
    assert.equal(spareReadSlots.spare, before);
    land?.();
    await release;
    assert.equal((await reading).length, MAX_DATA_CHUNK_BYTES);
    assert.equal(spareReadSlots.spare, before + 1);
    await assert.rejects(reader.read(0), /after the reader was released/);
  });
});
