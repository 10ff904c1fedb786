// Detached END (spec §9.1 "Detached END", §9.11, revision 1.7) against the real binaries: a tree
// of larger files goes without a round trip per file (the next OPEN reaches the daemon while the
// last file is still being published), a connection cut after END_DETACHED and before its answer
// ends with the same tree and nothing published twice, and a detached upload whose SHA-256 does
// not match fails alone with INTEGRITY_FAILED (exit 7) while the others arrive.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RawClient } from './hostile/raw-client.js';
import { durableOnDisk, logEvents, waitFor } from './support/partials.js';
import { makeFile, readJsonLine, runSend, startDaemon, tempDir, type Daemon } from './support/procs.js';
import { startProxy } from './support/proxy.js';

const MiB = 1024 * 1024;
/** Larger than a PUT (§9.11): each goes by OPEN and ends with END_DETACHED. */
const EACH = MiB + MiB / 2;

let d: Daemon;
let root: string;
let out: string;
let cleanup: () => Promise<void>;
let cases = 0;

before(async () => {
  const tmp = await tempDir();
  root = tmp.dir;
  cleanup = tmp.cleanup;
  out = path.join(root, 'out');
  d = await startDaemon(out, path.join(root, 'k', 'key.pem'));
});
after(async () => {
  await d.stop();
  await cleanup();
});

/** `n` files of EACH bytes named f0.bin… under a fresh source directory, with whole-ms mtimes. */
async function makeFiles(n: number, seed: number): Promise<{ dir: string; src: string }> {
  const dir = path.join(root, `case-${cases++}`);
  const src = path.join(dir, 'src');
  await mkdir(src, { recursive: true });
  for (let i = 0; i < n; i++) {
    const file = path.join(src, `f${i}.bin`);
    await makeFile(file, EACH, seed + i);
    await utimes(file, new Date(1_650_000_000_000 + i), new Date(1_650_000_000_000 + i));
  }
  // One small file too, so that PUTs and detached uploads share the one order of answers.
  await writeFile(path.join(src, 'small.txt'), 'small\n');
  return { dir, src };
}

/** name → SHA-256 of every regular file directly in `dir`. */
async function hashes(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) {
    if (!(await stat(path.join(dir, name))).isFile()) continue;
    found.set(name, createHash('sha256').update(await readFile(path.join(dir, name))).digest('hex'));
  }
  return found;
}

const send = (port: number, dir: string, args: string[]): ReturnType<typeof runSend> =>
  runSend(['127.0.0.1', String(port), ...args, '--json', '--quiet', '--backoff', '50'], { STX_HOME: path.join(dir, 'home') });

/** The daemon's events of `event` since `from` lines, for names under `prefix`. */
function eventsFor(event: string, prefix: string, from: number): Record<string, unknown>[] {
  return logEvents(d.stdout(), event)
    .slice(from)
    .filter((e) => typeof e['name'] === 'string' && e['name'].startsWith(prefix));
}

