// Pipelined small files (spec/PROTOCOL.md §9.11) against the real binaries: a tree of small files
// goes as PUTs on one connection with a refused file in the middle (the others land, the exit code
// and --json report it), and a file answered PUT_DONE survives a SIGKILL of the daemon right
// after its answer (durability batched, never skipped); a cut with PUT_INLINEs and PUTs in flight
// sends the unanswered ones again, whole, on the next connection (§9.11 steps 3 and 6).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { RawClient, dataBody, sha256 } from './hostile/raw-client.js';
import { logEvents } from './support/partials.js';
import { startProxy } from './support/proxy.js';
import { readJsonLine, runSend, startDaemon, tempDir } from './support/procs.js';

const dirs: { cleanup: () => Promise<void> }[] = [];
after(async () => {
  for (const d of dirs) await d.cleanup();
});

/** `n` bytes that differ for every `seed`. */
function content(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

describe('pipelined small files (§9.11)', () => {
  it('a cut with PUT_PACKs and PUTs unanswered: they go again on the next connection, the tree arrives whole', async () => {
    const t = await tempDir('stx-pipeline-cut-');
    dirs.push(t);
    const src = path.join(t.dir, 'src', 'cut');
    const out = path.join(t.dir, 'out');
    const files = new Map<string, Buffer>();
    // More files than stx-send keeps unanswered (1024, §9.11 step 5), so that some were answered at the cut.
    for (let d = 0; d < 2; d++) {
      await mkdir(path.join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 650; f++) {
        // Mostly under 1 KiB, every tenth 20 KB: all in PUT_PACKs (§9.11 step 8).
        const data = content(f % 10 === 9 ? 20_000 : 100 + f, 50_000 + d * 1000 + f);
        const rel = `d${d}/f${String(f).padStart(3, '0')}`;
        await writeFile(path.join(src, rel), data);
        files.set(rel, data);
      }
    }
    const total = [...files.values()].reduce((n, b) => n + b.length, 0);
    const d = await startDaemon(out, path.join(t.dir, 'home', 'key.pem'));
    const proxy = await startProxy(d.port, { cutAt: [Math.floor(total * 0.9)] });
    try {
      const r = await runSend(['127.0.0.1', String(proxy.port), src, '--json', '--quiet', '--fingerprint', d.fingerprint, '--backoff', '20'], { STX_HOME: path.join(t.dir, 'home') });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(proxy.cuts, 1);
      const json = readJsonLine(r.stdout);
      assert.equal(json['files'], files.size);
      assert.equal(json['reconnects'], 1);
      // Sent again: at most what was unanswered at the cut, at most 1024 of the 1300 files; the
      // files answered before the cut (some: 90 % of the bytes were through) never go twice.
      const sent = Number(json['bytes_sent']);
      assert.ok(sent > total && sent < 1.9 * total, `${sent} bytes sent for ${total}: some again, not the answered ones`);
      for (const [rel, data] of files) assert.ok((await readFile(path.join(out, 'cut', rel))).equals(data), rel);
    } finally {
      await proxy.close();
      await d.stop();
    }
  });

  it('a tree of 300 small files with a refused one in the middle: the others land on one connection, exit 6, --json lists it', async () => {
    const t = await tempDir('stx-pipeline-');
    dirs.push(t);
    const src = path.join(t.dir, 'src', 'tree');
    const out = path.join(t.dir, 'out');
    const files: string[] = [];
    for (let d = 0; d < 3; d++) {
      await mkdir(path.join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) {
        const rel = `d${d}/f${String(f).padStart(3, '0')}`;
        await writeFile(path.join(src, rel), content(1000 + f, d * 1000 + f), { mode: 0o640 });
        await utimes(path.join(src, rel), new Date(1_650_000_000_000 + f), new Date(1_650_000_000_000 + f));
        files.push(rel);
      }
    }
    // One larger than a PUT goes OPEN … DONE in between (§9.11: it waits for the PUTs before it).
    await writeFile(path.join(src, 'd2', 'big.bin'), content(1_500_000, 7));
    // The refused one: an append-only daemon holds another file under its name (§9.5).
    await mkdir(path.join(out, 'tree', 'd1'), { recursive: true });
    await writeFile(path.join(out, 'tree', 'd1', 'f050'), 'the stored one');
    const d = await startDaemon(out, path.join(t.dir, 'home', 'key.pem'), ['--append-only']);
    try {
      const r = await runSend(['127.0.0.1', String(d.port), src, '--json', '--quiet'], { STX_HOME: path.join(t.dir, 'home') });
      assert.equal(r.code, 6, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json["files"], files.length); // 299 small ones and the big one
      assert.equal(json['reconnects'], 0);
      const failed = json['failed'] as { name: string; code: string }[];
      assert.deepEqual(failed.map((f) => `${f.name} ${f.code}`), ['tree/d1/f050 EXISTS']);
      for (const rel of files) {
        const got = await readFile(path.join(out, 'tree', rel));
        if (rel === 'd1/f050') assert.equal(got.toString(), 'the stored one');
        else assert.ok(got.equals(await readFile(path.join(src, rel))), rel);
      }
      const st = await stat(path.join(out, 'tree', 'd2', 'f099'));
      assert.equal(st.mode & 0o777, 0o640);
      assert.equal(Math.round(st.mtimeMs), 1_650_000_000_099);
      assert.ok((await readFile(path.join(out, 'tree', 'd2', 'big.bin'))).equals(await readFile(path.join(src, 'd2', 'big.bin'))));
      // Only the big file was an OPEN; the small ones were PUTs on the one connection.
      assert.equal(logEvents(d.stdout(), 'open').length, 1);
      assert.equal(logEvents(d.stdout(), 'authenticated').length, 1);
    } finally {
      await d.stop();
    }
  });

  it('every file answered PUT_DONE is there and whole after a SIGKILL of the daemon right after the answers', async () => {
    const t = await tempDir('stx-pipeline-kill-');
    dirs.push(t);
    const out = path.join(t.dir, 'out');
    const key = path.join(t.dir, 'home', 'key.pem');
    const d = await startDaemon(out, key);
    const count = 200;
    const answered: number[] = [];
    try {
      const c = await RawClient.connect(d.port);
      assert.ok(await c.handshake());
      const records: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const data = content(4096, i + 1);
        records.push(c.sealFrame({ type: 'PUT', name: `kill/d${i % 10}/f${i}`, size: data.length, mtime: 1_700_000_000_000 + i, mode: 0o600 }));
        records.push(c.seal(dataBody(0, data)));
        records.push(c.sealFrame({ type: 'END', sha256: sha256(data) }));
      }
      await c.write(...records);
      // Answers come in PUT order (§9.11): the n-th PUT_DONE is file n. Kill once a batch is in.
      for (let i = 0; i < count + 50 && answered.length < count / 2; i++) {
        const got = await c.next(10_000);
        if (got.kind !== 'frame') assert.fail(`connection ended after ${answered.length} answers`);
        if (got.frame.type === 'PING' || got.frame.type === 'PONG') continue;
        assert.equal(got.frame.type, 'PUT_DONE');
        answered.push(answered.length);
      }
      d.proc.kill('SIGKILL');
      await d.stop();
      c.destroy();
    } finally {
      await d.stop('SIGKILL');
    }
    assert.ok(answered.length >= count / 2);
    const again = await startDaemon(out, key);
    try {
      for (const i of answered) {
        const file = path.join(out, 'kill', `d${i % 10}`, `f${i}`);
        const got = await readFile(file);
        assert.equal(createHash('sha256').update(got).digest('hex'), sha256(content(4096, i + 1)).toString('hex'), `f${i}`);
        const st = await stat(file);
        assert.equal(Math.round(st.mtimeMs), 1_700_000_000_000 + i);
      }
      // Whatever else got its final name is whole too: never a torn file under a final name.
      for (let dir = 0; dir < 10; dir++) {
        for (const name of await readdir(path.join(out, 'kill', `d${dir}`)).catch(() => [])) {
          const i = Number(name.slice(1));
          assert.ok((await readFile(path.join(out, 'kill', `d${dir}`, name))).equals(content(4096, i + 1)), name);
        }
      }
      // A PUT's file is never resumed: the restarted daemon cleared any left in its reserved directory.
      const left = (await readdir(path.join(out, '.stx', 'partials'))).filter((n) => n.endsWith('.put'));
      assert.deepEqual(left, []);
    } finally {
      await again.stop();
    }
  });
});
