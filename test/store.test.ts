// The upload store (§9.1–§9.5) on real files: atomic verified publication, resume after
// release and after a crash, integrity failure, locks, append-only, symlinks, sweep.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { StxError, type ErrorCode } from '../src/proto/errors.js';
import { Store, type OpenRequest, type OpenUpload as Upload } from '../src/recv/store.js';
import { processUmask } from '../src/recv/process-limits.js';
import { decodeRecordFile, encodeRecord, parseRecord, RECORD_VERSION } from '../src/storage/local/record.js';
import { uploadId } from '../src/recv/store/upload-id.js';
import { toStxError } from '../src/transfer/io-error.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 64 * KiB;

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}
function hasCode(code: ErrorCode): (err: unknown) => boolean {
  return (err: unknown) => err instanceof StxError && err.code === code;
}

/** Feeds data[from, to) in CHUNK pieces, honouring the pause signal. */
async function send(upload: Upload, data: Buffer, from: number, to = data.length): Promise<void> {
  for (let at = from; at < to; at += CHUNK) {
    if (upload.write(at, data.subarray(at, Math.min(at + CHUNK, to)))) await upload.drained();
  }
}

let root: string;
let out: string;
let outside: string;
let partials: string;

function newStore(): Store {
  return new Store(out, { maxQueuedBytesPerConnection: 4 * MiB, maxChunkBytes: MiB, freeSpaceMarginBytes: 0 });
}
async function freshStore(): Promise<Store> {
  const store = newStore();
  await store.init();
  return store;
}
function request(name: string, data: Buffer, extra: Partial<OpenRequest> = {}): OpenRequest {
  return { principal: 'anonymous', name, size: data.length, mtime: 1_700_000_000_123, mode: 0o640, ...extra };
}
const REPLACE = { appendOnly: false } as const;
const APPEND_ONLY = { appendOnly: true } as const;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'stx-store-')));
  out = path.join(root, 'out');
  outside = path.join(root, 'outside');
  partials = path.join(out, '.stx', 'partials');
  await mkdir(outside);
});
afterEach(async () => {
  assert.deepEqual(await readdir(outside), [], 'nothing is ever written outside the output directory');
  await rm(root, { recursive: true, force: true });
});

