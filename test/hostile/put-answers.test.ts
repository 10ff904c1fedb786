// PUT_INLINE, PUT_PACK and PUTS_DONE (spec §9.11 steps 6–8, revisions 1.6, 1.9), from both ends. stx-send against
// evil servers whose PUTS_DONE lies (more PUTs than unanswered, an answer with none unanswered, a
// hash that is not the file's): a typed error, the file never reported sent, no retry for a lie.
// stx-recv, from a raw client: a run of PUT_INLINE is answered in order, at least partly by
// PUTS_DONE, each hash the file's; PUTs alone never get PUTS_DONE.
import assert from 'node:assert/strict';
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Frame } from '../../src/proto/frames.js';
import { readJsonLine, runSend } from '../support/procs.js';
import { startEvilServer, type Script } from './evil-server.js';
import { startArena, type Arena } from './harness.js';
import { dataBody, RawClient } from './raw-client.js';

const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const HANG_BOUND_MS = 30_000;

let arena: Arena;
let evilKey: KeyObject;
let tree: string;
before(async () => {
  evilKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  arena = await startArena();
  // Two small files, read while the connection is made and sent at once after the handshake: as
  // one PUT_PACK (§9.11 step 8), or as PUT_INLINE each (a pack holds two files or more).
  tree = path.join(arena.src, 'two');
  await mkdir(tree);
  await writeFile(path.join(tree, 'a.txt'), 'alpha');
  await writeFile(path.join(tree, 'b.txt'), 'bravo');
});
after(() => arena.close('after the PUT answer suite'));

/** Reads the client's PUTs of two files (PUT_INLINE each, or a PUT_PACK and its DATA): their SHA-256 values, in order. */
async function twoPuts(p: RawClient): Promise<Buffer[]> {
  const hashes: Buffer[] = [];
  for (let i = 0; i < 4 && hashes.length < 2; i++) {
    const got = await p.next(10_000);
    if (got.kind !== 'frame') throw new Error(`expected PUT_INLINE or PUT_PACK, got ${got.kind}`);
    const f: Frame = got.frame;
    if (f.type === 'PUT_INLINE') hashes.push(f.sha256);
    else if (f.type === 'PUT_PACK') {
      for (let at = 0; at < f.sha256s.length; at += 32) hashes.push(f.sha256s.subarray(at, at + 32));
      await p.expectFrame('DATA');
    } else throw new Error(`expected PUT_INLINE or PUT_PACK, got ${f.type}`);
  }
  assert.equal(hashes.length, 2);
  return hashes;
}

describe('stx-send against a server of revision 1.8, which does not know PUT_PACK (§9.11 step 8)', () => {
  it('UNKNOWN_FRAME_TYPE to the first PUT_PACK: the files unanswered go again as PUT_INLINE on a new connection, and arrive', { timeout: 60_000 }, async () => {
    // Three files, read while the connection is made: a pack (a first file may go alone as
    // PUT_INLINE if the connection is Ready before the walk reaches the others).
    const three = path.join(arena.src, 'three');
    await mkdir(three);
    for (const n of ['a', 'b', 'c']) await writeFile(path.join(three, `${n}.txt`), `file ${n}`);
    const seen: string[][] = [];
    const evil = await startEvilServer(evilKey, async (p, hs) => {
      if (!(await hs())) return;
      const types: string[] = [];
      seen.push(types);
      const inline: Buffer[] = [];
      for (let i = 0; i < 8; i++) {
        const got = await p.next(10_000);
        if (got.kind !== 'frame') return;
        const f = got.frame;
        types.push(f.type);
        if (f.type === 'PUT_PACK') {
          // What a 1.8 server does with a type byte it does not know (§10.1 step 4).
          await p.send({ type: 'ERROR', code: 4, message: 'unknown frame type 0x37' });
          await p.waitClosed(10_000);
          return;
        }
        if (f.type === 'PUT_INLINE') inline.push(f.sha256);
        if (inline.length === 3) await p.send({ type: 'PUTS_DONE', sha256s: Buffer.concat(inline.splice(0)) });
        if (f.type === 'MKDIR') {
          await p.send({ type: 'MADE' });
          break;
        }
      }
      await p.waitClosed(10_000);
    });
    try {
      const r = await runSend(['127.0.0.1', String(evil.port), three, '--fingerprint', evil.fingerprint, '--json', '--quiet', '--retries', '2', '--backoff', '20'], { STX_HOME: arena.home }, HANG_BOUND_MS);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(seen.length, 2, JSON.stringify(seen));
      const [first, second] = seen;
      assert.equal(first?.at(-1), 'PUT_PACK', JSON.stringify(seen));
      assert.ok(first.slice(0, -1).every((t) => t === 'PUT_INLINE'), JSON.stringify(seen));
      assert.deepEqual(second, ['PUT_INLINE', 'PUT_INLINE', 'PUT_INLINE', 'MKDIR']);
      assert.equal(readJsonLine(r.stdout)['files'], 3);
    } finally {
      await evil.close();
    }
  });
});

