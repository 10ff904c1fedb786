// The data path's sources (src/transfer/source.ts) and the sender's ACK bookkeeping
// (src/transfer/sender.ts), on real temp files: a FileSource hands out the file's bytes at any
// offset, page-aligned like the file, and notices a file that changed or shrank under it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, truncate, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import { MAX_DATA_CHUNK_BYTES } from '../src/proto/limits.js';
import { inAlignedMemory, PAGE_BYTES } from '../src/runtime/aligned-memory.js';
import { Sender } from '../src/transfer/sender.js';
import { FileSource } from '../src/transfer/source.js';
import { tempDir } from './support/procs.js';

const code = (c: string) => (err: unknown): boolean => err instanceof StxError && err.code === c;

describe('FileSource', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  before(async () => {
    tmp = await tempDir('stx-source-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('announces size, whole-ms mtime and permission bits, and is seekable', async () => {
    const file = path.join(tmp.dir, 'id.bin');
    await writeFile(file, randomBytes(1234));
    await chmod(file, 0o640);
    await utimes(file, 1_700_000_000.25, 1_700_000_000.5);
    const source = await FileSource.open(file);
    try {
      assert.deepEqual(source.identity, { size: 1234, mtime: 1_700_000_000_500, mode: 0o640 });
      assert.equal(source.seekable, true);
      assert.equal(source.label, file);
    } finally {
      await source.close();
    }
  });

  it('reads the bytes at any offset, a chunk at most, page-aligned like the file, two chunks alive at once', async () => {
    const content = randomBytes(2 * MAX_DATA_CHUNK_BYTES + 4321);
    const file = path.join(tmp.dir, 'read.bin');
    await writeFile(file, content);
    const source = await FileSource.open(file);
    try {
      for (const at of [0, 1, PAGE_BYTES - 1, MAX_DATA_CHUNK_BYTES, 2 * MAX_DATA_CHUNK_BYTES, content.length - 1]) {
        const first = await source.read(at);
        const second = await source.read(at + first.length);
        assert.deepEqual(first, content.subarray(at, at + MAX_DATA_CHUNK_BYTES), `chunk at ${at}`);
        assert.deepEqual(second, content.subarray(at + first.length, at + first.length + MAX_DATA_CHUNK_BYTES), `chunk after ${at}`);
        if (inAlignedMemory(first)) assert.equal(first.byteOffset % PAGE_BYTES, at % PAGE_BYTES, `page offset at ${at}`);
      }
      assert.equal((await source.read(content.length)).length, 0, 'nothing at the end');
      assert.equal((await source.read(content.length + 10)).length, 0, 'nothing past the end');
    } finally {
      await source.close();
    }
  });

  it('an empty file reads nothing', async () => {
    const file = path.join(tmp.dir, 'empty.bin');
    await writeFile(file, '');
    const source = await FileSource.open(file);
    try {
      assert.equal(source.identity.size, 0);
      assert.equal((await source.read(0)).length, 0);
      await source.checkUnchanged();
    } finally {
      await source.close();
    }
  });

  it('checkUnchanged passes for the same file and is LOCAL_FILE once its size or mtime changed', async () => {
    const file = path.join(tmp.dir, 'change.bin');
    await writeFile(file, randomBytes(5000));
    await utimes(file, 1_700_000_000, 1_700_000_000);
    const source = await FileSource.open(file);
    try {
      await source.checkUnchanged();
      await utimes(file, 1_700_000_000, 1_700_000_001);
      await assert.rejects(source.checkUnchanged(), code('LOCAL_FILE'), 'another mtime');
      await utimes(file, 1_700_000_000, 1_700_000_000);
      await source.checkUnchanged();
      await appendFile(file, 'x');
      await utimes(file, 1_700_000_000, 1_700_000_000);
      await assert.rejects(source.checkUnchanged(), /changed while it was being uploaded/, 'another size, same mtime');
    } finally {
      await source.close();
    }
  });

  it('a file that became shorter reads short where it now ends', async () => {
    const content = randomBytes(MAX_DATA_CHUNK_BYTES + 100);
    const file = path.join(tmp.dir, 'shrink.bin');
    await writeFile(file, content);
    const source = await FileSource.open(file);
    try {
      await truncate(file, 50);
      assert.deepEqual(await source.read(0), content.subarray(0, 50));
      assert.equal((await source.read(MAX_DATA_CHUNK_BYTES)).length, 0);
      await assert.rejects(source.checkUnchanged(), code('LOCAL_FILE'));
    } finally {
      await source.close();
    }
  });

  it('opening what is missing or not a regular file is LOCAL_FILE', async () => {
    await assert.rejects(FileSource.open(path.join(tmp.dir, 'missing.bin')), code('LOCAL_FILE'));
    const dir = path.join(tmp.dir, 'a-dir');
    await mkdir(dir);
    await assert.rejects(FileSource.open(dir), /is not a regular file/);
  });
});

describe('Sender', () => {
  it('accepts ACKs from the connection offset up to what was sent, never going back (BAD_OFFSET otherwise)', async () => {
    const tmp = await tempDir('stx-sender-');
    try {
      const file = path.join(tmp.dir, 'f.bin');
      await writeFile(file, randomBytes(100));
      const source = await FileSource.open(file);
      try {
        const sender = new Sender(source);
        sender.begin(40);
        assert.equal(sender.sent, 40);
        assert.equal(sender.acked, 40);
        sender.acknowledge(40);
        assert.throws(() => sender.acknowledge(41), code('BAD_OFFSET'), 'past what was sent on this connection');
        assert.throws(() => sender.acknowledge(39), code('BAD_OFFSET'), 'below the offset the server gave');
        // A new connection starts from its own offset: what an earlier one acknowledged does not count.
        sender.begin(10);
        assert.throws(() => sender.acknowledge(40), code('BAD_OFFSET'));
        sender.acknowledge(10);
        assert.equal(sender.acked, 10);
      } finally {
        await source.close();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
