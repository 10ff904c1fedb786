// The storage contract (storage-contract.ts) against the S3 backend on a real Ceph RADOS Gateway,
// and several daemons' backends on one store: registered by e2e-s3.test.ts, whose cluster
// (support/ceph.ts) they share (one cluster start less); bucket CONTRACT_BUCKET, a fresh key
// prefix per test.
import type { S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import type { PartialMeta, PartialUpload, PublishedFile, WriteLimits } from '../src/storage/backend.js';
import { ByteBudget, MemoryBudget, type MemoryUser } from '../src/transfer/budget.js';
import { DIST_DIR } from './support/paths.js';
import { createS3Client } from '../src/storage/s3/client.js';
import { S3Backend } from '../src/storage/s3/backend.js';
import type { CephCluster } from './support/ceph.js';
import { storageContract } from './storage-contract.js';

export const CONTRACT_BUCKET = 'contract';
const BUCKET = CONTRACT_BUCKET;

/** A published file's bytes, read back 4 MiB at a time. */
async function readWhole(file: PublishedFile): Promise<Buffer> {
  const back = Buffer.alloc(file.size);
  for (let at = 0; at < back.length; ) at += await file.readAt(back.subarray(at, Math.min(back.length, at + 4 * 1024 * 1024)), at);
  return back;
}

/** Registers the cases; `cluster()` gives the running cluster and a client once before() ran. */
export function s3StorageCases(cluster: () => { ceph: CephCluster; client: S3Client }): void {
  let stores = 0;
  storageContract('s3 (Ceph RGW)', () => {
    const s3 = cluster().client;
    const prefix = `store-${stores++}/`;
    const make = (): S3Backend => new S3Backend({ client: s3, bucket: BUCKET, prefix });
    return Promise.resolve({
      backend: make(),
      restart: async () => {
        const again = make();
        await again.init();
        return again;
      },
      cleanup: () => Promise.resolve(),
      directories: async () => {
        const { keys } = await make().objects.list('');
        const dirs = new Set<string>();
        for (const { key } of keys) {
          if (key.startsWith('.stx/')) continue;
          const parts = key.split('/');
          for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
        }
        return [...dirs].sort();
      },
    });
  });

  // Several daemons on one store (issue 16): each backend below is one daemon's, over one prefix.
  describe('s3: several daemons, one store', () => {
    let n = 0;
    const KiB = 1024;
    const daemons = (leaseMs = 60_000): [S3Backend, S3Backend] => {
      const { client } = cluster();
      const prefix = `daemons-${n++}/`;
      return [new S3Backend({ client, bucket: BUCKET, prefix, leaseMs }), new S3Backend({ client, bucket: BUCKET, prefix, leaseMs })];
    };
    const limits = (): WriteLimits => ({ budget: new ByteBudget(64 * 1024 * KiB), maxQueuedBytes: 4 * 1024 * KiB, maxChunkBytes: 64 * KiB });
    const meta = (name: string, size: number): PartialMeta => ({ principal: 'anonymous', name, size, mtime: 1_700_000_000_000, mode: 0o644 });
    const id = (text: string): string => createHash('sha256').update(text).digest('hex');
    const feed = async (p: PartialUpload, data: Buffer, from: number, to: number): Promise<void> => {
      for (let at = from; at < to; at += 64 * KiB) if (p.write(at, data.subarray(at, Math.min(to, at + 64 * KiB)))) await p.drained();
    };
    const held = (err: unknown): boolean => err instanceof StxError && err.code === 'HELD_ELSEWHERE';

    it('a partial held by one daemon is HELD_ELSEWHERE on the other until let go; then the other resumes at its durable offset and publishes it whole', async () => {
      const [a, b] = daemons();
      const data = randomBytes(9 * 1024 * KiB + 5); // two segments: one full, one tail
      const pid = id('handover');
      const pa = await a.openPartial(pid, meta('h.bin', data.length), undefined, limits());
      await feed(pa, data, 0, 8 * 1024 * KiB + 100 * KiB);
      assert.equal(await pa.checkpoint(), 8 * 1024 * KiB + 100 * KiB);
      const record = await b.record(pid);
      assert.equal(record?.durable, 8 * 1024 * KiB + 100 * KiB, 'the other daemon sees the durable offset in the store');
      await assert.rejects(b.openPartial(pid, meta('h.bin', data.length), record, limits()), held);
      await pa.close();
      const pb = await b.openPartial(pid, meta('h.bin', data.length), record, limits());
      assert.equal(pb.durable, 8 * 1024 * KiB + 100 * KiB);
      const prefix = Buffer.alloc(pb.durable);
      for (let at = 0; at < prefix.length; ) at += await pb.prefix.readAt(prefix.subarray(at, Math.min(prefix.length, at + 1024 * KiB)), at);
      assert.ok(prefix.equals(data.subarray(0, pb.durable)), 'the durable prefix reads back from the store for re-hashing');
      await feed(pb, data, pb.durable, data.length);
      await pb.endWrites();
      await pb.publish('h.bin', { mode: 0o600, mtime: 5_000, how: 'no-clobber' });
      const file = await a.openFile('h.bin');
      assert.ok(file !== null);
      const back = Buffer.alloc(file.size);
      for (let at = 0; at < back.length; ) at += await file.readAt(back.subarray(at, Math.min(back.length, at + 4 * 1024 * KiB)), at);
      assert.ok(back.equals(data), 'the published file is whole');
      assert.deepEqual([file.mode, file.mtime], [0o600, 5_000]);
      await file.close();
      assert.deepEqual(await a.partials(), [], 'the partial is gone from the store');
    });

    it('full segments are written as the parts of one multipart upload, not objects: publish completes it and leaves no upload or object behind; discard aborts it', async () => {
      const [a] = daemons();
      const MiB = 1024 * KiB;
      const data = randomBytes(17 * MiB + 5); // two full segments and a tail
      const pid = id('parts');
      const folder = `.stx/partials/${pid}/`;
      const p = await a.openPartial(pid, meta('parts.bin', data.length), undefined, limits());
      await feed(p, data, 0, data.length);
      assert.equal(await p.checkpoint(), data.length);
      const { keys } = await a.objects.list(folder);
      const pieces = keys.filter((k) => k.key !== `${folder}record`);
      assert.ok(pieces.every((k) => /-\d{5}-\d+$/.test(k.key)), `only the record and pieces are objects: ${keys.map((k) => k.key).join(', ')}`);
      assert.ok(pieces.reduce((n, k) => n + k.size, 0) < 8 * MiB, 'the pieces hold less than a segment');
      assert.equal((await a.objects.listUploads(folder)).length, 1, 'one multipart upload holds the full segments');
      await p.endWrites();
      await p.publish('parts.bin', { mode: 0o640, mtime: 7_000, how: 'no-clobber' });
      const file = await a.openFile('parts.bin');
      assert.ok(file !== null);
      assert.ok((await readWhole(file)).equals(data), 'the published file is whole');
      assert.deepEqual([file.mode, file.mtime], [0o640, 7_000]);
      await file.close();
      assert.deepEqual([(await a.objects.list('.stx/partials/')).keys, await a.objects.listUploads('.stx/')], [[], []], 'nothing left of the partial');
      const q = await a.openPartial(id('parts discarded'), meta('gone.bin', data.length), undefined, limits());
      await feed(q, data, 0, 9 * MiB);
      await q.checkpoint();
      assert.equal((await a.objects.listUploads('.stx/')).length, 1);
      await q.discard();
      assert.deepEqual([(await a.objects.list('.stx/partials/')).keys, await a.objects.listUploads('.stx/')], [[], []], 'discarded: its upload aborted, its objects deleted');
    });

    it('a file past CopyObject\'s limit is published by a multipart copy: whole, with its mode and mtime', async () => {
      const { client } = cluster();
      const MiB = 1024 * KiB;
      const a = new S3Backend({ client, bucket: BUCKET, prefix: `daemons-${n++}/`, maxCopyBytes: 8 * MiB });
      const data = randomBytes(17 * MiB + 5);
      const p = await a.openPartial(id('big copy'), meta('big.bin', data.length), undefined, limits());
      await feed(p, data, 0, data.length);
      await p.endWrites();
      await p.publish('big.bin', { mode: 0o600, mtime: 9_000, how: 'replace' });
      const file = await a.openFile('big.bin');
      assert.ok(file !== null);
      assert.ok((await readWhole(file)).equals(data), 'the published file is whole');
      assert.deepEqual([file.mode, file.mtime], [0o600, 9_000]);
      await file.close();
      assert.deepEqual([(await a.objects.list('.stx/partials/')).keys, await a.objects.listUploads('')], [[], []], 'nothing left behind');
    });

    it('a checkpoint whose segment fills meanwhile writes no piece: the part holds its bytes', async () => {
      const [a] = daemons();
      const MiB = 1024 * KiB;
      const data = randomBytes(9 * MiB);
      const pid = id('no piece');
      const p = await a.openPartial(pid, meta('np.bin', data.length), undefined, limits());
      await feed(p, data, 0, 8 * MiB - 64 * KiB);
      const checkpoint = p.checkpoint();
      await delay(100); // the checkpoint has begun waiting
      await feed(p, data, 8 * MiB - 64 * KiB, 8 * MiB + 64 * KiB);
      assert.ok((await checkpoint) >= 8 * MiB - 64 * KiB, 'the checkpoint covers what was written before it');
      const { keys } = await a.objects.list(`.stx/partials/${pid}/`);
      assert.deepEqual(keys.map((k) => k.key), [`.stx/partials/${pid}/record`], 'no piece was written');
      await p.discard();
    });

    it("a daemon stalled past its lease loses the partial: another takes over, and the stalled one's next checkpoint fails with HELD_ELSEWHERE", async () => {
      const { ceph, client } = cluster();
      const prefix = `daemons-${n++}/`;
      const b = new S3Backend({ client, bucket: BUCKET, prefix, leaseMs: 60_000 });
      const data = randomBytes(300 * KiB);
      const pid = id('stalled');
      // Daemon A is another process (support/s3-holder.ts): it holds the partial with a 1 s lease,
      // then is stopped (SIGSTOP: a long GC pause, a VM frozen) and so renews nothing.
      const holder = spawn(process.execPath, [path.join(DIST_DIR, 'test', 'support', 's3-holder.js')], {
        stdio: ['pipe', 'pipe', 'inherit'],
        env: { ...process.env, ...ceph.env, S3_ENDPOINT: ceph.endpoint, S3_BUCKET: BUCKET, S3_PREFIX: prefix, PARTIAL_ID: pid, LEASE_MS: '1000' },
      });
      const lines = createInterface({ input: holder.stdout })[Symbol.asyncIterator]();
      assert.equal((await lines.next()).value, 'held 102400');
      holder.kill('SIGSTOP');
      await assert.rejects(b.openPartial(pid, meta('s.bin', data.length), await b.record(pid), limits()), held, 'the lease is fresh yet');
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const record = await b.record(pid);
      const pb = await b.openPartial(pid, meta('s.bin', data.length), record, limits());
      assert.equal(pb.durable, 100 * KiB, 'taken over at the durable offset');
      await pb.checkpoint();
      holder.kill('SIGCONT');
      holder.stdin.write('go\n');
      assert.equal((await lines.next()).value, 'failed HELD_ELSEWHERE', 'the stalled daemon may write nothing more');
      await feed(pb, data, pb.durable, data.length);
      await pb.endWrites();
      await pb.publish('s.bin', { mode: 0o644, mtime: 0, how: 'replace' });
      const file = await b.openFile('s.bin');
      assert.ok(file !== null);
      assert.equal(file.size, data.length);
      await file.close();
    });

    it("a lease renewal queued behind a checkpoint renews the checkpoint's record: the store never goes back to an older durable offset", async () => {
      const { ceph, client } = cluster();
      // Daemon A's record writes take 300 ms (a loaded store) and its lease is 300 ms, renewed
      // every 100 ms: renewals come due while a checkpoint's write is under way.
      const slow = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, credentials: ceph });
      slow.middlewareStack.add(
        (next, context) => async (args) => {
          const key = (args.input as { Key?: unknown }).Key;
          if (context.commandName === 'PutObjectCommand' && typeof key === 'string' && key.endsWith('/record')) await delay(300);
          return next(args);
        },
        { step: 'initialize', name: 'slowRecordWrites' },
      );
      const prefix = `daemons-${n++}/`;
      const a = new S3Backend({ client: slow, bucket: BUCKET, prefix, leaseMs: 300 });
      const b = new S3Backend({ client, bucket: BUCKET, prefix });
      const pid = id('renewal');
      const data = randomBytes(300 * KiB);
      const pa = await a.openPartial(pid, meta('n.bin', data.length), undefined, limits());
      try {
        assert.equal(await pa.checkpoint(), 0);
        await feed(pa, data, 0, 200 * KiB);
        assert.equal(await pa.checkpoint(), 200 * KiB);
        // What another daemon would take over if A died now, while A's renewals go on.
        const seen: (number | undefined)[] = [];
        for (let i = 0; i < 6; i++) {
          await delay(200);
          seen.push((await b.record(pid))?.durable);
        }
        assert.deepEqual(seen, Array<number>(6).fill(200 * KiB), 'the durable offset in the store after each renewal');
      } finally {
        await pa.close();
        slow.destroy();
      }
    });

    it('each partial charges its segment in memory to its connection\'s share of --max-memory: past the budget the connections holding the most stop being read, and closing gives it back', async () => {
      const [a] = daemons();
      const MiB = 1024 * KiB;
      // The daemon's budget with three connections, each with one upload (as recv/connection.ts
      // charges its leases: measure() is what its account holds; pause() stops reading it).
      const budget = new MemoryBudget(20 * MiB, 128 * KiB);
      const connections = [0, 1, 2].map(() => {
        const c = { held: 0, reading: true, user: undefined as unknown as MemoryUser };
        c.user = { measure: () => c.held, pausable: () => true, pause: () => (c.reading = false), resume: () => (c.reading = true) };
        budget.add(c.user);
        return c;
      });
      const data = randomBytes(7 * MiB);
      const partials: PartialUpload[] = [];
      for (const [i, c] of connections.entries()) {
        const memory = {
          held: (bytes: number): void => {
            c.held += bytes;
            budget.update(c.user);
          },
        };
        const p = await a.openPartial(id(`memory ${i}`), meta(`m${i}.bin`, 64 * MiB), undefined, { ...limits(), memory });
        partials.push(p);
        await feed(p, data, 0, data.length);
        assert.equal(await p.checkpoint(), data.length);
      }
      // 7 MiB into a segment of 8 MiB each (stored as a piece, kept in memory until the segment is full): what it holds is charged.
      assert.deepEqual(connections.map((c) => c.held), [7 * MiB, 7 * MiB, 7 * MiB], 'each segment charged to its connection');
      assert.equal(budget.usedBytes, 21 * MiB);
      assert.equal(connections.filter((c) => !c.reading).length, 1, 'past 20 MiB, the heaviest stop until the rest fit under the low-water mark (15 MiB): 14 MiB');
      for (const p of partials) await p.discard();
      assert.deepEqual(connections.map((c) => c.held), [0, 0, 0], 'closed: the segments given back');
      assert.equal(budget.usedBytes, 0);
      assert.ok(connections.every((c) => c.reading), 'all read again');
    });

    it('two daemons publishing one name with no-clobber at once: one wins, the other gets EXISTS, the file is one of them whole', async () => {
      const [a, b] = daemons();
      const one = randomBytes(200 * KiB);
      const two = randomBytes(200 * KiB);
      const pa = await a.openPartial(id('race a'), meta('race.bin', one.length), undefined, limits());
      const pb = await b.openPartial(id('race b'), meta('race.bin', two.length), undefined, limits());
      await Promise.all([feed(pa, one, 0, one.length), feed(pb, two, 0, two.length)]);
      await Promise.all([pa.endWrites(), pb.endWrites()]);
      const results = await Promise.allSettled([
        pa.publish('race.bin', { mode: 0o644, mtime: 0, how: 'no-clobber' }),
        pb.publish('race.bin', { mode: 0o644, mtime: 0, how: 'no-clobber' }),
      ]);
      const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason instanceof StxError ? r.reason.code : String(r.reason)));
      assert.deepEqual([...codes].sort(), ['EXISTS', 'ok'], `outcomes ${codes.join(', ')}`);
      const file = await a.openFile('race.bin');
      assert.ok(file !== null);
      const back = Buffer.alloc(file.size);
      await file.readAt(back, 0);
      await file.close();
      assert.ok(back.equals(codes[0] === 'ok' ? one : two), 'the winner is published whole');
    });
  });
}