describe('Store: new upload', () => {
  it('publishes atomically only after the SHA-256 matches', async () => {
    const store = await freshStore();
    assert.equal((await stat(path.join(out, '.stx'))).mode & 0o777, 0o700);
    const data = randomBytes(3 * MiB + 123);
    const upload = await store.open(request('dir/sub/file.bin', data), REPLACE);
    assert.equal(upload.offset, 0);
    await send(upload, data, 0, 2 * MiB);
    const durable = await upload.checkpoint();
    assert.equal(durable, 2 * MiB);
    assert.equal(upload.durable, 2 * MiB);
    // In flight: the bytes sit in .stx/partials, never under the final name, and the name's
    // directories are made only at publish (§9.3).
    assert.deepEqual((await readdir(out)).filter((e) => e !== '.stx'), []);
    const id = uploadId(request('dir/sub/file.bin', data));
    assert.equal((await stat(path.join(partials, `${id}.part`))).size, 2 * MiB);
    const record = decodeRecordFile(await readFile(path.join(partials, `${id}.json`)));
    assert.equal(record?.durable, 2 * MiB);
    await send(upload, data, 2 * MiB);
    const result = await upload.finish(sha256(data));
    assert.equal(result.size, data.length);
    assert.equal(result.name, 'dir/sub/file.bin');
    assert.deepEqual(result.sha256, sha256(data));
    const final = path.join(out, 'dir', 'sub', 'file.bin');
    assert.deepEqual(await readFile(final), data);
    const st = await stat(final);
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(Math.round(st.mtimeMs), 1_700_000_000_123);
    assert.deepEqual(await readdir(partials), [], 'no partial and no record left');
    assert.equal(store.openUploads, 0);
  });

  it('strips setuid, setgid and sticky bits', async () => {
    const store = await freshStore();
    const data = Buffer.from('#!/bin/sh\n');
    const upload = await store.open(request('tool', data, { mode: 0o7755 }), REPLACE);
    await send(upload, data, 0);
    await upload.finish(sha256(data));
    assert.equal((await stat(path.join(out, 'tool'))).mode & 0o7777, 0o755);
  });

  it("applies the daemon's umask to the client's mode: 0777 is not world-writable", async () => {
    for (const [umask, mode, expected] of [
      [0o022, 0o777, 0o755],
      [0o077, 0o666, 0o600],
      [0o002, 0o775, 0o775],
    ] as const) {
      const store = new Store(out, { maxQueuedBytesPerConnection: 4 * MiB, maxChunkBytes: MiB, freeSpaceMarginBytes: 0, umask });
      await store.init();
      const data = Buffer.from(`umask ${umask.toString(8)}\n`);
      const name = `umask-${umask.toString(8)}.txt`;
      const upload = await store.open(request(name, data, { mode }), REPLACE);
      await send(upload, data, 0);
      await upload.finish(sha256(data));
      assert.equal((await stat(path.join(out, name))).mode & 0o7777, expected, `umask 0${umask.toString(8)}, mode 0${mode.toString(8)}`);
    }
  });

  it('out of file descriptors (EMFILE, ENFILE) is TOO_MANY_CONNECTIONS, which the client retries, never IO_ERROR', () => {
    for (const code of ['EMFILE', 'ENFILE']) {
      const err = toStxError(Object.assign(new Error(`${code}: too many open files`), { code }), 'opening', 'x.bin');
      assert.equal(err.code, 'TOO_MANY_CONNECTIONS', code);
      assert.equal(err.transient, true, code);
    }
    assert.equal(toStxError(Object.assign(new Error('EIO'), { code: 'EIO' }), 'writing', 'x.bin').code, 'IO_ERROR');
  });

  it("takes the process's umask when none is given", () => {
    const status = readFileSync('/proc/self/status', 'utf8');
    const line = /^Umask:\s*([0-7]+)$/m.exec(status);
    assert.ok(line?.[1] !== undefined);
    assert.equal(processUmask(), parseInt(line[1], 8));
  });

  it('handles an empty file', async () => {
    const store = await freshStore();
    const upload = await store.open(request('empty', Buffer.alloc(0)), REPLACE);
    const result = await upload.finish(sha256(Buffer.alloc(0)));
    assert.equal(result.size, 0);
    assert.equal((await stat(path.join(out, 'empty'))).size, 0);
  });

  it('refuses misplaced DATA and an early END with BAD_OFFSET', async () => {
    const store = await freshStore();
    const data = randomBytes(1000);
    const upload = await store.open(request('f', data), REPLACE);
    assert.throws(() => upload.write(10, data.subarray(10, 20)), hasCode('BAD_OFFSET'));
    upload.write(0, data.subarray(0, 500));
    assert.throws(() => upload.write(400, data.subarray(400, 600)), hasCode('BAD_OFFSET'));
    assert.throws(() => upload.write(500, Buffer.alloc(501)), hasCode('BAD_OFFSET'));
    await assert.rejects(upload.finish(sha256(data)), hasCode('BAD_OFFSET'));
    upload.write(500, data.subarray(500));
    await upload.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'f')), data);
  });
});

