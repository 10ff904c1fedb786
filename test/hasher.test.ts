// The receiver's hashing thread (src/transfer/hasher.ts) against node:crypto on the same bytes:
// the digest of a resumed prefix plus updates in stream order, buffers held until hashed and
// released exactly once, backpressure past MAX_HASH_BACKLOG_BYTES, typed errors when the prefix
// is short or the thread is stopped, and the real files and thread throughout.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StxError, type ErrorCode } from '../src/proto/errors.js';
import { BodyPool } from '../src/transfer/body-pool.js';
import { INLINE_HASH_MAX_BYTES, MAX_HASH_BACKLOG_BYTES } from '../src/transfer/config.js';
import { Hasher, type RunningHash } from '../src/transfer/hasher.js';
import { ParkedHashes } from '../src/transfer/file-hash.js';

const MiB = 1024 * 1024;
/** A child that has not exited by then was kept alive. */
const CHILD_TIMEOUT_MS = 15_000;

function hasCode(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof StxError && err.code === code;
}

/** A hash of the first `length` bytes of `fh`, under a key nothing else parks. */
async function start(hasher: Hasher, fh: FileHandle, length: number): Promise<RunningHash> {
  return (await hasher.open(fh, length, 'part', { key: `unparked-${Math.random()}` })).hash;
}

/** Runs `fn` with a fresh Hasher, whose thread is stopped afterwards whatever happens. */
async function withHasher(fn: (hasher: Hasher) => Promise<void>): Promise<void> {
  const hasher = new Hasher();
  try {
    await fn(hasher);
  } finally {
    await hasher.stop();
  }
}

