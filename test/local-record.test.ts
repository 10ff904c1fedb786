// The local backend's record file (storage/local/record.ts): checkpoints after the first overwrite
// a slot in place, and a crash mid-write (a torn slot) leaves the record before it, never more.
import { strict as assert } from 'node:assert';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { PartialRecord } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local/backend.js';
import { encodeRecord, readRecord, RECORD_VERSION, RecordFile } from '../src/storage/local/record.js';

const base: PartialRecord = {
  version: RECORD_VERSION,
  principal: 'SHA256:abc',
  name: 'dir/file.bin',
  size: 64 * 2 ** 20,
  mtime: 1_700_000_000_000,
  mode: 0o644,
  durable: 0,
  created: 1,
  updated: 1,
};

describe('local record file: slots overwritten in place (issue 15)', () => {
  let dir: string;
  let file: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'stx-record-'));
    file = path.join(dir, 'x.json');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the newest write is the record; later writes keep the file (same inode, same size)', async () => {
    const records = new RecordFile(file, dir, 'x.json');
    try {
      await records.write({ ...base, durable: 1 });
      const first = await stat(file);
      for (let durable = 2; durable <= 5; durable++) {
        await records.write({ ...base, durable, updated: durable });
        assert.equal(readRecord(file, 'x.json')?.durable, durable);
      }
      const last = await stat(file);
      assert.equal(last.ino, first.ino, 'overwritten in place, not renamed over');
      assert.equal(last.size, first.size);
      assert.equal(first.size % 1024, 0, 'two slots of whole sectors');
    } finally {
      await records.close();
    }
  });

  it('a torn slot (a crash while writing it) leaves the record before it', async () => {
    const records = new RecordFile(file, dir, 'x.json');
    await records.write({ ...base, durable: 1 * 2 ** 20 });
    await records.write({ ...base, durable: 2 * 2 ** 20 });
    await records.write({ ...base, durable: 3 * 2 ** 20 });
    await records.close();
    const bytes = await readFile(file);
    const slot = bytes.length / 2;
    // The third write went to slot 0 (first: 0, second: 1, third: 0): tear it midway, as a crash
    // during its write would, digits of the durable offset included.
    const torn = Buffer.from(bytes);
    const at = torn.indexOf('"durable":');
    assert.ok(at > 0 && at < slot);
    torn.write('"durable":9', at, 'latin1');
    await writeFile(file, torn);
    assert.equal(readRecord(file, 'x.json')?.durable, 2 * 2 ** 20, 'the slot before it, whole');
    // Both torn: no record (the upload starts again from 0), never a made-up offset.
    torn.fill(0x39, slot + 70, slot + 90);
    await writeFile(file, torn);
    assert.equal(readRecord(file, 'x.json'), undefined);
  });

  it('a new open rewrites the file whole; the one-line form of older daemons is still read', async () => {
    await writeFile(file, encodeRecord({ ...base, durable: 7 }));
    assert.equal(readRecord(file, 'x.json')?.durable, 7);
    const before = await stat(file);
    const records = new RecordFile(file, dir, 'x.json');
    try {
      await records.write({ ...base, durable: 8 });
      assert.notEqual((await stat(file)).ino, before.ino, 'made anew by rename');
      assert.equal(readRecord(file, 'x.json')?.durable, 8);
      // A record that no longer fits its slot (longer ranges) makes the file anew as well.
      const ranges = Array.from({ length: 40 }, (_, i) => ({ start: i * 2 ** 20, end: (i + 1) * 2 ** 20, durable: (i + 1) * 2 ** 20 }));
      await records.write({ ...base, durable: 40 * 2 ** 20, ranges });
      assert.deepEqual(readRecord(file, 'x.json')?.ranges, ranges);
    } finally {
      await records.close();
    }
  });
});

describe('local sweep: records read synchronously, the event loop still served', () => {
  it('gives other work turns while it looks at thousands of partials', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'stx-sweep-'));
    try {
      const backend = new LocalBackend(path.join(dir, 'out'));
      await backend.init();
      const partials = path.join(dir, 'out', '.stx', 'partials');
      await mkdir(partials, { recursive: true });
      const count = 2000;
      await Promise.all(
        Array.from({ length: count }, (_, i) => writeFile(path.join(partials, `${i.toString(16).padStart(64, '0')}.json`), encodeRecord({ ...base, name: `f${i}`, updated: 1 }))),
      );
      // Every partial is old, and claim() refuses each: the sweep reads all records and deletes
      // nothing, so no I/O of its own gives the event loop a turn. Each claim notes how many turns
      // the event loop had had by then: one value for all of them if the sweep never yields.
      let turns = 0;
      let sweeping = true;
      const turn = (): void => {
        turns++;
        if (sweeping) setImmediate(turn);
      };
      setImmediate(turn);
      const seen = new Set<number>();
      let claims = 0;
      const removed = await backend.sweep(60_000, Date.now(), () => {
        claims++;
        seen.add(turns);
        return false;
      });
      sweeping = false;
      assert.equal(removed, 0, 'claim() refused every partial');
      assert.equal(claims, count, 'every old partial was offered to claim()');
      assert.ok(seen.size >= count / 256, `the event loop had ${seen.size - 1} turns between the ${count} claims`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