describe('Store: resume', () => {
  it('resumes after release() from the durable offset', async () => {
    const store = await freshStore();
    const data = randomBytes(2 * MiB + 7);
    const first = await store.open(request('r.bin', data), REPLACE);
    await send(first, data, 0, MiB + 5 * CHUNK);
    const durable = await first.release();
    assert.equal(durable, MiB + 5 * CHUNK, 'release makes queued bytes durable');
    assert.equal(store.openUploads, 0);
    await assert.rejects(stat(path.join(out, 'r.bin')));
    const second = await store.open(request('r.bin', data), REPLACE);
    assert.equal(second.offset, durable);
    await send(second, data, second.offset);
    const result = await second.finish(sha256(data));
    assert.deepEqual(result.sha256, sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'r.bin')), data);
  });

  it('a different identity (size, mtime or principal) starts from zero', async () => {
    const store = await freshStore();
    const data = randomBytes(100 * KiB);
    const first = await store.open(request('same', data), REPLACE);
    await send(first, data, 0, 50 * KiB);
    assert.equal(await first.release(), 50 * KiB);
    const someoneElse = await store.open(request('same', data, { principal: 'SHA256:someone-else' }), REPLACE);
    assert.equal(someoneElse.offset, 0);
    await someoneElse.release();
    const mine = await store.open(request('same', data), REPLACE);
    assert.equal(mine.offset, 50 * KiB, "another client's upload of the same name leaves this partial alone");
    await mine.release();
    const other = await store.open(request('same', data, { mtime: 5 }), REPLACE);
    assert.equal(other.offset, 0);
    await other.release();
  });

  it('a new version of the same file (touched: other mtime or size) removes the old partial at once', async () => {
    const store = await freshStore();
    const data = randomBytes(100 * KiB);
    const first = await store.open(request('touched', data), REPLACE);
    await send(first, data, 0, 50 * KiB);
    await first.release();
    const before = await readdir(partials);
    const touched = await store.open(request('touched', data, { mtime: 5 }), REPLACE);
    await send(touched, data, 0, 10 * KiB);
    await touched.release();
    const after = await readdir(partials);
    assert.equal(after.length, 2, `one .part and one .json: ${after.join(' ')}`);
    assert.equal(after.filter((f) => before.includes(f)).length, 0, 'the old version is gone');
    const old = await store.open(request('touched', data), REPLACE);
    assert.equal(old.offset, 0);
    await old.release();
  });

  it('at start, of two partials of one client and name only the newest is kept', async () => {
    const data = randomBytes(20 * KiB);
    {
      const store = await freshStore();
      const a = await store.open(request('twice', data), REPLACE);
      await send(a, data, 0, 8 * KiB);
      await a.release();
    }
    // An older daemon kept both versions; make a second record by hand, older than the first.
    const [json] = (await readdir(partials)).filter((f) => f.endsWith('.json'));
    assert.ok(json !== undefined);
    const record: unknown = decodeRecordFile(await readFile(path.join(partials, json)));
    assert.ok(typeof record === 'object' && record !== null);
    const older = { ...record, mtime: 7, updated: 1 };
    const olderId = uploadId({ principal: String(Reflect.get(record, 'principal')), name: 'twice', size: data.length, mtime: 7 });
    await writeFile(path.join(partials, `${olderId}.json`), JSON.stringify(older));
    await writeFile(path.join(partials, `${olderId}.part`), data.subarray(0, 8 * KiB));
    const store = await freshStore();
    const left = await readdir(partials);
    assert.deepEqual(left.filter((f) => f.startsWith(olderId)), [], left.join(' '));
    assert.equal(left.length, 2);
    const resumed = await store.open(request('twice', data), REPLACE);
    assert.equal(resumed.offset, 8 * KiB);
    await resumed.release();
  });

  it('resumes after a crash: bytes past the record are cut, the final hash is right', async () => {
    const data = randomBytes(MiB + 333);
    const req = request('crash/c.bin', data);
    const id = uploadId(req);
    {
      const store = await freshStore();
      const upload = await store.open(req, REPLACE);
      await send(upload, data, 0, 300 * KiB);
      assert.equal(await upload.checkpoint(), 300 * KiB);
      await upload.release();
    }
    // The crash: garbage written past the durable offset, a half-written record left behind.
    await appendFile(path.join(partials, `${id}.part`), randomBytes(200 * KiB));
    await writeFile(path.join(partials, `${id}.json.tmp`), '{"version":1,"dur');
    const store = await freshStore();
    assert.deepEqual((await readdir(partials)).sort(), [`${id}.json`, `${id}.part`], 'init removed the stray .tmp');
    const upload = await store.open(req, REPLACE);
    assert.equal(upload.offset, 300 * KiB);
    assert.equal((await stat(path.join(partials, `${id}.part`))).size, 300 * KiB, 'untrusted tail truncated');
    await send(upload, data, upload.offset);
    const result = await upload.finish(sha256(data));
    assert.deepEqual(result.sha256, sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'crash', 'c.bin')), data);
  });

  it('a new upload writes no record at OPEN; killed before its first checkpoint, it resumes from 0', async () => {
    const data = randomBytes(300 * KiB + 7);
    const req = request('fresh/f.bin', data);
    const id = uploadId(req);
    {
      const store = await freshStore();
      const upload = await store.open(req, REPLACE);
      assert.equal(upload.offset, 0);
      // Nothing durable yet, so nothing to record: no record file, no fsyncs for it (issue 15).
      assert.deepEqual(await readdir(partials), [`${id}.part`]);
      await send(upload, data, 0, 200 * KiB);
      // The crash: bytes written but never checkpointed, no record; the store is dropped as is.
    }
    const store = await freshStore();
    const upload = await store.open(req, REPLACE);
    assert.equal(upload.offset, 0, 'no record: nothing is trusted');
    assert.equal((await stat(path.join(partials, `${id}.part`))).size, 0, 'the unrecorded bytes are cut');
    await send(upload, data, 0, 100 * KiB);
    assert.equal(await upload.checkpoint(), 100 * KiB);
    assert.equal(decodeRecordFile(await readFile(path.join(partials, `${id}.json`)))?.durable, 100 * KiB, 'the first checkpoint records');
    await send(upload, data, 100 * KiB);
    await upload.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'fresh', 'f.bin')), data);
    assert.deepEqual(await readdir(partials), []);
  });

  it('restarts from zero when the record is damaged or the .part is shorter than it says', async () => {
    const data = randomBytes(200 * KiB);
    const req = request('d.bin', data);
    const id = uploadId(req);
    const store = await freshStore();
    const upload = await store.open(req, REPLACE);
    await send(upload, data, 0, 100 * KiB);
    await upload.release();
    await writeFile(path.join(partials, `${id}.json`), 'not json');
    const a = await store.open(req, REPLACE);
    assert.equal(a.offset, 0);
    await send(a, data, 0, 100 * KiB);
    assert.equal(await a.release(), 100 * KiB);
    await writeFile(path.join(partials, `${id}.part`), Buffer.alloc(10));
    const b = await store.open(req, REPLACE);
    assert.equal(b.offset, 0);
    await send(b, data, 0);
    await b.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'd.bin')), data);
  });
});

