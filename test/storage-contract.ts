// The contract every storage backend keeps (src/storage/backend.ts), as one suite that takes a
// backend factory (STYLE.md "One contract suite per interface", like tus's stores.ts):
// storage-contract.test.ts runs it against the local disk and memory backends.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StxError, type ErrorCode } from '../src/proto/errors.js';
import type { PartialMeta, PartialUpload, PositionalReader, StorageBackend, WriteLimits } from '../src/storage/backend.js';
import { ByteBudget } from '../src/transfer/budget.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

/** One backend under test, over storage of its own. */
export interface BackendHarness {
  readonly backend: StorageBackend;
  /**
   * The process goes away and comes back: a new backend over the same storage, initialised. Call
   * with no partial open; what was written but not checkpointed may be lost.
   */
  restart(): Promise<StorageBackend>;
  /** Frees the storage. */
  cleanup(): Promise<void>;
  /** The directories of the published tree ('/'-separated, sorted), not the backend's own state. */
  directories(): Promise<string[]>;
  /**
   * Changes published file `name` in place by other means than the backend (another process
   * appending to it), where the storage allows that; absent otherwise.
   */
  changeInPlace?(name: string): Promise<void>;
  /**
   * Files of at most this many bytes have their SHA-256 computed from their bytes when asked,
   * recorded or not (local disk: 64 KiB, sums.ts); absent where a backend only gives recorded ones.
   */
  readonly smallHashBytes?: number;
}

function hasCode(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof StxError && err.code === code;
}

let idNo = 0;
/** A fresh partial id (64 hex digits, as the policy's uploadId makes them). */
function newId(): string {
  return createHash('sha256').update(`contract ${idNo++} ${Math.random()}`).digest('hex');
}

function meta(name: string, size: number): PartialMeta {
  return { principal: 'anonymous', name, size, mtime: 1_700_000_000_123, mode: 0o640 };
}

function limits(maxQueuedBytes = 4 * MiB): WriteLimits {
  return { budget: new ByteBudget(64 * MiB), maxQueuedBytes, maxChunkBytes: CHUNK };
}

/** Writes data[from, to) in CHUNK pieces at their offsets, honouring pause. */
async function feed(partial: PartialUpload, data: Buffer, from: number, to = data.length): Promise<void> {
  for (let at = from; at < to; at += CHUNK) {
    if (partial.write(at, data.subarray(at, Math.min(at + CHUNK, to)))) await partial.drained();
  }
}

/** Bytes [0, length) of `reader`. */
async function readAll(reader: PositionalReader, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let at = 0;
  for (let reads = 0; at < length && reads < 1_000_000; reads++) {
    const n = await reader.readAt(out.subarray(at, Math.min(length, at + 100 * KiB)), at);
    if (n === 0) break;
    at += n;
  }
  return out.subarray(0, at);
}

