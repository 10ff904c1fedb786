// The positional write queue: bytes land at their offsets, the written offset never runs
// ahead of what is written, queued bytes stay bounded and the pause/drain signals fire.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ResourceError, UploadError } from '../src/proto/errors.js';
import { BodyPool } from '../src/transfer/body-pool.js';
import { openDirect } from '../src/storage/local/direct-io.js';
import { WriteQueue } from '../src/storage/write-queue.js';
import { CHUNK_OVERHEAD_BYTES, MAX_QUEUED_CHUNKS } from '../src/transfer/config.js';
import { ByteBudget } from '../src/transfer/budget.js';

const MiB = 1024 * 1024;

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stx-wq-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileNo = 0;
async function withFile<T>(fn: (fh: FileHandle, file: string) => Promise<T>): Promise<T> {
  const file = path.join(dir, `f${fileNo++}`);
  const fh = await open(file, 'w+');
  try {
    return await fn(fh, file);
  } finally {
    await fh.close();
  }
}

describe('WriteQueue', () => {
  it('writes every chunk at its offset and flush returns the end', async () => {
    await withFile(async (fh, file) => {
      const budget = new ByteBudget(64 * MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 16 * MiB }, budget);
      const chunks: Buffer[] = [];
      let offset = 0;
      for (let i = 0; i < 64; i++) {
        const chunk = randomBytes(1 + ((i * 7919) % 65_536));
        chunks.push(chunk);
        q.enqueue(offset, chunk);
        offset += chunk.length;
      }
      assert.equal(q.enqueuedOffset, offset);
      assert.equal(await q.flush(), offset);
      assert.equal(q.writtenOffset, offset);
      assert.equal(q.queuedBytes, 0);
      assert.equal(budget.usedBytes, 0);
      await q.close();
      assert.deepEqual(await readFile(file), Buffer.concat(chunks));
    });
  });

  it('never reports a written prefix that the file does not hold yet', async () => {
    await withFile(async (fh, file) => {
      const q = new WriteQueue(fh, { maxQueuedBytes: 64 * MiB }, new ByteBudget(64 * MiB));
      const data = randomBytes(32 * MiB);
      for (let at = 0; at < data.length; at += MiB) q.enqueue(at, data.subarray(at, at + MiB));
      const reader = await open(file, 'r');
      try {
        let lastSeen = 0;
        for (let i = 0; i < 2000 && q.writtenOffset < data.length; i++) {
          const claimed = q.writtenOffset;
          assert.ok(claimed >= lastSeen, 'the prefix never moves back');
          lastSeen = claimed;
          if (claimed > 0) {
            const probe = Math.max(0, claimed - 4096);
            const buf = Buffer.alloc(claimed - probe);
            await reader.read(buf, 0, buf.length, probe);
            assert.deepEqual(buf, data.subarray(probe, claimed));
          }
          await new Promise((r) => setImmediate(r));
        }
        assert.equal(await q.flush(), data.length);
      } finally {
        await reader.close();
      }
    });
  });

  it('signals pause exactly when the next full chunk would not fit, and drain below low water', async () => {
    await withFile(async (fh) => {
      const budget = new ByteBudget(1024 * MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 4 * MiB, maxChunkBytes: MiB, lowWaterBytes: 2 * MiB }, budget);
      let drains = 0;
      q.onDrain(() => drains++);
      // Writes cannot complete synchronously, so the first three fit and the fourth fills the bound.
      assert.equal(q.enqueue(0, Buffer.alloc(MiB, 1)), false);
      assert.equal(q.enqueue(MiB, Buffer.alloc(MiB, 2)), false);
      assert.equal(q.enqueue(2 * MiB, Buffer.alloc(MiB, 3)), false);
      assert.equal(q.enqueue(3 * MiB, Buffer.alloc(MiB, 4)), true);
      assert.equal(q.paused, true);
      assert.equal(q.queuedBytes, 4 * MiB);
      await q.drained();
      assert.equal(q.paused, false);
      assert.equal(drains, 1);
      assert.ok(q.queuedBytes <= 2 * MiB, `resumed at ${q.queuedBytes} queued bytes`);
      assert.equal(await q.flush(), 4 * MiB);
      await q.close();
    });
  });

  it('keeps queued bytes within the bound for a producer that honours pause (many 1 MiB chunks)', async () => {
    await withFile(async (fh, file) => {
      const budget = new ByteBudget(1024 * MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 4 * MiB, maxChunkBytes: MiB }, budget);
      let pauses = 0;
      let drains = 0;
      q.onDrain(() => drains++);
      const chunk = Buffer.alloc(MiB, 0x5a);
      const total = 64;
      for (let i = 0; i < total; i++) {
        if (q.enqueue(i * MiB, chunk)) {
          pauses++;
          await q.drained();
        }
        assert.ok(q.queuedBytes <= 4 * MiB);
      }
      assert.equal(await q.flush(), total * MiB);
      await q.close();
      assert.ok(pauses > 0, 'the producer outran the disk at least once');
      assert.equal(drains, pauses);
      assert.ok(q.peakQueuedBytes <= 4 * MiB, `peak ${q.peakQueuedBytes}`);
      assert.equal(budget.usedBytes, 0);
      assert.equal((await stat(file)).size, total * MiB);
    });
  });

  it('pauses on the shared budget and resumes when it falls to its low water', async () => {
    await withFile(async (fh) => {
      const budget = new ByteBudget(3 * MiB, MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 64 * MiB, maxChunkBytes: MiB }, budget);
      let pauses = 0;
      for (let i = 0; i < 32; i++) {
        if (q.enqueue(i * MiB, Buffer.alloc(MiB))) {
          pauses++;
          assert.ok(!budget.hasRoomFor(MiB));
          await q.drained();
          assert.ok(budget.usedBytes <= MiB, `resumed with ${budget.usedBytes} bytes in the budget`);
        }
      }
      await q.flush();
      await q.close();
      assert.ok(pauses > 0);
      assert.ok(budget.peakBytes <= 3 * MiB, `peak ${budget.peakBytes}`);
      assert.equal(budget.usedBytes, 0);
    });
  });

  it('shares one budget between connections: both pause, both resume, the total stays bounded', async () => {
    await withFile(async (fhA) => {
      await withFile(async (fhB) => {
        const budget = new ByteBudget(4 * MiB, MiB);
        const opts = { maxQueuedBytes: 64 * MiB, maxChunkBytes: MiB };
        const queues = [new WriteQueue(fhA, opts, budget), new WriteQueue(fhB, opts, budget)];
        const pauses = [0, 0];
        await Promise.all(
          queues.map(async (q, n) => {
            for (let i = 0; i < 24; i++) {
              if (q.enqueue(i * MiB, Buffer.alloc(MiB, n))) {
                pauses[n] = (pauses[n] ?? 0) + 1;
                await q.drained();
              }
            }
            await q.flush();
            await q.close();
          }),
        );
        assert.ok((pauses[0] ?? 0) > 0 && (pauses[1] ?? 0) > 0, `pauses ${pauses.join(',')}`);
        // Documented bound: each unpaused connection may add one chunk past the maximum.
        assert.ok(budget.peakBytes <= 4 * MiB + (queues.length - 1) * MiB, `peak ${budget.peakBytes}`);
        assert.equal(budget.usedBytes, 0);
      });
    });
  });

  it('close wakes a paused caller and refuses further chunks', async () => {
    await withFile(async (fh) => {
      const budget = new ByteBudget(2 * MiB, MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 8 * MiB, maxChunkBytes: MiB }, budget);
      const other = new WriteQueue(fh, { maxQueuedBytes: 8 * MiB, maxChunkBytes: MiB, startOffset: 64 * MiB }, budget);
      // `other` holds the budget above its low water, so only close() can wake `q`.
      other.enqueue(64 * MiB, Buffer.alloc(MiB));
      assert.equal(q.enqueue(0, Buffer.alloc(MiB)), true);
      const woken = q.drained();
      await q.close();
      await woken;
      assert.equal(q.paused, false);
      assert.throws(() => q.enqueue(MiB, Buffer.alloc(1)), (e: unknown) => e instanceof ResourceError && e.code === 'INTERNAL');
      await other.close();
      assert.equal(budget.usedBytes, 0);
    });
  });

  it('with one write at a time, chunks queued meanwhile go out together in fewer writes', async () => {
    await withFile(async (fh, file) => {
      let writes = 0;
      const counted = new Proxy(fh, {
        get(target, prop, receiver): unknown {
          if (prop === 'writev') writes++;
          const v: unknown = Reflect.get(target, prop, receiver);
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const q = new WriteQueue(counted, { maxQueuedBytes: 64 * MiB }, new ByteBudget(64 * MiB));
      const data = randomBytes(32 * 64 * 1024);
      let written = 0;
      for (let at = 0; at < data.length; at += 64 * 1024) q.enqueue(at, data.subarray(at, at + 64 * 1024), () => written++);
      assert.equal(await q.flush(), data.length);
      await q.close();
      assert.equal(written, 32, 'onWritten once per chunk');
      assert.ok(writes < 32 && writes >= 2, `${writes} writes for 32 chunks`);
      assert.deepEqual(await readFile(file), data);
    });
  });

  it('writes aligned chunks through the O_DIRECT handle and the rest through the page cache', async (t) => {
    await withFile(async (fh, file) => {
      const direct = await openDirect(file, fh);
      if (direct === null) {
        t.skip('no O_DIRECT on this filesystem');
        return;
      }
      const counted = (handle: FileHandle, count: { n: number }): FileHandle =>
        new Proxy(handle, {
          get(target, prop, receiver): unknown {
            if (prop === 'writev') count.n++;
            const v: unknown = Reflect.get(target, prop, receiver);
            return typeof v === 'function' ? v.bind(target) : v;
          },
        });
      const viaDirect = { n: 0 };
      const viaCache = { n: 0 };
      try {
        const q = new WriteQueue(counted(fh, viaCache), { maxQueuedBytes: 16 * MiB, direct: counted(direct, viaDirect) }, new ByteBudget(64 * MiB));
        const pool = new BodyPool();
        const chunks: Buffer[] = [];
        let at = 0;
        // The first write takes chunk 0 alone; the second, chunks 1–3 and the tail together.
        for (let i = 0; i < 4; i++) {
          const body = pool.take(1 + 8 + MiB);
          const data = body.subarray(9);
          randomBytes(MiB).copy(data);
          chunks.push(Buffer.from(data));
          q.enqueue(at, data, () => pool.give(body));
          at += MiB;
        }
        const tail = randomBytes(1234);
        chunks.push(tail);
        q.enqueue(at, tail);
        assert.equal(await q.sync(), 4 * MiB + 1234);
        await q.close();
        assert.equal(viaDirect.n, 2, 'the aligned chunks went through O_DIRECT, in two writes');
        assert.equal(viaCache.n, 1, 'the unaligned tail through the page cache');
        assert.deepEqual(await readFile(file), Buffer.concat(chunks));
      } finally {
        await direct.close();
      }
    });
  });

  it('calls onWritten for chunks dropped after a write error too', async () => {
    const fh = await open('/dev/full', 'r+');
    try {
      const q = new WriteQueue(fh, { maxQueuedBytes: 4 * MiB, maxChunkBytes: MiB }, new ByteBudget(64 * MiB));
      let written = 0;
      for (let i = 0; i < 3; i++) q.enqueue(i * MiB, Buffer.alloc(MiB), () => written++);
      await assert.rejects(q.flush());
      await q.close();
      assert.equal(written, 3);
    } finally {
      await fh.close();
    }
  });

  it('sync returns the durable offset', async () => {
    await withFile(async (fh) => {
      const q = new WriteQueue(fh, { maxQueuedBytes: 16 * MiB, startOffset: 100 }, new ByteBudget(16 * MiB));
      q.enqueue(100, Buffer.alloc(1000, 1));
      q.enqueue(1100, Buffer.alloc(1000, 2));
      assert.equal(await q.sync(), 2100);
      await q.close();
    });
  });

  it('writes at an offset above 2^32 into a sparse file', async () => {
    await withFile(async (fh) => {
      const start = 2 ** 32 + 10;
      const q = new WriteQueue(fh, { maxQueuedBytes: 16 * MiB, startOffset: start }, new ByteBudget(16 * MiB));
      const data = Buffer.from('beyond four gibibytes');
      q.enqueue(start, data);
      assert.equal(await q.sync(), start + data.length);
      await q.close();
      const back = Buffer.alloc(data.length);
      await fh.read(back, 0, back.length, start);
      assert.deepEqual(back, data);
      assert.equal((await fh.stat()).size, start + data.length);
    });
  });

  it('refuses a chunk that is not at the next offset, or too large', async () => {
    await withFile(async (fh) => {
      const q = new WriteQueue(fh, { maxQueuedBytes: 4 * MiB, maxChunkBytes: MiB }, new ByteBudget(16 * MiB));
      q.enqueue(0, Buffer.alloc(10));
      assert.throws(() => q.enqueue(5, Buffer.alloc(10)), (e: unknown) => e instanceof UploadError && e.code === 'BAD_OFFSET');
      assert.throws(() => q.enqueue(20, Buffer.alloc(10)), (e: unknown) => e instanceof UploadError && e.code === 'BAD_OFFSET');
      assert.throws(() => q.enqueue(10, Buffer.alloc(MiB + 1)), (e: unknown) => e instanceof ResourceError && e.code === 'INTERNAL');
      assert.equal(await q.flush(), 10);
      await q.close();
    });
  });

  it('refuses a caller that ignores pause once past the hard bound', async () => {
    await withFile(async (fh) => {
      const q = new WriteQueue(fh, { maxQueuedBytes: 2 * MiB, maxChunkBytes: MiB }, new ByteBudget(64 * MiB));
      let at = 0;
      const push = (): boolean => {
        const pause = q.enqueue(at, Buffer.alloc(MiB));
        at += MiB;
        return pause;
      };
      assert.equal(push(), false);
      assert.equal(push(), true);
      assert.equal(push(), true); // slack of one chunk for frames already decoded
      assert.throws(push, (e: unknown) => e instanceof ResourceError && e.code === 'INTERNAL');
      assert.equal(await q.flush(), 3 * MiB);
      await q.close();
    });
  });

  it('turns ENOSPC into NO_SPACE on the next call, wakes a paused caller, and leaks no rejection', async () => {
    const fh = await open('/dev/full', 'r+');
    try {
      const budget = new ByteBudget(64 * MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 2 * MiB, maxChunkBytes: MiB }, budget);
      q.enqueue(0, Buffer.alloc(MiB));
      assert.equal(q.enqueue(MiB, Buffer.alloc(MiB)), true);
      await q.drained(); // resolves although nothing could be written
      const isNoSpace = (e: unknown): boolean => e instanceof UploadError && e.code === 'NO_SPACE';
      await assert.rejects(q.flush(), isNoSpace);
      assert.throws(() => q.enqueue(2 * MiB, Buffer.alloc(1)), isNoSpace);
      await assert.rejects(q.sync(), isNoSpace);
      assert.equal(q.writtenOffset, 0);
      await q.close();
      assert.equal(q.queuedBytes, 0);
      assert.equal(budget.usedBytes, 0);
    } finally {
      await fh.close();
    }
  });

  it('turns other write errors into IO_ERROR', async () => {
    await withFile(async (_fh, file) => {
      const ro = await open(file, 'r');
      try {
        const q = new WriteQueue(ro, { maxQueuedBytes: 4 * MiB }, new ByteBudget(16 * MiB));
        q.enqueue(0, Buffer.from('x'));
        await assert.rejects(q.flush(), (e: unknown) => e instanceof ResourceError && e.code === 'IO_ERROR' && e.message.includes('EBADF'));
        await q.close();
      } finally {
        await ro.close();
      }
    });
  });

  it('bounds chunks as well as bytes: 1-byte chunks pause it at MAX_QUEUED_CHUNKS, each charged CHUNK_OVERHEAD_BYTES of the budget, and 100k of them are written in order', async () => {
    await withFile(async (fh, file) => {
      const budget = new ByteBudget(64 * MiB);
      const q = new WriteQueue(fh, { maxQueuedBytes: 4 * MiB, maxChunkBytes: MiB }, budget);
      const total = 100_000;
      let at = 0;
      let pauses = 0;
      while (at < total) {
        const paused = q.enqueue(at, Buffer.of(at & 0xff));
        at++;
        assert.ok(q.queuedChunks <= MAX_QUEUED_CHUNKS, `${q.queuedChunks} chunks queued`);
        assert.equal(budget.usedChunks, q.queuedChunks);
        assert.equal(budget.usedBytes, q.queuedBytes + q.queuedChunks * CHUNK_OVERHEAD_BYTES);
        if (paused) {
          pauses++;
          assert.equal(q.queuedChunks, MAX_QUEUED_CHUNKS, 'paused on the chunk bound, far below the byte bound');
          await q.drained();
        }
      }
      assert.equal(await q.flush(), total);
      await q.close();
      assert.ok(pauses > 0);
      assert.equal(budget.usedBytes, 0);
      assert.equal(budget.usedChunks, 0);
      const bytes = await readFile(file);
      assert.equal(bytes.length, total);
      for (let i = 0; i < total; i += 997) assert.equal(bytes[i], i & 0xff);
    });
  });
});
