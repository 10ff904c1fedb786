// The storage contract (storage-contract.ts) against every backend: the local disk under a temp
// directory, restarted by a new LocalBackend over the same directory; and memory, restarted by a
// simulated crash.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readlink, realpath, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import { LocalBackend } from '../src/storage/local/backend.js';
import { BUFFERED_PARTIAL_MAX_BYTES, SMALL_SUM_MAX_BYTES } from '../src/storage/local/config.js';
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
    directories: () => localDirectories(out),
    changeInPlace: async (name) => {
      // Same size, same mtime after: only the ctime tells (and the stamp has it).
      const file = path.join(out, name);
      const before = await stat(file);
      await writeFile(file, Buffer.alloc(before.size, 0x5a));
      await utimes(file, before.atime, before.mtime);
    },
    smallHashBytes: SMALL_SUM_MAX_BYTES,
  };
});

/** Directories under `out`, '/'-separated and sorted, without the reserved .stx. */
async function localDirectories(out: string): Promise<string[]> {
  const found: string[] = [];
  const stack = [''];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    for (const e of await readdir(path.join(out, dir), { withFileTypes: true })) {
      const rel = dir === '' ? e.name : `${dir}/${e.name}`;
      if (rel === '.stx' || !e.isDirectory()) continue;
      found.push(rel);
      stack.push(rel);
    }
  }
  return found.sort();
}

storageContract('memory', () => {
  const backend = new MemoryBackend();
  return Promise.resolve({
    backend,
    restart: () => {
      backend.crash();
      return Promise.resolve(backend);
    },
    cleanup: () => Promise.resolve(),
    directories: async () => {
      // A memory backend has no directories of its own: a published name's parents are its directories.
      const dirs = new Set<string>();
      for (const { name } of await backend.list()) {
        const parts = name.split('/');
        for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
      }
      return [...dirs].sort();
    },
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

describe('LocalBackend names (§9.3)', () => {
  const limits = () => ({ budget: new ByteBudget(1024 * 1024), maxQueuedBytes: 1024, maxChunkBytes: 64 });
  const meta = (name: string) => ({ principal: 'anonymous', name, size: 1, mtime: 0, mode: 0o644 });

  async function withBackend(fn: (backend: LocalBackend, out: string) => Promise<void>): Promise<void> {
    const root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'stx-names-')));
    try {
      const backend = new LocalBackend(path.join(root, 'out'));
      await backend.init();
      await fn(backend, path.join(root, 'out'));
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  it('checks a name in a few calls however deep it is (the kernel resolves its directory once)', async () => {
    await withBackend(async (backend, out) => {
      const lookups: Record<number, number> = {};
      for (const depth of [2, 8, 64]) {
        const dirs = Array.from({ length: depth - 1 }, (_, i) => `d${i}`);
        await mkdir(path.join(out, `x${depth}`, ...dirs.slice(1)), { recursive: true });
        const name = [`x${depth}`, ...dirs.slice(1), 'f.bin'].join('/');
        const before = backend.pathCounters.lookups;
        assert.equal(await backend.prepareName(name), null);
        lookups[depth] = backend.pathCounters.lookups - before;
      }
      console.log(`filesystem calls of prepareName by depth: ${JSON.stringify(lookups)}`);
      assert.equal(lookups[64], lookups[2], 'as many calls for 64 components as for 2');
      assert.ok((lookups[64] ?? Infinity) <= 3);
    });
  });

  it('checks a name whose directories do not exist in at most one call per component, creating none', async () => {
    await withBackend(async (backend, out) => {
      const name = Array.from({ length: 63 }, (_, i) => `n${i}`).join('/') + '/f.bin';
      const before = backend.pathCounters.lookups;
      assert.equal(await backend.prepareName(name), null);
      const calls = backend.pathCounters.lookups - before;
      console.log(`filesystem calls of prepareName, 64 components, none there: ${calls}`);
      assert.ok(calls <= 64, `${calls} calls`);
      assert.deepEqual((await readdir(out)).filter((e) => e !== '.stx'), []);
      assert.equal(backend.pathCounters.created, 0);
    });
  });

  it('removes the directories a failed publish created, and only those', async () => {
    await withBackend(async (backend, out) => {
      await mkdir(path.join(out, 'kept'));
      const id = 'e'.repeat(64);
      const p = await backend.openPartial(id, meta('kept/new/deeper/f.bin'), undefined, limits());
      p.write(0, Buffer.from('x'));
      await p.checkpoint();
      await p.endWrites();
      // The partial's bytes vanish under it: the rename fails after the directories were made.
      await unlink(path.join(out, '.stx', 'partials', `${id}.part`));
      await assert.rejects(p.publish('kept/new/deeper/f.bin', { mode: 0o644, mtime: 0, how: 'replace' }), (e: unknown) => e instanceof StxError && e.code === 'IO_ERROR');
      assert.equal(backend.pathCounters.created, 2);
      assert.equal(backend.pathCounters.removed, 2);
      assert.deepEqual(await readdir(path.join(out, 'kept')), [], 'kept/ stays, new/ and new/deeper/ are gone');
    });
  });

  it('a partial of at most BUFFERED_PARTIAL_MAX_BYTES has one handle, no O_DIRECT one (issue 15)', async () => {
    /** This process's descriptors open on `file`. */
    const handlesOn = async (file: string): Promise<number> => {
      let n = 0;
      for (const fd of await readdir('/proc/self/fd')) if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === file) n++;
      return n;
    };
    await withBackend(async (backend, out) => {
      const small = 'f'.repeat(64);
      const p = await backend.openPartial(small, { ...meta('small.bin'), size: BUFFERED_PARTIAL_MAX_BYTES }, undefined, limits());
      assert.equal(await handlesOn(path.join(out, '.stx', 'partials', `${small}.part`)), 1);
      await p.close();
      // A larger one has its O_DIRECT handle too where the filesystem takes it (ext4, xfs; tmpfs may not).
      const large = 'a'.repeat(64);
      const q = await backend.openPartial(large, { ...meta('large.bin'), size: BUFFERED_PARTIAL_MAX_BYTES + 1 }, undefined, limits());
      const n = await handlesOn(path.join(out, '.stx', 'partials', `${large}.part`));
      console.log(`handles on a partial of ${BUFFERED_PARTIAL_MAX_BYTES + 1} bytes: ${n}`);
      assert.ok(n === 1 || n === 2, `${n} handles`);
      await q.close();
    });
  });
});