export function storageContract(kind: string, make: () => Promise<BackendHarness>): void {
  describe(`storage contract: ${kind}`, () => {
    let h: BackendHarness;
    let backend: StorageBackend;
    beforeEach(async () => {
      h = await make();
      backend = h.backend;
      await backend.init();
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it('opens a new partial at 0; nothing is recorded until the first checkpoint', async () => {
      const id = newId();
      const partial = await backend.openPartial(id, meta('new.bin', 10), undefined, limits());
      assert.equal(partial.durable, 0);
      assert.equal(partial.id, id);
      assert.equal(await backend.record(id), undefined);
      assert.equal(await partial.checkpoint(), 0);
      const record = await backend.record(id);
      assert.ok(record !== undefined);
      assert.deepEqual([record.durable, record.name, record.size, record.mode], [0, 'new.bin', 10, 0o640]);
      assert.deepEqual(
        (await backend.partials()).map((p) => p.id),
        [id],
      );
      await partial.close();
    });

    it('resumes from the recorded offset with the durable prefix readable, or starts over', async () => {
      const id = newId();
      const data = randomBytes(300 * KiB + 17);
      const first = await backend.openPartial(id, meta('r.bin', data.length), undefined, limits());
      await feed(first, data, 0, 200 * KiB);
      assert.equal(await first.checkpoint(), 200 * KiB);
      await first.close();
      const record = await backend.record(id);
      assert.ok(record !== undefined);
      assert.equal(record.durable, 200 * KiB);
      const second = await backend.openPartial(id, meta('r.bin', data.length), record, limits());
      assert.equal(second.durable, 200 * KiB);
      assert.deepEqual(await readAll(second.prefix, second.durable), data.subarray(0, 200 * KiB));
      assert.throws(() => second.write(0, data.subarray(0, 10)), hasCode('BAD_OFFSET'), 'writes go on at the durable offset');
      await feed(second, data, second.durable);
      assert.equal(await second.checkpoint(), data.length);
      await second.close();
      const over = await backend.openPartial(id, meta('r.bin', data.length), undefined, limits());
      assert.equal(over.durable, 0, 'no accepted record: start over');
      await over.close();
      const beyond = await backend.openPartial(id, meta('r.bin', data.length + 5), { ...record, durable: data.length + 5 }, limits());
      assert.equal(beyond.durable, 0, 'a record claiming more than the partial holds is not trusted');
      await beyond.discard();
    });

    it('pauses when its queue is full, drains, and writes every byte at its offset', async () => {
      const id = newId();
      const data = randomBytes(40 * CHUNK);
      const partial = await backend.openPartial(id, meta('bp.bin', data.length), undefined, limits(4 * CHUNK));
      let at = 0;
      let paused = false;
      for (; at < data.length && !paused; at += CHUNK) paused = partial.write(at, data.subarray(at, at + CHUNK));
      assert.equal(paused, true, 'writes faster than storage pause');
      assert.equal(partial.paused, true);
      assert.ok(at <= 4 * CHUNK, `paused after ${at / CHUNK} chunks`);
      await partial.drained();
      assert.equal(partial.paused, false);
      await feed(partial, data, at);
      assert.throws(() => partial.write(data.length + 1, Buffer.alloc(1)), hasCode('BAD_OFFSET'));
      assert.equal(await partial.checkpoint(), data.length);
      assert.deepEqual(await readAll(partial.prefix, data.length), data);
      await partial.close();
    });

    it('after a restart keeps exactly the checkpointed bytes, not those written after', async () => {
      const id = newId();
      const data = randomBytes(256 * KiB);
      const partial = await backend.openPartial(id, meta('d.bin', data.length), undefined, limits());
      await feed(partial, data, 0, 96 * KiB);
      assert.equal(await partial.checkpoint(), 96 * KiB);
      await feed(partial, data, 96 * KiB, 160 * KiB);
      await partial.endWrites();
      await partial.close(); // no checkpoint: the last 64 KiB were never promised
      const again = await h.restart();
      const record = await again.record(id);
      assert.equal(record?.durable, 96 * KiB);
      const resumed = await again.openPartial(id, meta('d.bin', data.length), record, limits());
      assert.equal(resumed.durable, 96 * KiB);
      assert.deepEqual(await readAll(resumed.prefix, data.length), data.subarray(0, 96 * KiB), 'nothing past the checkpoint is kept');
      await feed(resumed, data, resumed.durable);
      await resumed.endWrites();
      await resumed.publish('d.bin', { mode: 0o600, mtime: 1_000_000, how: 'replace' });
      const file = await again.openFile('d.bin');
      assert.ok(file !== null);
      assert.deepEqual(await readAll(file, file.size), data);
      await file.close();
    });

    it("publishes: 'replace' swaps the file, 'no-clobber' refuses an existing name with EXISTS and keeps the partial", async () => {
      const a = randomBytes(100 * KiB);
      const b = randomBytes(70 * KiB);
      assert.equal(await backend.prepareName('dir/sub/f.bin'), null);
      const pa = await backend.openPartial(newId(), meta('dir/sub/f.bin', a.length), undefined, limits());
      await feed(pa, a, 0);
      await pa.endWrites();
      await pa.publish('dir/sub/f.bin', { mode: 0o640, mtime: 1_700_000_000_123, how: 'no-clobber' });
      const info = await backend.prepareName('dir/sub/f.bin');
      assert.ok(info !== null);
      assert.equal(info.size, a.length);
      assert.equal(Math.round(info.mtime), 1_700_000_000_123);
      const idB = newId();
      const pb = await backend.openPartial(idB, meta('dir/sub/f.bin', b.length), undefined, limits());
      await feed(pb, b, 0);
      await pb.checkpoint();
      await pb.endWrites();
      await assert.rejects(pb.publish('dir/sub/f.bin', { mode: 0o600, mtime: 5, how: 'no-clobber' }), hasCode('EXISTS'));
      const kept = await backend.record(idB);
      assert.equal(kept?.durable, b.length, 'the partial is still there');
      const before = await backend.openFile('dir/sub/f.bin');
      assert.ok(before !== null);
      assert.deepEqual(await readAll(before, before.size), a, 'the file is untouched');
      await before.close();
      const pb2 = await backend.openPartial(idB, meta('dir/sub/f.bin', b.length), kept, limits());
      assert.equal(pb2.durable, b.length);
      await pb2.endWrites();
      await pb2.publish('dir/sub/f.bin', { mode: 0o600, mtime: 5_000, how: 'replace' });
      const after = await backend.openFile('dir/sub/f.bin');
      assert.ok(after !== null);
      assert.equal(after.size, b.length);
      assert.deepEqual(await readAll(after, after.size), b);
      await after.close();
      assert.equal(await backend.record(idB), undefined, 'a published partial is gone');
      assert.deepEqual(await backend.partials(), []);
    });

    it("creates a name's directories only when its file is published (§9.3), not at prepareName or openPartial", async () => {
      const name = 'd1/d2/d3/deep.bin';
      assert.equal(await backend.prepareName(name), null);
      const p = await backend.openPartial(newId(), meta(name, 3), undefined, limits());
      await feed(p, Buffer.from('abc'), 0);
      await p.checkpoint();
      assert.deepEqual(await h.directories(), [], 'nothing in the published tree before publish');
      await p.endWrites();
      await p.publish(name, { mode: 0o644, mtime: 0, how: 'replace' });
      assert.deepEqual(await h.directories(), ['d1', 'd1/d2', 'd1/d2/d3']);
    });

    it('refuses a name whose parent is a file, or that is a directory, with BAD_NAME', async () => {
      const data = Buffer.from('x');
      const p = await backend.openPartial(newId(), meta('a/b', 1), undefined, limits());
      await feed(p, data, 0);
      await p.endWrites();
      await p.publish('a/b', { mode: 0o644, mtime: 0, how: 'replace' });
      await assert.rejects(backend.prepareName('a/b/c'), hasCode('BAD_NAME'));
      await assert.rejects(backend.prepareName('a'), hasCode('BAD_NAME'));
      const q = await backend.openPartial(newId(), meta('a', 1), undefined, limits());
      await feed(q, data, 0);
      await q.endWrites();
      await assert.rejects(q.publish('a', { mode: 0o644, mtime: 0, how: 'replace' }), hasCode('BAD_NAME'));
      await q.discard();
    });

    it('discards a partial (open or by id): its record and bytes go, a new open starts at 0', async () => {
      const data = randomBytes(50 * KiB);
      const id = newId();
      const p = await backend.openPartial(id, meta('x', data.length), undefined, limits());
      await feed(p, data, 0);
      await p.checkpoint();
      await p.discard();
      assert.equal(await backend.record(id), undefined);
      const q = await backend.openPartial(id, meta('x', data.length), undefined, limits());
      await feed(q, data, 0, 10 * KiB);
      await q.checkpoint();
      await q.close();
      await assert.rejects(backend.discard('not an id'), hasCode('INTERNAL'));
      await backend.discard(id);
      assert.equal(await backend.record(id), undefined);
      assert.deepEqual(await backend.partials(), []);
      await backend.discard(id); // absent: nothing to do
    });

    it('lists published files only, and reads them back at any position', async () => {
      const files = new Map([
        ['one.txt', randomBytes(10)],
        ['deep/er/two.bin', randomBytes(200 * KiB + 3)],
        ['empty', Buffer.alloc(0)],
      ]);
      for (const [name, data] of files) {
        const p = await backend.openPartial(newId(), meta(name, data.length), undefined, limits());
        await feed(p, data, 0);
        await p.endWrites();
        await p.publish(name, { mode: 0o644, mtime: 2_000, how: 'replace' });
      }
      const pending = await backend.openPartial(newId(), meta('pending', 5), undefined, limits());
      await feed(pending, Buffer.from('abc'), 0);
      await pending.checkpoint();
      const listed = (await backend.list()).sort((x, y) => x.name.localeCompare(y.name));
      assert.deepEqual(
        listed.map((f) => [f.name, f.size, Math.round(f.mtime)]),
        [...files].sort(([x], [y]) => x.localeCompare(y)).map(([name, data]) => [name, data.length, 2_000]),
      );
      const two = await backend.openFile('deep/er/two.bin');
      assert.ok(two !== null);
      const piece = Buffer.alloc(1000);
      assert.equal(await two.readAt(piece, 150 * KiB), 1000);
      assert.deepEqual(piece, files.get('deep/er/two.bin')?.subarray(150 * KiB, 150 * KiB + 1000));
      assert.equal(await two.readAt(piece, two.size), 0, 'nothing past the end');
      await two.close();
      assert.equal(await backend.openFile('absent'), null);
      await pending.close();
    });

    it('reads directories of published files (not partials), opens files without creating anything, and stamps versions', async () => {
      const publish = async (name: string, data: Buffer, mode: number, mtime: number): Promise<void> => {
        const p = await backend.openPartial(newId(), meta(name, data.length), undefined, limits());
        await feed(p, data, 0);
        await p.endWrites();
        await p.publish(name, { mode, mtime, how: 'replace' });
      };
      await publish('top.txt', Buffer.from('top'), 0o640, 1_700_000_000_250);
      await publish('d/e/f.bin', Buffer.from('deep'), 0o600, 2_000);
      const pending = await backend.openPartial(newId(), meta('d/pending', 5), undefined, limits());
      await feed(pending, Buffer.from('abc'), 0);
      await pending.checkpoint();
      const top = (await backend.readDirectory([])) ?? [];
      assert.deepEqual(
        top.map((e) => [e.name, e.kind]).sort(),
        [['d', 'directory'], ['top.txt', 'file']],
        'the reserved state and partials are not listed',
      );
      const file = top.find((e) => e.name === 'top.txt');
      assert.deepEqual([file?.size, file?.mode, file?.mtime], [3, 0o640, 1_700_000_000_250]);
      assert.deepEqual((await backend.readDirectory(['d', 'e']))?.map((e) => e.name), ['f.bin']);
      assert.equal(await backend.readDirectory(['top.txt']), null, 'a file is not a directory');
      assert.equal(await backend.readDirectory(['absent']), null);
      assert.equal(await backend.openFile('absent/deeper/x'), null);
      assert.equal(await backend.readDirectory(['absent']), null, 'looking created nothing');
      const opened = await backend.openFile('top.txt');
      assert.ok(opened !== null);
      assert.deepEqual([opened.size, opened.mode, opened.mtime, opened.stamp], [3, 0o640, 1_700_000_000_250, file?.stamp]);
      assert.equal(await opened.currentStamp(), opened.stamp);
      await opened.close();
      await publish('top.txt', Buffer.from('new'), 0o640, 1_700_000_000_250);
      const again = (await backend.readDirectory([]))?.find((e) => e.name === 'top.txt');
      assert.notEqual(again?.stamp, file?.stamp, 'a new publication is a new version, even with the same size and mtime');
      await pending.close();
    });

    it('gives the SHA-256 recorded at publish for that version only: after a restart, not after a replace or a change in place', async () => {
      const publish = async (name: string, data: Buffer, sha256?: Buffer): Promise<void> => {
        const p = await backend.openPartial(newId(), meta(name, data.length), undefined, limits());
        await feed(p, data, 0);
        await p.endWrites();
        await p.publish(name, { mode: 0o644, mtime: 3_000, how: 'replace', ...(sha256 === undefined ? {} : { sha256 }) });
      };
      const hash = (data: Buffer): Buffer => createHash('sha256').update(data).digest();
      const listed = async (dir: string[], name: string): Promise<string | undefined> =>
        (await backend.readDirectory(dir))?.find((e) => e.name === name)?.sha256?.toString('hex');
      const opened = async (name: string): Promise<string | undefined> => {
        const f = await backend.openFile(name);
        await f?.close();
        return f?.sha256?.toString('hex');
      };
      // Larger than a file whose hash a backend computes (smallHashBytes; the next test).
      const a = randomBytes(70 * KiB + 5);
      await publish('s/a.bin', a, hash(a));
      await publish('s/plain.bin', randomBytes(70 * KiB));
      assert.equal(await listed(['s'], 'a.bin'), hash(a).toString('hex'));
      assert.equal(await opened('s/a.bin'), hash(a).toString('hex'));
      assert.equal(await listed(['s'], 'plain.bin'), undefined, 'a publish without a hash leaves it unknown');
      backend = await h.restart();
      assert.equal(await listed(['s'], 'a.bin'), hash(a).toString('hex'), 'kept across a restart');
      assert.equal(await opened('s/a.bin'), hash(a).toString('hex'));
      const b = randomBytes(66 * KiB);
      await publish('s/a.bin', b, hash(b));
      assert.equal(await listed(['s'], 'a.bin'), hash(b).toString('hex'), 'a replaced file has its new hash');
      await publish('s/a.bin', a);
      assert.equal(await listed(['s'], 'a.bin'), undefined, 'replaced without a hash: unknown, never the old one');
      await publish('s/c.bin', a, hash(a));
      if (h.changeInPlace !== undefined) {
        await h.changeInPlace('s/c.bin');
        assert.equal(await listed(['s'], 'c.bin'), undefined, 'a file changed in place is not reported with its old hash');
        assert.equal(await opened('s/c.bin'), undefined);
      }
    });

    it('gives a small file the SHA-256 of its bytes where the backend computes it (smallHashBytes), never that of other bytes', async () => {
      const publish = async (name: string, data: Buffer, sha256?: Buffer): Promise<void> => {
        const p = await backend.openPartial(newId(), meta(name, data.length), undefined, limits());
        await feed(p, data, 0);
        await p.endWrites();
        await p.publish(name, { mode: 0o644, mtime: 3_000, how: 'replace', ...(sha256 === undefined ? {} : { sha256 }) });
      };
      const hex = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
      const listed = async (name: string): Promise<string | undefined> =>
        (await backend.readDirectory(['t']))?.find((e) => e.name === name)?.sha256?.toString('hex');
      const opened = async (name: string): Promise<string | undefined> => {
        const f = await backend.openFile(`t/${name}`);
        await f?.close();
        return f?.sha256?.toString('hex');
      };
      const limit = h.smallHashBytes;
      /** What a backend that computes small files' hashes gives for a file published without one. */
      const computed = (data: Buffer): string | undefined => (limit !== undefined && data.length <= limit ? hex(data) : undefined);
      const small = randomBytes(4 * KiB);
      const plain = randomBytes(100);
      await publish('t/small.bin', small, createHash('sha256').update(small).digest());
      await publish('t/plain.bin', plain);
      for (let round = 0; round < 2; round++) {
        assert.equal(await listed('small.bin'), hex(small), `round ${round}`);
        assert.equal(await opened('small.bin'), hex(small));
        assert.equal(await listed('plain.bin'), computed(plain), 'published without a hash: computed or unknown');
        assert.equal(await opened('plain.bin'), computed(plain));
        if (round === 0) backend = await h.restart();
      }
      if (limit !== undefined) {
        const edge = randomBytes(limit);
        const over = randomBytes(limit + 1);
        await publish('t/edge.bin', edge);
        await publish('t/over.bin', over);
        assert.equal(await listed('edge.bin'), hex(edge), 'at the limit: computed');
        assert.equal(await listed('over.bin'), undefined, 'above it: only recorded');
      }
      if (h.changeInPlace !== undefined) {
        await h.changeInPlace('t/small.bin');
        // The harness writes 0x5a bytes of the same size and puts the mtime back.
        const now = Buffer.alloc(small.length, 0x5a);
        assert.equal(await listed('small.bin'), computed(now), 'changed in place: the new bytes\' hash or unknown, never the old');
        assert.equal(await opened('small.bin'), computed(now));
      }
    });

    it('sweeps partials older than the TTL that are not open, asking claim() first', async () => {
      const data = randomBytes(20 * KiB);
      const ids = [newId(), newId(), newId()];
      for (const id of ids.slice(0, 2)) {
        const p = await backend.openPartial(id, meta(`s-${id.slice(0, 8)}`, data.length), undefined, limits());
        await feed(p, data, 0);
        await p.checkpoint();
        await p.close();
      }
      const open = await backend.openPartial(ids[2] ?? '', meta('s-open', data.length), undefined, limits());
      await open.checkpoint();
      assert.equal(await backend.sweep(60_000, Date.now(), () => true), 0, 'nothing is old yet');
      const asked: string[] = [];
      const keep = ids[1];
      const removed = await backend.sweep(60_000, Date.now() + 120_000, (id) => {
        asked.push(id);
        return id !== keep;
      });
      assert.equal(removed, 1);
      assert.deepEqual(asked.sort(), ids.slice(0, 2).sort(), 'claim is asked for old partials only, never an open one');
      assert.equal(await backend.record(ids[0] ?? ''), undefined);
      assert.equal((await backend.record(keep ?? ''))?.durable, data.length, 'claim() said keep');
      assert.equal((await backend.record(ids[2] ?? ''))?.durable, 0, 'the open partial stays');
      await open.close();
    });

    it('keeps concurrent partials of different ids apart', async () => {
      const a = randomBytes(300 * KiB);
      const b = randomBytes(260 * KiB + 1);
      const pa = await backend.openPartial(newId(), meta('ca', a.length), undefined, limits());
      const pb = await backend.openPartial(newId(), meta('cb', b.length), undefined, limits());
      for (let at = 0; at < Math.max(a.length, b.length); at += CHUNK) {
        const pause = [
          at < a.length && pa.write(at, a.subarray(at, at + CHUNK)),
          at < b.length && pb.write(at, b.subarray(at, at + CHUNK)),
        ];
        if (pause.some(Boolean)) await Promise.all([pa.drained(), pb.drained()]);
      }
      assert.deepEqual(await Promise.all([pa.checkpoint(), pb.checkpoint()]), [a.length, b.length]);
      await Promise.all([pa.endWrites(), pb.endWrites()]);
      await pa.publish('ca', { mode: 0o644, mtime: 0, how: 'no-clobber' });
      await pb.publish('cb', { mode: 0o644, mtime: 0, how: 'no-clobber' });
      for (const [name, data] of [['ca', a], ['cb', b]] as const) {
        const file = await backend.openFile(name);
        assert.ok(file !== null);
        assert.deepEqual(await readAll(file, file.size), data);
        await file.close();
      }
    });

    it('reports free space', async () => {
      const free = await backend.freeBytes();
      assert.equal(typeof free, 'bigint');
      assert.ok(free > 0n);
    });
  });
}
