// The local backend's whole-file publish (PUT, §9.11; storage/local/put-thread.ts) where it
// takes short cuts: a batch's files of one directory take their absence from one listing of it
// (not an lstat each), a file whose mode the umask leaves whole is created with it (no fchmod),
// and the temporary file is always made new. Each short cut keeps what the long way gave.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { link, lstat, mkdir, mkdtemp, readdir, readFile, realpath, rename, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import type { DirectoryOptions } from '../src/storage/backend.js';
import { LocalBackend } from '../src/storage/local/backend.js';
import { SMALL_SUM_MAX_BYTES } from '../src/storage/local/config.js';

function idOf(n: number): string {
  return createHash('sha256').update(`put-local ${n}`).digest('hex');
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

async function withBackend(run: (backend: LocalBackend, out: string, root: string) => Promise<void>): Promise<void> {
  const root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'stx-put-local-')));
  try {
    const out = path.join(root, 'out');
    const backend = new LocalBackend(out);
    await backend.init();
    await run(backend, out, root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The record files under out/.stx/sums (sums.ts). */
/** One MKDIR through the backend's run of them; rejects with the failure, as a run of one fails. */
async function makeDirectory(backend: LocalBackend, name: string, options: DirectoryOptions): Promise<void> {
  const { failure } = await backend.makeDirectories([{ name, options }]);
  if (failure !== null) throw failure;
}

async function records(out: string): Promise<number> {
  const dir = path.join(out, '.stx', 'sums');
  let n = 0;
  for (const shard of await readdir(dir)) n += (await readdir(path.join(dir, shard))).length;
  return n;
}

describe('local PUT in batches (§9.11)', () => {
  it('a file of at most 64 KiB gets no SHA-256 record: its hash is computed when asked, after a restart too, and a record a larger version left never vouches for other bytes', async () => {
    await withBackend(async (backend, out) => {
      const mtime = Date.UTC(2024, 5, 6, 7, 8, 9, 100);
      const put = (b: LocalBackend, n: number, name: string, data: Buffer): Promise<void> =>
        b.putFile(idOf(n), name, [data], { mode: 0o644, mtime, how: 'replace', sha256: sha256(data) });
      const large = randomBytes(SMALL_SUM_MAX_BYTES + 1);
      const small = randomBytes(4096);
      await Promise.all([put(backend, 20, 'r/x', large), put(backend, 21, 'r/small', small), put(backend, 22, 'r/edge', randomBytes(SMALL_SUM_MAX_BYTES))]);
      assert.equal(await records(out), 1, 'a record for the larger file only');
      const listed = async (b: LocalBackend, name: string): Promise<string | undefined> =>
        (await b.readDirectory(['r']))?.find((e) => e.name === name)?.sha256?.toString('hex');
      const opened = async (b: LocalBackend, name: string): Promise<string | undefined> => {
        const f = await b.openFile(`r/${name}`);
        await f?.close();
        return f?.sha256?.toString('hex');
      };
      // The daemon restarts: a new backend over the same directory.
      const again = new LocalBackend(out);
      await again.init();
      assert.equal(await listed(again, 'small'), sha256(small).toString('hex'), 'listed after a restart');
      assert.equal(await opened(again, 'small'), sha256(small).toString('hex'));
      assert.equal(await listed(again, 'x'), sha256(large).toString('hex'), 'the larger file from its record');
      // Published small now: the larger version's record stays, naming that version only.
      const x2 = Buffer.from('small now');
      await put(again, 23, 'r/x', x2);
      assert.equal(await listed(again, 'x'), sha256(x2).toString('hex'));
      // Replaced by other means with other bytes of the recorded size and mtime: neither hash.
      const other = Buffer.alloc(large.length, 0x5a);
      await writeFile(path.join(out, 'r', 'x.new'), other);
      await utimes(path.join(out, 'r', 'x.new'), mtime / 1000, mtime / 1000);
      await rename(path.join(out, 'r', 'x.new'), path.join(out, 'r', 'x'));
      assert.equal(await listed(again, 'x'), undefined, 'the old record does not vouch for other bytes');
      assert.equal(await opened(again, 'x'), undefined);
    });
  });

  it('files of one directory in one batch: a planted link and a directory are still refused, the others land with mode, mtime and SHA-256', async () => {
    await withBackend(async (backend, out, root) => {
      const outside = path.join(root, 'outside.txt');
      await writeFile(outside, 'not yours');
      await mkdir(path.join(out, 'd', 'sub'), { recursive: true });
      await symlink(outside, path.join(out, 'd', 'link'));
      const modes = [0o644, 0o600, 0o755, 0o666, 0o400, 0o777];
      const mtime = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
      const files = Array.from({ length: 20 }, (_, i) => ({ name: `d/f${String(i).padStart(2, '0')}`, data: Buffer.alloc(100 + i, i), mode: modes[i % modes.length] ?? 0o644 }));
      const lookupsBefore = backend.pathCounters.lookups;
      // All at once: the first goes alone to a thread, the others wait for it and make one batch.
      const results = await Promise.allSettled([
        ...files.map((f, i) => backend.putFile(idOf(i), f.name, [f.data], { mode: f.mode, mtime, how: 'replace', sha256: sha256(f.data) })),
        backend.putFile(idOf(100), 'd/link', [Buffer.from('through the link')], { mode: 0o644, mtime, how: 'replace', sha256: sha256(Buffer.from('through the link')) }),
        backend.putFile(idOf(101), 'd/sub', [Buffer.from('over a directory')], { mode: 0o644, mtime, how: 'replace' }),
      ]);
      const refused = results.slice(files.length).map((r) => (r.status === 'rejected' && r.reason instanceof StxError ? r.reason.code : r.status));
      assert.deepEqual(refused, ['BAD_NAME', 'BAD_NAME']);
      assert.deepEqual(
        results.slice(0, files.length).map((r) => r.status),
        files.map(() => 'fulfilled'),
      );
      assert.equal(await readFile(outside, 'utf8'), 'not yours');
      assert.ok((await lstat(path.join(out, 'd', 'link'))).isSymbolicLink());
      assert.ok((await lstat(path.join(out, 'd', 'sub'))).isDirectory());
      for (const f of files) {
        const file = path.join(out, f.name);
        assert.deepEqual(await readFile(file), f.data, f.name);
        const st = await stat(file);
        assert.equal(st.mode & 0o777, f.mode, `${f.name} mode`);
        assert.equal(Math.round(st.mtimeMs), mtime, `${f.name} mtime`);
        const published = await backend.openFile(f.name);
        assert.ok(published !== null);
        try {
          assert.deepEqual(published.sha256, sha256(f.data), `${f.name} recorded SHA-256`);
        } finally {
          await published.close();
        }
      }
      // One listing stood for the lstats of the batch's files (22 files: 22 lstats the long way).
      const lookups = backend.pathCounters.lookups - lookupsBefore;
      assert.ok(lookups < 14, `${lookups} path lookups for 22 files`);
    });
  });

  it('two batches at once on the one publishing thread (one written while the other waits for its sync): each answered for its own files, a failure in the second alone', async () => {
    await withBackend(async (backend, out) => {
      await mkdir(path.join(out, 'b', 'sub'), { recursive: true });
      const mtime = Date.UTC(2024, 1, 2, 3, 4, 5, 600);
      const put = (n: number, name: string, data: Buffer): Promise<void> => backend.putFile(idOf(n), name, [data], { mode: 0o644, mtime, how: 'replace', sha256: sha256(data) });
      // The first goes alone; the next 64 make the second batch while the first is worked on (put-pool.ts PUT_MIN_SECOND_BATCH).
      const files = Array.from({ length: 80 }, (_, i) => ({ name: i === 10 ? 'b/sub' : `b/f${i}`, data: Buffer.alloc(50 + i, i) }));
      const results = await Promise.allSettled([put(300, 'a/first', Buffer.from('first')), ...files.map((f, i) => put(301 + i, f.name, f.data))]);
      const codes = results.map((r) => (r.status === 'fulfilled' ? 'ok' : r.reason instanceof StxError ? r.reason.code : 'other'));
      assert.deepEqual(
        codes,
        codes.map((_, i) => (i === 11 ? 'BAD_NAME' : 'ok')),
      );
      assert.deepEqual(await readFile(path.join(out, 'a', 'first')), Buffer.from('first'));
      for (const f of files) if (f.name !== 'b/sub') assert.deepEqual(await readFile(path.join(out, f.name)), f.data, f.name);
      assert.ok((await lstat(path.join(out, 'b', 'sub'))).isDirectory());
    });
  });

  it('a umask changed after the threads started: the mode is still the one asked for, and the SHA-256 recorded for it', async () => {
    await withBackend(async (backend, out) => {
      const first = Buffer.from('starts the threads');
      await backend.putFile(idOf(10), 'first', [first], { mode: 0o644, mtime: Date.now(), how: 'replace', sha256: sha256(first) });
      const before = process.umask(0o077);
      try {
        const data = Buffer.from('created 0600 by the new umask, asked 0644');
        await backend.putFile(idOf(11), 'later', [data], { mode: 0o644, mtime: Date.now(), how: 'replace', sha256: sha256(data) });
        assert.equal((await stat(path.join(out, 'later'))).mode & 0o777, 0o644);
        const published = await backend.openFile('later');
        assert.ok(published !== null);
        try {
          assert.deepEqual(published.sha256, sha256(data));
        } finally {
          await published.close();
        }
      } finally {
        process.umask(before);
      }
    });
  });

  it('a umask changed after the threads started, a batch of several modes: each file gets the mode asked for, whichever mode comes first', async () => {
    await withBackend(async (backend, out) => {
      const first = Buffer.from('starts the threads');
      await backend.putFile(idOf(40), 'first', [first], { mode: 0o644, mtime: Date.now(), how: 'replace', sha256: sha256(first) });
      const before = process.umask(0o077);
      try {
        // The first and the last file are of a mode the new umask leaves whole (0600): the files
        // of the other modes show the change only if looked at by mode.
        const modes = [0o600, 0o644, 0o755, 0o640, 0o600, 0o644, 0o755, 0o600];
        const files = modes.map((mode, i) => {
          const data = Buffer.from(`file ${i}, mode ${mode.toString(8)}`);
          return { id: idOf(41 + i), name: `modes/f${i}`, chunks: [data], options: { mode, mtime: Date.now(), how: 'replace' as const, sha256: sha256(data) } };
        });
        assert.deepEqual(await backend.putFiles(files), modes.map(() => null));
        for (const [i, mode] of modes.entries()) assert.equal((await stat(path.join(out, 'modes', `f${i}`))).mode & 0o777, mode, `f${i}`);
      } finally {
        process.umask(before);
      }
    });
  });

  it('a temporary file a crash left as a link to a published file is replaced, never written through', async () => {
    await withBackend(async (backend, out) => {
      const kept = Buffer.from('published before the crash');
      await backend.putFile(idOf(1), 'kept', [kept], { mode: 0o644, mtime: Date.now(), how: 'no-clobber', sha256: sha256(kept) });
      // A no-clobber publish links the temporary file to its name, then removes it: a crash in
      // between leaves both names on the published inode.
      await link(path.join(out, 'kept'), path.join(out, '.stx', 'partials', `${idOf(2)}.put`));
      const next = Buffer.from('the next file, with the same upload id');
      await backend.putFile(idOf(2), 'next', [next], { mode: 0o600, mtime: Date.now(), how: 'replace', sha256: sha256(next) });
      assert.deepEqual(await readFile(path.join(out, 'kept')), kept);
      assert.deepEqual(await readFile(path.join(out, 'next')), next);
      assert.equal((await stat(path.join(out, 'kept'))).mode & 0o777, 0o644);
    });
  });

  it('MKDIR on the publishing thread, one message each: parents made, mode and mtime set, an existing one kept when append-only, and a link or a file in the way refused with its own code', async () => {
    await withBackend(async (backend, out, root) => {
      const mtime = Date.UTC(2023, 1, 2, 3, 4, 5);
      await makeDirectory(backend, 'a/b/c', { mode: 0o750, mtime, keepExisting: false });
      const made = await stat(path.join(out, 'a', 'b', 'c'));
      assert.ok(made.isDirectory());
      assert.equal(made.mode & 0o777, 0o750);
      assert.equal(made.mtimeMs, mtime);
      // Again while batches of files go on the same thread: both answered.
      const data = Buffer.from('a file beside');
      await Promise.all([
        backend.putFile(idOf(30), 'a/b/c/f', [data], { mode: 0o644, mtime, how: 'replace', sha256: sha256(data) }),
        makeDirectory(backend, 'a/b', { mode: 0o700, mtime: mtime + 1000, keepExisting: false }),
      ]);
      assert.deepEqual(await readFile(path.join(out, 'a', 'b', 'c', 'f')), data);
      assert.equal((await stat(path.join(out, 'a', 'b'))).mode & 0o777, 0o700);
      // Append-only: an existing directory is left as it is.
      await makeDirectory(backend, 'a/b', { mode: 0o755, mtime, keepExisting: true });
      assert.equal((await stat(path.join(out, 'a', 'b'))).mode & 0o777, 0o700);
      await writeFile(path.join(out, 'a', 'file'), 'x');
      await assert.rejects(makeDirectory(backend, 'a/file', { mode: 0o755, mtime, keepExisting: false }), (err: unknown) => err instanceof StxError && err.code === 'EXISTS');
      await mkdir(path.join(root, 'elsewhere'));
      await symlink(path.join(root, 'elsewhere'), path.join(out, 'link'));
      await assert.rejects(makeDirectory(backend, 'link/d', { mode: 0o755, mtime, keepExisting: false }), (err: unknown) => err instanceof StxError && err.code === 'BAD_NAME');
      assert.deepEqual(await readdir(path.join(root, 'elsewhere')), [], 'nothing made through the link');
    });
  });

  it('a run of MKDIRs in one message (§9.8 runs, revision 1.14): done in order, nested and existing ones alike, up to the first refused; none after it', async () => {
    await withBackend(async (backend, out) => {
      const mtime = Date.UTC(2024, 5, 6, 7, 8, 9);
      const opts = (mode: number) => ({ mode, mtime, keepExisting: false });
      await mkdir(path.join(out, 'run', 'old'), { recursive: true });
      await writeFile(path.join(out, 'run', 'file'), 'x');
      // Deepest first, as a tree's MKDIRs come: a/b's parent a made on the way, then a itself.
      const all = await backend.makeDirectories([
        { name: 'run/a/b', options: opts(0o700) },
        { name: 'run/a', options: opts(0o750) },
        { name: 'run/old', options: opts(0o711) },
      ]);
      assert.deepEqual(all, { made: 3, failure: null });
      for (const [name, mode] of [['run/a/b', 0o700], ['run/a', 0o750], ['run/old', 0o711]] as const) {
        const st = await stat(path.join(out, name));
        assert.ok(st.isDirectory(), name);
        assert.equal(st.mode & 0o777, mode, name);
        assert.equal(st.mtimeMs, mtime, name);
      }
      const refused = await backend.makeDirectories([
        { name: 'run/c', options: opts(0o755) },
        { name: 'run/file', options: opts(0o755) },
        { name: 'run/d', options: opts(0o755) },
      ]);
      assert.equal(refused.made, 1);
      assert.ok(refused.failure instanceof StxError && refused.failure.code === 'EXISTS', String(refused.failure));
      assert.ok((await stat(path.join(out, 'run', 'c'))).isDirectory(), 'the one before the refused one is made');
      await assert.rejects(stat(path.join(out, 'run', 'd')), 'the one after it is not carried out');
    });
  });

  it('putFiles: each file its own outcome; in a directory a file of the batch made already, a name past PATH_MAX is refused BAD_NAME alone', async () => {
    await withBackend(async (backend, out) => {
      const real = await realpath(out);
      // A parent whose path leaves room for short names, not for a 250-byte one (Linux PATH_MAX 4096).
      const dirBytes = 4096 - 100 - real.length - 1;
      const parts: string[] = [];
      for (let left = dirBytes; left > 0; left -= 201) parts.push('p'.repeat(Math.min(200, left)));
      const dir = parts.join('/');
      const long = 'L'.repeat(250);
      assert.ok(real.length + dir.length + long.length + 2 >= 4096 && real.length + dir.length + 6 < 4096);
      const names = ['a', 'b', long, 'c', 'd', 'e'].map((n) => `${dir}/${n}`);
      const data = names.map((_, i) => randomBytes(100 + i));
      const outcomes = await backend.putFiles(
        names.map((name, i) => ({ id: idOf(100 + i), name, chunks: [data[i] ?? Buffer.alloc(0)], options: { mode: 0o640, mtime: 1_700_000_000_000, how: 'replace' as const, sha256: sha256(data[i] ?? Buffer.alloc(0)) } })),
      );
      assert.deepEqual(
        outcomes.map((o) => (o === null ? 'done' : o.code)),
        ['done', 'done', 'BAD_NAME', 'done', 'done', 'done'],
      );
      for (const [i, name] of names.entries()) {
        if (i === 2) continue;
        assert.deepEqual(await readFile(path.join(out, name)), data[i]);
        assert.equal((await stat(path.join(out, name))).mode & 0o777, 0o640);
      }
      assert.deepEqual((await readdir(path.join(out, '.stx', 'partials'))).length, 0, 'no temporary file left');
    });
  });
});