describe('Store: verification and policy', () => {
  it('INTEGRITY_FAILED deletes the partial and publishes nothing', async () => {
    const store = await freshStore();
    const data = randomBytes(500 * KiB);
    const upload = await store.open(request('bad.bin', data), REPLACE);
    await send(upload, data, 0);
    await upload.checkpoint();
    await assert.rejects(upload.finish(sha256(Buffer.from('something else'))), hasCode('INTEGRITY_FAILED'));
    await assert.rejects(stat(path.join(out, 'bad.bin')));
    assert.deepEqual(await readdir(partials), []);
    assert.equal(store.openUploads, 0);
    const again = await store.open(request('bad.bin', data), REPLACE);
    assert.equal(again.offset, 0, 'nothing of the failed upload is resumed');
    await again.release();
  });

  it('replaces an existing file only after verification', async () => {
    const store = await freshStore();
    const old = Buffer.from('old content');
    await writeFile(path.join(out, 'r.txt'), old);
    const data = randomBytes(300 * KiB);
    const bad = await store.open(request('r.txt', data), REPLACE);
    await send(bad, data, 0);
    assert.deepEqual(await readFile(path.join(out, 'r.txt')), old, 'untouched while uploading');
    await assert.rejects(bad.finish(randomBytes(32)), hasCode('INTEGRITY_FAILED'));
    assert.deepEqual(await readFile(path.join(out, 'r.txt')), old, 'untouched after a failed upload');
    const good = await store.open(request('r.txt', data), REPLACE);
    await send(good, data, 0);
    await good.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'r.txt')), data);
  });

  it('append-only refuses an existing name with EXISTS and leaves the file alone', async () => {
    const store = await freshStore();
    const old = Buffer.from('keep me');
    await writeFile(path.join(out, 'keep.txt'), old);
    await assert.rejects(store.open(request('keep.txt', Buffer.alloc(5)), APPEND_ONLY), hasCode('EXISTS'));
    assert.deepEqual(await readFile(path.join(out, 'keep.txt')), old);
    assert.equal(store.openUploads, 0);
    assert.deepEqual(await readdir(partials), []);
  });

  it('append-only refuses at finish when the name appeared meanwhile, without replacing it', async () => {
    const store = await freshStore();
    const data = randomBytes(100 * KiB);
    const upload = await store.open(request('late.txt', data), APPEND_ONLY);
    await send(upload, data, 0);
    const squatter = Buffer.from('first come');
    await writeFile(path.join(out, 'late.txt'), squatter);
    await assert.rejects(upload.finish(sha256(data)), hasCode('EXISTS'));
    assert.deepEqual(await readFile(path.join(out, 'late.txt')), squatter);
    assert.deepEqual(await readdir(partials), []);
  });

  it('append-only: a re-send of the same content is a no-op DONE; same size, other content is EXISTS (§9.5)', async () => {
    const store = await freshStore();
    const data = randomBytes(40 * MiB + 5);
    await writeFile(path.join(out, 'backup.tar'), data);
    const before = await stat(path.join(out, 'backup.tar'));
    const same = await store.open(request('backup.tar', data, { mtime: 42, mode: 0o600 }), APPEND_ONLY);
    assert.equal(same.offset, data.length, 'OPEN_OK says it is all there');
    assert.throws(() => same.write(0, data.subarray(0, 1)), hasCode('BAD_OFFSET'));
    const progress: number[] = [];
    const result = await same.finish(sha256(data), (done, total) => {
      assert.equal(total, data.length);
      progress.push(done);
    });
    assert.equal(result.unchanged, true);
    assert.deepEqual(result.sha256, sha256(data));
    assert.ok(progress.length >= 2 && progress.at(-1) === data.length, `progress ${progress.join(',')}`);
    const after = await stat(path.join(out, 'backup.tar'));
    assert.equal(after.mtimeMs, before.mtimeMs, 'mtime untouched');
    assert.equal(after.mode, before.mode, 'mode untouched');
    assert.equal(after.ino, before.ino, 'the same file, not a copy');
    assert.equal(store.openUploads, 0);
    const other = Buffer.from(data);
    other.writeUInt8((other.readUInt8(12345) ^ 1) & 0xff, 12345);
    const check = await store.open(request('backup.tar', other), APPEND_ONLY);
    await assert.rejects(check.finish(sha256(other)), hasCode('EXISTS'));
    assert.deepEqual(await readFile(path.join(out, 'backup.tar')), data);
    assert.equal(store.openUploads, 0);
    assert.deepEqual(await readdir(partials), []);
  });

  it('append-only: a connection that goes away during the read-back stops it and frees the name', async () => {
    const store = await freshStore();
    const data = Buffer.alloc(96 * MiB, 3);
    await writeFile(path.join(out, 'big.tar'), data);
    const check = await store.open(request('big.tar', data), APPEND_ONLY);
    let last = 0;
    let firstProgress!: () => void;
    const started = new Promise<void>((resolve) => (firstProgress = resolve));
    const finishing = check.finish(sha256(data), (done) => {
      last = done;
      firstProgress();
    });
    await started;
    await check.release(); // as Session.close does when the client leaves
    await assert.rejects(finishing);
    const stoppedAt = last;
    assert.ok(stoppedAt < data.length, `the read-back stopped at ${stoppedAt} of ${data.length}`);
    assert.equal(store.openUploads, 0, 'the name is free again');
    const again = await store.open(request('big.tar', data), APPEND_ONLY);
    await again.release();
    assert.equal(last, stoppedAt, 'nothing was read after release() returned');
  });

  it('append-only publishes a new name', async () => {
    const store = await freshStore();
    const data = randomBytes(10 * KiB);
    const upload = await store.open(request('new.txt', data), APPEND_ONLY);
    await send(upload, data, 0);
    await upload.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'new.txt')), data);
    assert.deepEqual(await readdir(partials), []);
  });

  it('TOO_LARGE above maxFileBytes, NO_SPACE above the free space, and no file left behind', async () => {
    const store = await freshStore();
    await assert.rejects(store.open(request('big', Buffer.alloc(11)), { appendOnly: false, maxFileBytes: 10 }), hasCode('TOO_LARGE'));
    const huge = { principal: 'anonymous', name: 'huge', size: 2 ** 53 - 1, mtime: 0, mode: 0o644 };
    await assert.rejects(store.open(huge, REPLACE), hasCode('NO_SPACE'));
    assert.deepEqual(await readdir(partials), []);
    assert.equal(store.openUploads, 0);
  });

  it('BAD_NAME for hostile names and planted symlinks; nothing is created outside', async () => {
    const store = await freshStore();
    const data = Buffer.from('x');
    for (const name of ['../escape', '/etc/passwd', '.stx/partials/x', 'a/../../b', 'a\\b']) {
      await assert.rejects(store.open(request(name, data), REPLACE), hasCode('BAD_NAME'), name);
    }
    await symlink(outside, path.join(out, 'evil'));
    await assert.rejects(store.open(request('evil/x', data), REPLACE), hasCode('BAD_NAME'));
    await symlink(path.join(outside, 'target'), path.join(out, 'final-link'));
    await assert.rejects(store.open(request('final-link', data), REPLACE), hasCode('BAD_NAME'));
    assert.equal(store.openUploads, 0);
  });

  it('re-checks the path at finish: a directory swapped for a symlink is BAD_NAME', async () => {
    const store = await freshStore();
    const data = randomBytes(10 * KiB);
    await mkdir(path.join(out, 'swap'));
    const upload = await store.open(request('swap/x', data), REPLACE);
    await send(upload, data, 0);
    await rename(path.join(out, 'swap'), path.join(root, 'moved-away'));
    await symlink(outside, path.join(out, 'swap'));
    await assert.rejects(upload.finish(sha256(data)), hasCode('BAD_NAME'));
    await rm(path.join(root, 'moved-away'), { recursive: true });
    assert.equal(store.openUploads, 0);
    const id = uploadId(request('swap/x', data));
    assert.deepEqual(await readdir(partials), [`${id}.part`], 'the verified partial is kept');
  });
});