describe('stx-send against servers whose PUTS_DONE lies', () => {
  /** `files`: those the --json summary counts sent: only the ones a true answer confirmed. */
  const cases: ReadonlyArray<{ name: string; code: string; exit: number; files: number; script: Script }> = [
    {
      name: 'a PUTS_DONE for three PUTs when two are unanswered',
      code: 'UNEXPECTED_FRAME',
      exit: 3,
      files: 0,
      script: async (p, hs) => {
        if (!(await hs())) return;
        const puts = await twoPuts(p);
        await p.send({ type: 'PUTS_DONE', sha256s: Buffer.concat([...puts, Buffer.alloc(32, 1)]) });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a second PUTS_DONE with no PUT unanswered',
      code: 'UNEXPECTED_FRAME',
      exit: 3,
      files: 2,
      script: async (p, hs) => {
        if (!(await hs())) return;
        const puts = await twoPuts(p);
        await p.send({ type: 'PUTS_DONE', sha256s: Buffer.concat(puts) });
        await p.send({ type: 'PUTS_DONE', sha256s: Buffer.alloc(32, 2) });
        await p.waitClosed(10_000);
      },
    },
    {
      name: 'a PUTS_DONE whose second hash is not the file\'s',
      code: 'INTEGRITY_FAILED',
      exit: 7,
      files: 1,
      script: async (p, hs) => {
        if (!(await hs())) return;
        const [first] = await twoPuts(p);
        if (first === undefined) return;
        await p.send({ type: 'PUTS_DONE', sha256s: Buffer.concat([first, sha256(Buffer.from('not bravo'))]) });
        await p.waitClosed(10_000);
      },
    },
  ];
  for (const c of cases) {
    it(`${c.name}: ${c.code}, exit ${c.exit}, not retried`, { timeout: 60_000 }, async () => {
      const evil = await startEvilServer(evilKey, c.script);
      try {
        const r = await runSend(['127.0.0.1', String(evil.port), tree, '--fingerprint', evil.fingerprint, '--json', '--quiet', '--retries', '2', '--backoff', '20'], { STX_HOME: arena.home }, HANG_BOUND_MS);
        assert.equal(r.code, c.exit, r.stderr);
        assert.match(r.stderr, new RegExp(`error: ${c.code}: `));
        assert.equal(evil.received.length, 1, 'a server that lies about its answers is not tried again');
        const summary = readJsonLine(r.stdout);
        assert.equal(summary['files'], c.files, 'only the files a true answer confirmed count as sent');
      } finally {
        await evil.close();
      }
    });
  }
});

/** PUT_INLINE of `data` as `name`. */
function inline(c: RawClient, name: string, data: Buffer): Buffer {
  return c.sealFrame({ type: 'PUT_INLINE', name, mtime: 1_700_000_000_000, mode: 0o644, sha256: sha256(data), data });
}

/** The answers to `n` PUTs: the hashes answered in order, and how many PUTS_DONE carried them. */
async function collect(c: RawClient, n: number): Promise<{ hashes: Buffer[]; batches: number; failed: number }> {
  const hashes: Buffer[] = [];
  let batches = 0;
  let failed = 0;
  for (let i = 0; i < 10 * n && hashes.length + failed < n; i++) {
    const got = await c.next(10_000);
    if (got.kind !== 'frame') throw new Error(`connection ended after ${hashes.length} answers: ${got.kind}`);
    const f = got.frame;
    if (f.type === 'PUT_DONE') hashes.push(f.sha256);
    else if (f.type === 'PUT_FAILED') failed++;
    else if (f.type === 'PUTS_DONE') {
      batches++;
      for (let at = 0; at < f.sha256s.length; at += 32) hashes.push(f.sha256s.subarray(at, at + 32));
    } else throw new Error(`unexpected ${f.type}`);
  }
  return { hashes, batches, failed };
}

describe('stx-recv answers PUT_INLINE', () => {
  it('200 PUT_INLINE in one write: every one answered in order with its hash, runs of them by PUTS_DONE; the files are there', { timeout: 60_000 }, async () => {
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      const files = Array.from({ length: 200 }, (_, i) => Buffer.from(`file ${i} `.repeat(1 + (i % 50))));
      await c.write(...files.map((d, i) => inline(c, `inline/d${i % 4}/f${i}.txt`, d)));
      const { hashes, batches, failed } = await collect(c, files.length);
      assert.equal(failed, 0);
      assert.deepEqual(hashes.map((h) => h.toString('hex')), files.map((d) => sha256(d).toString('hex')));
      assert.ok(batches > 0, 'answers ready together go as PUTS_DONE');
      assert.ok(batches < files.length, 'a PUTS_DONE answers more than one PUT');
    } finally {
      c.destroy();
    }
    const { readFile } = await import('node:fs/promises');
    assert.equal(await readFile(path.join(arena.out, 'inline/d3/f199.txt'), 'utf8'), 'file 199 '.repeat(50));
  });

  it('PUTs alone (no PUT_INLINE on the connection) are answered one PUT_DONE each, never by PUTS_DONE', { timeout: 60_000 }, async () => {
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      const files = Array.from({ length: 50 }, (_, i) => Buffer.from(`plain ${i}`));
      await c.write(
        ...files.flatMap((d, i) => [
          c.sealFrame({ type: 'PUT', name: `plain/f${i}.txt`, size: d.length, mtime: 1_700_000_000_000, mode: 0o644 }),
          c.seal(dataBody(0, d)),
          c.sealFrame({ type: 'END', sha256: sha256(d) }),
        ]),
      );
      const { hashes, batches } = await collect(c, files.length);
      assert.equal(batches, 0);
      assert.equal(hashes.length, files.length);
    } finally {
      c.destroy();
    }
  });
});