describe('detached END (§9.1, revision 1.7)', () => {
  it('a tree of larger files: identical, and each next OPEN reached the daemon before the last file was answered', async () => {
    const { dir, src } = await makeFiles(4, 300);
    const before = { open: logEvents(d.stdout(), 'open').length, upload: logEvents(d.stdout(), 'upload').length };
    const r = await send(d.port, dir, [src, '--to', 'overlap']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readJsonLine(r.stdout)['files'], 5);
    assert.deepEqual(await hashes(path.join(out, 'overlap', 'src')), await hashes(src));
    const done = eventsFor('upload', 'overlap/', before.upload);
    assert.equal(done.length, 4);
    assert.ok(done.every((e) => e['detached'] === true && e['outcome'] === 'done'), JSON.stringify(done));
    // The round trip per file is gone: an OPEN that found the previous upload still unanswered.
    const opens = eventsFor('open', 'overlap/', before.open);
    assert.equal(opens.length, 4);
    const overlapped = opens.filter((e) => Number(e['detached_pending']) > 0).length;
    assert.ok(overlapped >= 1, `no OPEN overlapped a detached publish: ${JSON.stringify(opens.map((e) => e['detached_pending']))}`);
    // Files given as paths, the last one detached too: the run waits for its answer before it ends.
    const paths = await send(d.port, dir, [path.join(src, 'f0.bin'), path.join(src, 'f1.bin'), '--to', 'paths']);
    assert.equal(paths.code, 0, paths.stderr);
    assert.equal(readJsonLine(paths.stdout)['files'], 2);
  });

  it('a cut after END_DETACHED, before its answer: the file is OPENed again with its SHA-256, answered DONE at once, published once', async () => {
    const { dir, src } = await makeFiles(3, 400);
    // From the middle of f0 on, the client hears nothing (f0's answer included): it sends f0's
    // END_DETACHED and f1's OPEN, and waits. The cut comes once the daemon published f0.
    const proxy = await startProxy(d.port, { dropDownAt: MiB });
    try {
      const before = { open: logEvents(d.stdout(), 'open').length, upload: logEvents(d.stdout(), 'upload').length };
      const running = send(proxy.port, dir, [src, '--to', 'cut']);
      await waitFor('f0 published', () => eventsFor('upload', 'cut/src/f0.bin', before.upload).length > 0, 30_000);
      proxy.cutAll();
      const r = await running;
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['files'], 4);
      assert.equal(json['reconnects'], 1);
      assert.equal(proxy.cuts, 1);
      assert.deepEqual(await hashes(path.join(out, 'cut', 'src')), await hashes(src));
      const uploads = eventsFor('upload', 'cut/', before.upload);
      const published = uploads.filter((e) => e['outcome'] === 'done');
      // Each file published once: f0 by its detached END, never again.
      assert.deepEqual(published.map((e) => e['name']).sort(), ['cut/src/f0.bin', 'cut/src/f1.bin', 'cut/src/f2.bin']);
      // f0 came again after the cut as an OPEN offering its SHA-256, answered at once (§9.1 "Identical files").
      const identical = uploads.filter((e) => e['outcome'] === 'identical').map((e) => e['name']);
      assert.deepEqual(identical, ['cut/src/f0.bin']);
    } finally {
      await proxy.close();
    }
  });

  it('a detached upload whose SHA-256 does not match fails alone: INTEGRITY_FAILED, exit 7, the others arrive', async () => {
    const { dir, src } = await makeFiles(3, 500);
    // A partial of f1 with other bytes under the same upload identity (name, size, mtime, §9.2),
    // as a run cut in the middle of an older version of it leaves: the next run resumes it, and
    // the SHA-256 of the whole cannot match.
    const c = await RawClient.connect(d.port);
    try {
      assert.ok(await c.handshake());
      await c.send({ type: 'OPEN', name: 'bad/src/f1.bin', size: EACH, mtime: 1_650_000_000_001, mode: 0o644 });
      assert.equal((await c.expectFrame('OPEN_OK')).offset, 0);
      await c.sendData(Buffer.alloc(MiB / 2, 0x5a));
      await c.send({ type: 'PING', seq: 1 });
      await c.expectFrame('PONG');
    } finally {
      c.destroy();
    }
    await waitFor('the partial made durable', () => durableOnDisk(out) > 0, 10_000);
    const before = logEvents(d.stdout(), 'upload').length;
    const r = await send(d.port, dir, [src, '--to', 'bad']);
    assert.equal(r.code, 7, r.stderr);
    const json = readJsonLine(r.stdout);
    assert.equal(json['failed_count'], 1);
    const failed = json['failed'];
    assert.ok(Array.isArray(failed));
    assert.equal(Reflect.get(failed[0] as object, 'code'), 'INTEGRITY_FAILED');
    assert.equal(Reflect.get(failed[0] as object, 'name'), 'bad/src/f1.bin');
    const got = await hashes(path.join(out, 'bad', 'src'));
    const want = await hashes(src);
    want.delete('f1.bin');
    assert.deepEqual(got, want);
    const uploads = eventsFor('upload', 'bad/', before);
    assert.ok(uploads.some((e) => e['name'] === 'bad/src/f1.bin' && e['outcome'] === 'integrity_failed' && e['detached'] === true), JSON.stringify(uploads));
  });
});