describe('Store: locks and sweep', () => {
  it('BUSY for a concurrent open of the same final name; free again after release', async () => {
    const store = await freshStore();
    const data = randomBytes(1000);
    const first = await store.open(request('busy', data), REPLACE);
    await assert.rejects(store.open(request('busy', data, { principal: 'SHA256:someone-else' }), REPLACE), hasCode('BUSY'));
    await assert.rejects(store.open(request('busy', data), REPLACE), hasCode('BUSY'), 'same identity, no handover handler');
    const racing = await Promise.allSettled([store.open(request('twin', data), REPLACE), store.open(request('twin', data), REPLACE)]);
    assert.deepEqual(racing.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    for (const r of racing) if (r.status === 'fulfilled') await r.value.release();
    await first.release();
    const again = await store.open(request('busy', data), REPLACE);
    await again.release();
  });

  it('hands the lock over to the same identity when the holder agrees', async () => {
    const store = await freshStore();
    const data = randomBytes(200 * KiB);
    let asked = 0;
    // The holder's takeover handler (Store.open's hook, what Session passes): let go.
    const stale: Upload = await store.open(request('h', data), REPLACE, {
      onTakeover: () => {
        asked++;
        void stale.release();
      },
    });
    await send(stale, data, 0, 100 * KiB);
    const fresh = await store.open(request('h', data), REPLACE);
    assert.equal(asked, 1);
    assert.equal(fresh.offset, 100 * KiB);
    await send(fresh, data, fresh.offset);
    await fresh.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'h')), data);
  });

  it('an OPEN of the same identity during release() waits for the lock instead of BUSY', async () => {
    const store = await freshStore();
    const data = randomBytes(300 * KiB);
    const first = await store.open(request('w', data), REPLACE);
    await send(first, data, 0, 200 * KiB);
    const releasing = first.release();
    const second = await store.open(request('w', data), REPLACE);
    assert.equal(await releasing, 200 * KiB);
    assert.equal(second.offset, 200 * KiB);
    await send(second, data, second.offset);
    await second.finish(sha256(data));
    assert.deepEqual(await readFile(path.join(out, 'w')), data);
  });

  it('sweep removes partials older than the TTL, keeps fresh and open ones', async () => {
    const store = await freshStore();
    const data = randomBytes(10 * KiB);
    const old = await store.open(request('old', data), REPLACE);
    await send(old, data, 0, 5 * KiB);
    await old.release();
    const open = await store.open(request('open', data), REPLACE);
    await writeFile(path.join(partials, `${'a'.repeat(64)}.part`), 'orphan without record');
    await writeFile(path.join(partials, 'unrelated'), 'not ours');
    assert.equal(await store.sweep(60_000), 0, 'nothing is old yet');
    assert.equal(await store.sweep(60_000, Date.now() + 120_000), 2, 'the released upload and the orphan');
    const left = (await readdir(partials)).sort();
    const openId = uploadId(request('open', data));
    // The open upload has no record yet: it wrote nothing since its OPEN (no checkpoint).
    assert.deepEqual(left, [`${openId}.part`, 'unrelated']);
    const resumed = await store.open(request('old', data), REPLACE);
    assert.equal(resumed.offset, 0, 'a swept upload starts over');
    await resumed.release();
    await open.release();
  });
});

