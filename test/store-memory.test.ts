// The upload policy (recv/store.ts) on the in-memory backend: the same Store, no disk. Shows the
// policy is backend-neutral: verified publication, resume after release and after a crash,
// INTEGRITY_FAILED, append-only and its same-file check, BUSY, one partial per client and name,
// sweep, NO_SPACE.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { StxError, type ErrorCode } from '../src/proto/errors.js';
import { Store, type OpenRequest, type OpenUpload } from '../src/recv/store.js';
import { MemoryBackend } from '../src/storage/memory.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;
const REPLACE = { appendOnly: false } as const;
const APPEND_ONLY = { appendOnly: true } as const;

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
function hasCode(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof StxError && err.code === code;
}
function request(name: string, data: Buffer, extra: Partial<OpenRequest> = {}): OpenRequest {
  return { principal: 'anonymous', name, size: data.length, mtime: 1_700_000_000_123, mode: 0o640, ...extra };
}
async function send(upload: OpenUpload, data: Buffer, from: number, to = data.length): Promise<void> {
  for (let at = from; at < to; at += CHUNK) {
    if (upload.write(at, data.subarray(at, Math.min(at + CHUNK, to)))) await upload.drained();
  }
}
async function storeOn(backend: MemoryBackend): Promise<Store> {
  const store = new Store('memory', { backend, maxQueuedBytesPerConnection: 4 * MiB, maxChunkBytes: MiB, freeSpaceMarginBytes: 0 });
  await store.init();
  return store;
}
async function published(backend: MemoryBackend, name: string): Promise<Buffer | null> {
  const file = await backend.openFile(name);
  if (file === null) return null;
  const out = Buffer.alloc(file.size);
  let at = 0;
  for (let reads = 0; at < file.size && reads < 100_000; reads++) at += await file.readAt(out.subarray(at), at);
  await file.close();
  return out.subarray(0, at);
}

describe('Store on the memory backend', () => {
  it('publishes only after the SHA-256 matches; INTEGRITY_FAILED leaves nothing', async () => {
    const backend = new MemoryBackend();
    const store = await storeOn(backend);
    const data = randomBytes(MiB + 5);
    const bad = await store.open(request('a/b.bin', data), REPLACE);
    await send(bad, data, 0);
    await assert.rejects(bad.finish(sha256(Buffer.from('other'))), hasCode('INTEGRITY_FAILED'));
    assert.equal(await published(backend, 'a/b.bin'), null);
    assert.deepEqual(await backend.partials(), []);
    const good = await store.open(request('a/b.bin', data), REPLACE);
    assert.equal(good.offset, 0);
    await send(good, data, 0);
    const result = await good.finish(sha256(data));
    assert.deepEqual(result.sha256, sha256(data));
    assert.deepEqual(await published(backend, 'a/b.bin'), data);
    assert.equal(store.openUploads, 0);
    await store.close();
  });

  it('resumes after release, re-hashing the durable prefix after a crash and a new Store', async () => {
    const backend = new MemoryBackend();
    const data = randomBytes(2 * MiB + 3);
    {
      const store = await storeOn(backend);
      const first = await store.open(request('r.bin', data), REPLACE);
      await send(first, data, 0, MiB);
      assert.equal(await first.release(), MiB);
      const second = await store.open(request('r.bin', data), REPLACE);
      assert.equal(second.offset, MiB);
      assert.equal(second.reread, 0, 'the parked hash was taken back');
      await send(second, data, MiB, MiB + 3 * CHUNK);
      assert.equal(await second.checkpoint(), MiB + 3 * CHUNK);
      await send(second, data, MiB + 3 * CHUNK, MiB + 5 * CHUNK);
      backend.crash(); // the daemon dies: the last two chunks were never checkpointed
      await store.close();
    }
    const store = await storeOn(backend);
    const resumed = await store.open(request('r.bin', data), REPLACE);
    assert.equal(resumed.offset, MiB + 3 * CHUNK);
    assert.equal(resumed.reread, MiB + 3 * CHUNK, 'a new process re-reads the prefix');
    await send(resumed, data, resumed.offset);
    await resumed.finish(sha256(data));
    assert.deepEqual(await published(backend, 'r.bin'), data);
    await store.close();
  });

  it('append-only: EXISTS for another content, DONE unchanged for the same, at finish EXISTS if the name appeared', async () => {
    const backend = new MemoryBackend();
    const store = await storeOn(backend);
    const data = randomBytes(300 * KiB);
    const first = await store.open(request('keep', data), APPEND_ONLY);
    await send(first, data, 0);
    await first.finish(sha256(data));
    const same = await store.open(request('keep', data, { mtime: 5 }), APPEND_ONLY);
    assert.equal(same.offset, data.length);
    const result = await same.finish(sha256(data));
    assert.equal(result.unchanged, true);
    const other = randomBytes(300 * KiB);
    const check = await store.open(request('keep', other), APPEND_ONLY);
    await assert.rejects(check.finish(sha256(other)), hasCode('EXISTS'));
    await assert.rejects(store.open(request('keep', Buffer.alloc(3)), APPEND_ONLY), hasCode('EXISTS'));
    const late = await store.open(request('late', data), APPEND_ONLY);
    await send(late, data, 0);
    const squatter = await store.open(request('late', Buffer.alloc(1), { principal: 'someone' }), REPLACE).catch((e: unknown) => e);
    assert.ok(hasCode('BUSY')(squatter), 'one upload per name');
    await late.finish(sha256(data));
    assert.deepEqual(await published(backend, 'keep'), data);
    assert.equal(store.openUploads, 0);
    await store.close();
  });

  it('keeps one partial per client and name, sweeps old ones, refuses what does not fit', async () => {
    const backend = new MemoryBackend({ capacityBytes: 4 * MiB });
    const store = await storeOn(backend);
    const data = randomBytes(200 * KiB);
    const v1 = await store.open(request('v', data), REPLACE);
    await send(v1, data, 0, 100 * KiB);
    await v1.release();
    const v2 = await store.open(request('v', data, { mtime: 7 }), REPLACE);
    await send(v2, data, 0, 50 * KiB);
    await v2.release();
    assert.deepEqual(
      (await backend.partials()).map((p) => p.record.mtime),
      [7],
      'the touched file replaced the old version at once',
    );
    assert.equal(await store.sweep(60_000), 0);
    assert.equal(await store.sweep(60_000, Date.now() + 120_000), 1);
    assert.deepEqual(await backend.partials(), []);
    await assert.rejects(store.open(request('huge', Buffer.alloc(0), { size: 5 * MiB }), REPLACE), hasCode('NO_SPACE'));
    await assert.rejects(store.open(request('../x', data), REPLACE), hasCode('BAD_NAME'));
    assert.equal(store.openUploads, 0);
    await store.close();
  });
});