describe('Hasher (SHA-256 on a worker thread)', () => {
  let dir: string;
  let fh: FileHandle;
  const prefix = randomBytes(3 * MiB + 123);

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'stx-hasher-'));
    await writeFile(path.join(dir, 'part'), prefix);
    fh = await open(path.join(dir, 'part'), 'r');
  });
  after(async () => {
    await fh.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('digests the resumed prefix and then each update in order, shared-memory and ordinary buffers alike', () =>
    withHasher(async (hasher) => {
      const pool = new BodyPool();
      const tail = randomBytes(5 * MiB + 7);
      const hash = await start(hasher, fh, prefix.length);
      const released: number[] = [];
      let taken = 0;
      for (let at = 0, i = 0; at < tail.length; i++) {
        // Alternate pooled (shared memory, hashed in place) and ordinary buffers of odd sizes.
        const n = Math.min(i % 2 === 0 ? MiB - 5 : 4097, tail.length - at);
        const body = i % 2 === 0 ? pool.take(MiB + 4) : Buffer.alloc(n + 9);
        if (i === 0) assert.ok(body.buffer instanceof SharedArrayBuffer, 'pooled bodies are in shared memory');
        const data = body.subarray(9, 9 + n);
        tail.copy(data, 0, at, at + n);
        taken++;
        hash.update(data, () => released.push(i));
        at += n;
      }
      const digest = await hash.digest();
      const expected = createHash('sha256').update(prefix).update(tail).digest();
      assert.deepEqual(digest, expected);
      assert.deepEqual([...released].sort((a, b) => a - b), [...Array(taken).keys()], 'every buffer released once');
      // Ordinary buffers are copied and released at once; shared ones once hashed, in order.
      const shared = released.filter((i) => i % 2 === 0);
      assert.deepEqual(shared, [...shared].sort((a, b) => a - b));
      assert.ok(released.indexOf(0) > released.indexOf(1), 'the first shared buffer is released after the first copy');
    }));

  it('reports a backlog past MAX_HASH_BACKLOG_BYTES and drains it', () =>
    withHasher(async (hasher) => {
      const hash = await start(hasher, fh, 0);
      const chunk = randomBytes(MiB);
      const chunks = Math.ceil(MAX_HASH_BACKLOG_BYTES / MiB) + 2;
      const expected = createHash('sha256');
      for (let i = 0; i < chunks; i++) {
        hash.update(chunk);
        expected.update(chunk);
      }
      assert.equal(hash.backlogged, true, 'nothing hashed yet: the thread answers only after this turn');
      await hash.drained();
      assert.equal(hash.backlogged, false);
      assert.deepEqual(await hash.digest(), expected.digest());
    }));

  it('a prefix longer than the file is IO_ERROR', () =>
    withHasher(async (hasher) => {
      await assert.rejects(start(hasher, fh, prefix.length + 1), hasCode('IO_ERROR'));
      // The thread still serves the next upload.
      const hash = await start(hasher, fh, 10);
      assert.deepEqual(await hash.digest(), createHash('sha256').update(prefix.subarray(0, 10)).digest());
    }));

  it('a stopped thread fails the digest with INTERNAL and releases every buffer; the next open starts a new one', () =>
    withHasher(async (hasher) => {
      const hash = await start(hasher, fh, 0);
      let released = 0;
      const pool = new BodyPool();
      for (let i = 0; i < 4; i++) hash.update(pool.take(MiB), () => released++);
      await hasher.stop();
      assert.equal(released, 4);
      await assert.rejects(hash.digest(), hasCode('INTERNAL'));
      const again = await start(hasher, fh, 5);
      assert.deepEqual(await again.digest(), createHash('sha256').update(prefix.subarray(0, 5)).digest());
    }));

  it('a parked hash is taken back on the next open: nothing re-read, same digest (§9.7)', () =>
    withHasher(async (hasher) => {
      const first = await hasher.open(fh, 0, 'part', { key: 'u1' });
      assert.equal(first.reread, 0);
      first.hash.update(prefix.subarray(0, MiB));
      first.hash.park('u1', MiB);
      const resumed = await hasher.open(fh, MiB, 'part', { key: 'u1' });
      assert.equal(resumed.reread, 0, 'the parked state covered the whole durable prefix');
      resumed.hash.update(prefix.subarray(MiB));
      assert.deepEqual(await resumed.hash.digest(), createHash('sha256').update(prefix).digest());
      // Taken once: a second open of the same key reads the file again.
      const again = await hasher.open(fh, MiB, 'part', { key: 'u1' });
      assert.equal(again.reread, MiB);
      again.hash.close();
    }));

  it('a parked hash short of the durable prefix is extended by reading only the rest; a longer one or a wrong length is not used', () =>
    withHasher(async (hasher) => {
      const a = await hasher.open(fh, 0, 'part', { key: 'u2' });
      a.hash.update(prefix.subarray(0, 1000));
      a.hash.park('u2', 1000);
      const extended = await hasher.open(fh, 5000, 'part', { key: 'u2' });
      assert.equal(extended.reread, 4000);
      assert.deepEqual(await extended.hash.digest(), createHash('sha256').update(prefix.subarray(0, 5000)).digest());
      const b = await hasher.open(fh, 0, 'part', { key: 'u3' });
      b.hash.update(prefix.subarray(0, 2000));
      b.hash.park('u3', 2000);
      const shorter = await hasher.open(fh, 1500, 'part', { key: 'u3' });
      assert.equal(shorter.reread, 1500, 'a parked state past the durable prefix is dropped');
      shorter.hash.close();
      const c = await hasher.open(fh, 0, 'part', { key: 'u4' });
      c.hash.update(prefix.subarray(0, 2000));
      c.hash.park('u4', 1999); // not what it holds: never parked
      const fresh = await hasher.open(fh, 1999, 'part', { key: 'u4' });
      assert.equal(fresh.reread, 1999);
      fresh.hash.close();
      // drop() forgets a parked state.
      const d = await hasher.open(fh, 0, 'part', { key: 'u5' });
      d.hash.update(prefix.subarray(0, 10));
      d.hash.park('u5', 10);
      hasher.drop('u5');
      const dropped = await hasher.open(fh, 10, 'part', { key: 'u5' });
      assert.equal(dropped.reread, 10);
      dropped.hash.close();
    }));

  it('an upload of at most INLINE_HASH_MAX_BYTES is hashed on the event loop, parked and resumed there; a thread-parked prefix is used or dropped', () =>
    withHasher(async (hasher) => {
      const pool = new BodyPool();
      const size = INLINE_HASH_MAX_BYTES;
      // Hashed in place: a pooled (shared-memory) buffer is released before update returns.
      const small = await hasher.open(fh, 0, 'part', { key: 's1', size });
      const body = pool.take(MiB).subarray(0, 4096);
      assert.ok(body.buffer instanceof SharedArrayBuffer);
      prefix.copy(body, 0, 0, 4096);
      let released = false;
      small.hash.update(body, () => (released = true));
      assert.equal(released, true, 'hashed on the event loop');
      small.hash.park('s1', 4096);
      assert.equal(hasher.parkedLength('s1'), 4096);
      const resumed = await hasher.open(fh, 6000, 'part', { key: 's1', size });
      assert.equal(resumed.reread, 6000 - 4096, 'the parked state is taken back');
      assert.equal(hasher.parkedLength('s1'), 0);
      resumed.hash.update(prefix.subarray(6000, size));
      assert.deepEqual(await resumed.hash.digest(), createHash('sha256').update(prefix.subarray(0, size)).digest());
      // One size more goes to the thread: the pooled buffer waits for its answer.
      const larger = await hasher.open(fh, 0, 'part', { key: 's2', size: size + 1 });
      let answered = false;
      larger.hash.update(pool.take(MiB).subarray(0, 4096), () => (answered = true));
      assert.equal(answered, false, 'hashed on the thread');
      larger.hash.close();
      // A prefix the thread hashed ahead (a ranged upload's) is extended there, not read again...
      const ahead = await hasher.open(fh, 0, 'part', { key: 's3' });
      ahead.hash.update(prefix.subarray(0, 1000));
      ahead.hash.park('s3', 1000);
      const extended = await hasher.open(fh, 3000, 'part', { key: 's3', size });
      assert.equal(extended.reread, 2000);
      assert.deepEqual(await extended.hash.digest(), createHash('sha256').update(prefix.subarray(0, 3000)).digest());
      // ...and dropped there when the upload starts over.
      const again = await hasher.open(fh, 0, 'part', { key: 's4' });
      again.hash.update(prefix.subarray(0, 1000));
      again.hash.park('s4', 1000);
      assert.equal(hasher.parkedLength('s4'), 1000);
      const fresh = await hasher.open(fh, 0, 'part', { key: 's4', size });
      assert.equal(hasher.parkedLength('s4'), 0, 'the thread forgot it');
      fresh.hash.update(prefix.subarray(0, 10));
      assert.deepEqual(await fresh.hash.digest(), createHash('sha256').update(prefix.subarray(0, 10)).digest());
    }));

  it('parked hashes are bounded: past the maximum the least recently parked goes first', () => {
    const parked = new ParkedHashes(2);
    const state = (n: number): { hash: ReturnType<typeof createHash>; length: number } => ({ hash: createHash('sha256').update(Buffer.alloc(n)), length: n });
    parked.park('a', state(1));
    parked.park('b', state(2));
    parked.park('a', state(3)); // parked again: now the most recent
    parked.park('c', state(4));
    assert.equal(parked.size, 2);
    assert.equal(parked.take('b', 100).length, 0, 'b was the least recently parked');
    assert.equal(parked.take('a', 100).length, 3);
    assert.equal(parked.take('c', 3).length, 0, 'longer than the durable prefix: not used');
    assert.equal(parked.size, 0, 'take() always unparks');
  });

  it('a re-read reports progress, and a cancelled one keeps what it read for the next open', () =>
    withHasher(async (hasher) => {
      const big = path.join(dir, 'big');
      const bytes = Buffer.alloc(40 * MiB, 7);
      await writeFile(big, bytes);
      const bigFh = await open(big, 'r');
      try {
        const seen: number[] = [];
        const whole = await hasher.open(bigFh, bytes.length, 'big', { key: 'b1', onProgress: (done) => seen.push(done) });
        assert.equal(whole.reread, bytes.length);
        assert.ok(seen.length >= 2, `progress ${seen.join(',')}`);
        assert.deepEqual(seen, [...seen].sort((x, y) => x - y));
        assert.equal(seen.at(-1), bytes.length);
        whole.hash.close();
        const abort = new AbortController();
        const cancelled = hasher.open(bigFh, bytes.length, 'big', { key: 'b2', signal: abort.signal });
        abort.abort();
        await assert.rejects(cancelled, hasCode('INTERNAL'));
        const next = await hasher.open(bigFh, bytes.length, 'big', { key: 'b2' });
        assert.ok(next.reread < bytes.length, `re-read ${next.reread} of ${bytes.length}`);
        assert.deepEqual(await next.hash.digest(), createHash('sha256').update(bytes).digest());
      } finally {
        await bigFh.close();
      }
    }));

  it('a thread started ahead of the first upload (prepare) does not keep an idle process alive', () => {
    // Store.init() prepares the thread; a process that then has nothing to do must still exit.
    const module = new URL('../src/transfer/hasher.js', import.meta.url).href;
    const script = `
      import { open } from 'node:fs/promises';
      import { devNull } from 'node:os';
      import { Hasher } from ${JSON.stringify(module)};
      const hasher = new Hasher();
      await hasher.prepare();
      const fh = await open(devNull, 'r');
      const { hash } = await hasher.open(fh, 0, 'part', { key: 'k' });
      hash.update(Buffer.from('abc'));
      process.stdout.write((await hash.digest()).toString('hex'));
      await fh.close();
    `;
    const file = path.join(dir, 'prepare.mjs');
    writeFileSync(file, script);
    const child = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: CHILD_TIMEOUT_MS });
    assert.equal(child.error, undefined, 'the process exited by itself');
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout, createHash('sha256').update('abc').digest('hex'));
  });
});