describe('record', () => {
  it('round-trips offsets above 2^32 and refuses inconsistent records', () => {
    const record = {
      version: RECORD_VERSION,
      principal: 'SHA256:abc',
      name: 'big/file',
      size: 5 * 2 ** 30,
      mtime: -86_400_000,
      mode: 0o644,
      durable: 4.5 * 2 ** 30 + 3,
      created: 1,
      updated: 2,
    };
    assert.deepEqual(parseRecord(JSON.parse(encodeRecord(record))), record);
    assert.equal(parseRecord({ ...record, durable: record.size + 1 }), undefined);
    assert.equal(parseRecord({ ...record, version: 2 }), undefined);
    assert.equal(parseRecord({ ...record, size: 1.5 }), undefined);
    assert.equal(parseRecord({ ...record, mode: 0o10000 }), undefined);
    assert.equal(parseRecord([record]), undefined);
  });

  it('derives distinct ids for distinct identities', () => {
    const base = { principal: 'anonymous', name: 'a', size: 2 ** 40, mtime: 1 };
    const ids = new Set([
      uploadId(base),
      uploadId({ ...base, principal: 'anonymousa', name: '' }),
      uploadId({ ...base, size: 2 ** 40 + 1 }),
      uploadId({ ...base, mtime: -1 }),
      uploadId({ ...base, name: 'b' }),
    ]);
    assert.equal(ids.size, 5);
    assert.match(uploadId(base), /^[0-9a-f]{64}$/);
  });
});

