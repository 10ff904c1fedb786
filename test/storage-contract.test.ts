// The storage contract (storage-contract.ts) against every backend: the local disk under a temp
// directory, restarted by a new LocalBackend over the same directory; and memory, restarted by a
// simulated crash.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, realpath, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import { LocalBackend } from '../src/storage/local/backend.js';
import { MemoryBackend } from '../src/storage/memory.js';
import { ByteBudget } from '../src/transfer/budget.js';
import { storageContract } from './storage-contract.js';

storageContract('local disk', async () => {
  const root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'stx-contract-')));
  const out = path.join(root, 'out');
  return {
    backend: new LocalBackend(out),
    restart: async () => {
      const again = new LocalBackend(out);
      await again.init();
      return again;
    },
    cleanup: async () => {
      // Nothing a backend does ever lands beside its output directory.
      assert.deepEqual(await readdir(root), ['out']);
      await rm(root, { recursive: true, force: true });
    },
  };
});

storageContract('memory', () => {
  const backend = new MemoryBackend();
  return Promise.resolve({
    backend,
    restart: () => {
      backend.crash();
      return Promise.resolve(backend);
    },
    cleanup: () => Promise.resolve(),
  });
});

describe('MemoryBackend.crash', () => {
  it('fails the writes and checkpoints of partials open at the crash, and keeps only checkpointed bytes', async () => {
    const backend = new MemoryBackend();
    const id = 'c'.repeat(64);
    const meta = { principal: 'anonymous', name: 'c', size: 100, mtime: 0, mode: 0o644 };
    const limits = { budget: new ByteBudget(1024 * 1024), maxQueuedBytes: 1024, maxChunkBytes: 64 };
    const partial = await backend.openPartial(id, meta, undefined, limits);
    partial.write(0, Buffer.alloc(40, 1));
    assert.equal(await partial.checkpoint(), 40);
    partial.write(40, Buffer.alloc(30, 2));
    backend.crash();
    await assert.rejects(partial.checkpoint(), (e: unknown) => e instanceof StxError && e.code === 'IO_ERROR');
    const record = await backend.record(id);
    assert.equal(record?.durable, 40);
    const resumed = await backend.openPartial(id, meta, record, limits);
    assert.equal(resumed.durable, 40);
    const back = Buffer.alloc(100);
    assert.equal(await resumed.prefix.readAt(back, 0), 40);
    assert.deepEqual(back.subarray(0, 40), Buffer.alloc(40, 1));
    await partial.close();
    await resumed.discard();
    assert.equal(await backend.record(id), undefined, 'the stale handle did not close or remove the new one');
  });
});