describe('Store: disk reserved by partials, per client (§9.5)', () => {
  const quotaStore = async (maxPartialBytes: number): Promise<Store> => {
    const store = new Store(out, { maxQueuedBytesPerConnection: 4 * MiB, maxChunkBytes: MiB, freeSpaceMarginBytes: 0, maxPartialBytes });
    await store.init();
    return store;
  };
  const sized = (bytes: number): Buffer => Buffer.alloc(bytes, 1);

  it('charges anonymous clients by source address and keys by fingerprint; releases at publish and discard; rebuilt at start', async () => {
    const store = await quotaStore(100 * KiB);
    const a = { source: '192.0.2.1' };
    const first = await store.open(request('q/a1', sized(60 * KiB), a), REPLACE);
    await first.release();
    await assert.rejects(store.open(request('q/a2', sized(50 * KiB), a), REPLACE), hasCode('NO_SPACE'));
    assert.deepEqual(await readdir(partials).then((e) => e.length), 2, 'the refused OPEN created nothing');
    // Another address and a key (from the first address): each has its own share.
    const b = await store.open(request('q/b', sized(90 * KiB), { source: '192.0.2.2' }), REPLACE);
    const k = await store.open(request('q/k', sized(90 * KiB), { principal: 'SHA256:key', source: '192.0.2.1' }), REPLACE);
    assert.equal(store.partialBytesHeld('anonymous', '192.0.2.1'), 60 * KiB);
    assert.equal(store.partialBytesHeld('anonymous', '::ffff:192.0.2.1'), 60 * KiB, 'an IPv4-mapped address is the same client');
    assert.equal(store.partialBytesHeld('SHA256:key', '203.0.113.9'), 90 * KiB);
    // Resuming its own partial is no new reservation.
    const again = await store.open(request('q/a1', sized(60 * KiB), a), REPLACE);
    assert.equal(store.partialBytesHeld('anonymous', '192.0.2.1'), 60 * KiB);
    await send(again, sized(60 * KiB), again.offset);
    await again.finish(sha256(sized(60 * KiB)));
    assert.equal(store.partialBytesHeld('anonymous', '192.0.2.1'), 0, 'published: released');
    await send(b, sized(90 * KiB), 0);
    await assert.rejects(b.finish(Buffer.alloc(32)), hasCode('INTEGRITY_FAILED'));
    assert.equal(store.partialBytesHeld('anonymous', '192.0.2.2'), 0, 'discarded: released');
    await k.release();
    await store.close();
    const restarted = await quotaStore(100 * KiB);
    assert.equal(restarted.partialBytesHeld('SHA256:key'), 90 * KiB, 'rebuilt from the records');
    await assert.rejects(restarted.open(request('q/k2', sized(20 * KiB), { principal: 'SHA256:key' }), REPLACE), hasCode('NO_SPACE'));
    assert.equal(await restarted.sweep(0, Date.now() + 1000), 1);
    assert.equal(restarted.partialBytesHeld('SHA256:key'), 0, 'swept: released');
    await restarted.close();
  });

  it('IPv6 clients of one /64 are one account', async () => {
    const store = await quotaStore(100 * KiB);
    const first = await store.open(request('v6/a', sized(60 * KiB), { source: '2001:db8:1:2::1' }), REPLACE);
    await first.release();
    await assert.rejects(store.open(request('v6/b', sized(60 * KiB), { source: '2001:db8:1:2:ffff::9' }), REPLACE), hasCode('NO_SPACE'));
    const other = await store.open(request('v6/c', sized(60 * KiB), { source: '2001:db8:1:3::1' }), REPLACE);
    await other.release();
    await store.close();
  });

  it('a re-OPEN without progress does not make the partial younger for the sweep (§9.2)', async () => {
    const store = await quotaStore(MiB);
    const data = sized(100 * KiB);
    const first = await store.open(request('ttl/x', data), REPLACE);
    await send(first, data, 0, 50 * KiB);
    await first.release();
    const recordFile = path.join(partials, `${uploadId(request('ttl/x', data))}.json`);
    const updated = (): number => decodeRecordFile(readFileSync(recordFile))?.updated ?? -1;
    const before = updated();
    await new Promise((r) => setTimeout(r, 20));
    const again = await store.open(request('ttl/x', data), REPLACE);
    await again.checkpoint();
    await again.release();
    assert.equal(updated(), before, 'an OPEN and a checkpoint without new bytes leave `updated`');
    const third = await store.open(request('ttl/x', data), REPLACE);
    await send(third, data, third.offset, 60 * KiB);
    await third.checkpoint();
    await third.release();
    assert.ok(updated() > before, 'new durable bytes move it');
    await store.close();
  });
});

describe('Store: read-backs charged to the client that asks (§9.7)', () => {
  it('a resume that re-reads is charged to its client; overdrawn, its next re-read is RATE_LIMITED; a parked hash or another client is not held up', async () => {
    const limits = { maxQueuedBytesPerConnection: 4 * MiB, maxChunkBytes: MiB, freeSpaceMarginBytes: 0 };
    const first = new Store(out, limits);
    await first.init();
    const data = (n: number): Buffer => Buffer.alloc(2 * MiB, n);
    const a = { source: '198.51.100.1' };
    for (const [name, who] of [['rb/1', a], ['rb/2', a], ['rb/3', { source: '198.51.100.2' }]] as const) {
      const u = await first.open(request(name, data(1), who), REPLACE);
      await send(u, data(1), 0);
      await u.release();
    }
    await first.close();
    // A restart: no hash is parked, every resume reads its 2 MiB back.
    const store = new Store(out, { ...limits, readBack: { bytesPerSecond: MiB, burstBytes: MiB, maxWaiting: 1, maxWaitMs: 10 } });
    await store.init();
    const one = await store.open(request('rb/1', data(1), a), REPLACE);
    assert.equal(one.reread, 2 * MiB);
    assert.equal(store.readBackBytesCharged('anonymous', a.source), 2 * MiB);
    await one.release();
    // 1 MiB overdrawn: about a second to pay back at 1 MiB/s, above the 10 ms it may wait.
    await assert.rejects(store.open(request('rb/2', data(1), a), REPLACE), hasCode('RATE_LIMITED'));
    const parked = await store.open(request('rb/1', data(1), a), REPLACE);
    assert.equal(parked.reread, 0, 'its hash was parked: nothing to read, nothing to wait for');
    await parked.release();
    const other = await store.open(request('rb/3', data(1), { source: '198.51.100.2' }), REPLACE);
    assert.equal(other.reread, 2 * MiB, 'another client re-reads at once');
    await other.release();
    await store.close();
  });
});
