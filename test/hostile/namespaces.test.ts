// Hostile clients against per-client namespaces and rights (issue 13 items 4 and 5; spec §7.4,
// §9.5, §9.9, §9.10): real daemons with authorized-keys options, and clients (our RawClient, one
// Ed25519 key each) that send whatever names and frames they like. A client must not see, read,
// replace, resume, lock or learn the existence of anything outside its namespace; an append-only
// client must never replace, truncate or delete a stored file; a SIGHUP changes the rights of
// new connections only. Two daemons, one per group; the groups run at once.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { authorizedKeyLine } from '../../src/crypto/index.js';
import { codeFromWire } from '../../src/proto/errors.js';
import type { Frame, FrameName } from '../../src/proto/frames.js';
import { tempDir } from '../support/procs.js';
import { logLines, startArena, tree, waitUntil, type Arena } from './harness.js';
import { HandshakeRefused, RawClient, sha256 } from './raw-client.js';

const MTIME = 1_700_000_000_000;

/** How a request ended: the frames up to the one awaited, or the server's ERROR code and message. */
type Answer = { readonly ok: true; readonly frames: readonly Frame[] } | { readonly ok: false; readonly code: string; readonly message: string };

function identity(): KeyObject {
  return generateKeyPairSync('ed25519').privateKey;
}

/** A connection with `key` (none: anonymous), handshake done. */
async function connect(a: Arena, key: KeyObject | undefined): Promise<RawClient> {
  const c = await RawClient.connect(a.daemon.port);
  await c.handshake({ client: key === undefined ? {} : { identity: key } });
  return c;
}

/** The handshake's refusal code for `key` ('none' if it got in). */
async function refusal(a: Arena, key: KeyObject | undefined): Promise<string> {
  const c = await RawClient.connect(a.daemon.port);
  try {
    await c.handshake({ client: key === undefined ? {} : { identity: key } });
    return 'none';
  } catch (err) {
    if (err instanceof HandshakeRefused) return err.outcome.code;
    throw err;
  } finally {
    c.destroy();
  }
}

/** The handshake's refusal for `key`: code and message. */
async function refusalMessage(a: Arena, key: KeyObject): Promise<{ code: string; message: string }> {
  const c = await RawClient.connect(a.daemon.port);
  try {
    await c.handshake({ client: { identity: key } });
    return { code: 'none', message: '' };
  } catch (err) {
    if (err instanceof HandshakeRefused) return { code: err.outcome.code, message: err.outcome.message };
    throw err;
  } finally {
    c.destroy();
  }
}

/** Sends `frames`, then reads (skipping ACK, PONG, PROGRESS) until a frame of type `until` or an ERROR. */
async function exchange(c: RawClient, frames: readonly Frame[], until: FrameName): Promise<Answer> {
  for (const f of frames) await c.send(f);
  const got: Frame[] = [];
  for (let i = 0; i < 10_000; i++) {
    const next = await c.next();
    if (next.kind !== 'frame') return { ok: false, code: next.kind === 'local' ? next.code : next.kind.toUpperCase(), message: '' };
    const f = next.frame;
    if (f.type === 'ERROR' || f.type === 'GOAWAY') return { ok: false, code: codeFromWire(f.code) ?? `#${f.code}`, message: f.message };
    if (f.type === 'ACK' || f.type === 'PONG' || f.type === 'PROGRESS') continue;
    got.push(f);
    if (f.type === until) return { ok: true, frames: got };
  }
  throw new Error(`no ${until} in 10000 frames`);
}

/**
 * The code the daemon logged when it closed the connection from our `port`, in its log from
 * character `since` on (harness.ts's serverCloseCode parses the whole log each time; this suite
 * asks a hundred times).
 */
async function loggedClose(a: Arena, port: number, since: number): Promise<string> {
  const remote = `"remote":"127.0.0.1:${port}"`;
  for (let i = 0; i < 250; i++) {
    const line = a.daemon
      .stdout()
      .slice(since)
      .split('\n')
      .find((l) => l.includes('"event":"close"') && l.includes(remote));
    if (line !== undefined) {
      const code: unknown = (JSON.parse(line) as { code?: unknown }).code;
      return typeof code === 'string' ? code : 'none';
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return 'no close logged';
}

/** A refusal the client saw must be the code the daemon logged for that connection, which it closed. */
async function sameInLog(a: Arena, c: RawClient, since: number, answer: Answer): Promise<Answer> {
  if (!answer.ok) {
    assert.ok(await c.waitClosed(3000), `the daemon closed the connection after ${answer.code}`);
    assert.equal(await loggedClose(a, c.localPort, since), answer.code, 'the code the daemon logged');
  }
  return answer;
}

/** One request on a fresh connection of `key`; the connection is closed after. */
async function once(a: Arena, key: KeyObject | undefined, frames: readonly Frame[], until: FrameName): Promise<Answer> {
  const since = a.daemon.stdout().length;
  const c = await connect(a, key);
  try {
    return await sameInLog(a, c, since, await exchange(c, frames, until));
  } finally {
    c.destroy();
  }
}

function codeOf(answer: Answer): string {
  return answer.ok ? 'OK' : answer.code;
}

/** A whole file as one PUT, or PUT_INLINE (§9.11), on a fresh connection: 'OK' (PUT_DONE) or the code of PUT_FAILED or ERROR. */
async function put(a: Arena, key: KeyObject | undefined, name: string, data: Buffer, how: 'PUT' | 'PUT_INLINE' = 'PUT'): Promise<string> {
  const c = await connect(a, key);
  try {
    if (how === 'PUT_INLINE') await c.send({ type: 'PUT_INLINE', name, mtime: MTIME, mode: 0o644, sha256: sha256(data), data });
    else {
      await c.send({ type: 'PUT', name, size: data.length, mtime: MTIME, mode: 0o644 });
      await c.sendData(data, 0);
      await c.send({ type: 'END', sha256: sha256(data) });
    }
    for (let i = 0; i < 1000; i++) {
      const next = await c.next();
      if (next.kind !== 'frame') return next.kind === 'local' ? next.code : next.kind.toUpperCase();
      const f = next.frame;
      if (f.type === 'PUT_DONE' || f.type === 'PUTS_DONE') return 'OK';
      if (f.type === 'PUT_FAILED' || f.type === 'ERROR') return codeFromWire(f.code) ?? `#${f.code}`;
    }
    throw new Error('no answer to the PUT in 1000 frames');
  } finally {
    c.destroy();
  }
}

/** A whole upload of `data` as `name` on a fresh connection: 'OK' or the ERROR code. */
async function upload(a: Arena, key: KeyObject | undefined, name: string, data: Buffer, mtime = MTIME): Promise<string> {
  const since = a.daemon.stdout().length;
  const c = await connect(a, key);
  try {
    const opened = await sameInLog(a, c, since, await exchange(c, [{ type: 'OPEN', name, size: data.length, mtime, mode: 0o644 }], 'OPEN_OK'));
    if (!opened.ok) return opened.code;
    const ok = opened.frames[opened.frames.length - 1];
    assert.ok(ok?.type === 'OPEN_OK');
    await c.sendData(data, ok.offset);
    return codeOf(await sameInLog(a, c, since, await exchange(c, [{ type: 'END', sha256: sha256(data) }], 'DONE')));
  } finally {
    c.destroy();
  }
}

/** A GET: the file's bytes, or the ERROR. */
async function get(a: Arena, key: KeyObject | undefined, name: string): Promise<Answer & { data?: Buffer }> {
  const answer = await once(a, key, [{ type: 'GET', name, offset: 0 }], 'GET_END');
  if (!answer.ok) return answer;
  const data = Buffer.concat(answer.frames.flatMap((f) => (f.type === 'DATA' ? [f.data] : [])));
  return { ...answer, data };
}

/** A LIST: the names listed, or the ERROR code. */
async function list(a: Arena, key: KeyObject | undefined, prefix = ''): Promise<string[] | string> {
  const answer = await once(a, key, [{ type: 'LIST', prefix }], 'LIST_END');
  if (!answer.ok) return answer.code;
  return answer.frames.flatMap((f) => (f.type === 'LIST_ENTRY' ? [f.name] : []));
}

const mkdir = (name: string): Frame => ({ type: 'MKDIR', name, mtime: MTIME, mode: 0o755 });
const symlink = (name: string, target: string): Frame => ({ type: 'SYMLINK', name, target, mtime: MTIME });

/** Waits until the daemon logged, for the `nth` time, that the upload of stored `name` let go of its partial; its durable offset. */
async function released(a: Arena, name: string, nth = 1): Promise<number> {
  const lines = (): ReturnType<typeof logLines> => logLines(a.daemon).filter((l) => l.event === 'upload' && l.outcome === 'interrupted' && l.name === name);
  assert.ok(await waitUntil(() => lines().length >= nth, 5000), `the daemon let go of ${name}`);
  return Number(lines()[nth - 1]?.['durable']);
}

async function keysFile(lines: readonly string[]): Promise<{ file: string; cleanup: () => Promise<void> }> {
  const tmp = await tempDir('stx-ns-keys-');
  const file = path.join(tmp.dir, 'authorized_keys');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return { file, cleanup: tmp.cleanup };
}

// The two daemons' groups run at once (each group's tests too): the file's wall time is the longer group's.
describe('namespaces and rights', { concurrency: true }, () => {
  describe('namespaces and per-key rights (one daemon)', { concurrency: true }, () => {
    const web1 = identity(); // namespace hosts/web1, may download
    const web10 = identity(); // hosts/web10: a namespace its sibling's is a prefix of
    const web2 = identity(); // hosts/web2, which another key turns into a link
    const admin = identity(); // the whole directory, may download
    const reader = identity(); // no-upload, download
    const small = identity(); // max-size 1K
    const s1 = identity(); // two keys sharing "shared"
    const s2 = identity();
    const p = identity(); // two append-only keys sharing "vault"
    const q = identity();
    let a: Arena;
    let keys: { file: string; cleanup: () => Promise<void> };

    before(async () => {
      keys = await keysFile([
        authorizedKeyLine(web1, 'web1', 'namespace="hosts/web1",download'),
        authorizedKeyLine(web10, 'web10', 'namespace="hosts/web10"'),
        authorizedKeyLine(web2, 'web2', 'namespace="hosts/web2",download'),
        authorizedKeyLine(admin, 'admin', 'download'),
        authorizedKeyLine(reader, 'reader', 'namespace="hosts/web1",no-upload,download'),
        authorizedKeyLine(small, 'small', 'namespace="small",max-size="1K"'),
        authorizedKeyLine(s1, 's1', 'namespace="shared"'),
        authorizedKeyLine(s2, 's2', 'namespace="shared"'),
        authorizedKeyLine(p, 'p', 'namespace="vault",append-only,download'),
        authorizedKeyLine(q, 'q', 'namespace="vault",append-only'),
      ]);
      a = await startArena(['--authorized-keys', keys.file, '--anonymous-namespace', 'drop']);
      // What every test may look for: a file of web10's that web1 must never learn of.
      assert.equal(await upload(a, web10, 'secret.txt', Buffer.from('web10 only')), 'OK');
    });
    after(async () => {
      await a.close('namespaces');
      await keys.cleanup();
    });

    test('uploads land in the namespace; no name leaves it, and a sibling namespace sharing its prefix stays apart', async () => {
      assert.equal(await upload(a, web1, 'f.txt', Buffer.from('web1')), 'OK');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web1/f.txt'), 'utf8'), 'web1');
      for (const name of ['../web10/secret.txt', '../web10/x', '/etc/x', 'a/../../web10/x', '..', '.', 'x/', '.stx/partials/x', 'cafe\u0301']) {
        assert.equal(await upload(a, web1, name, Buffer.from('escape')), 'BAD_NAME', name);
      }
      assert.equal(await upload(a, undefined, 'anon.txt', Buffer.from('anonymous')), 'OK');
      assert.equal(readFileSync(path.join(a.out, 'drop/anon.txt'), 'utf8'), 'anonymous');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web10/secret.txt'), 'utf8'), 'web10 only', "web10's file untouched");
      assert.deepEqual(tree(path.join(a.out, 'hosts/web10')), ['secret.txt']);
    });

    test('pipelined PUTs (§9.11) are confined and refused as OPENs are', async () => {
      assert.equal(await put(a, web1, 'put.txt', Buffer.from('web1 put')), 'OK');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web1/put.txt'), 'utf8'), 'web1 put');
      assert.equal(existsSync(path.join(a.out, 'put.txt')), false, 'nothing at the top of --out');
      assert.equal(await put(a, web1, '../web10/secret.txt', Buffer.from('escape')), 'BAD_NAME');
      assert.equal(await put(a, reader, 'r.txt', Buffer.from('read-only key')), 'NOT_ALLOWED');
      assert.equal(await put(a, small, 'big.bin', Buffer.alloc(2048)), 'TOO_LARGE');
      assert.equal(await put(a, p, 'put-vault.txt', Buffer.from('first')), 'OK');
      assert.equal(await put(a, q, 'put-vault.txt', Buffer.from('second')), 'EXISTS');
      assert.equal(readFileSync(path.join(a.out, 'vault/put-vault.txt'), 'utf8'), 'first');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web10/secret.txt'), 'utf8'), 'web10 only');
    });

    test('PUT_INLINE (§9.11 step 6) is confined and refused as PUT is', async () => {
      assert.equal(await put(a, web1, 'inline.txt', Buffer.from('web1 inline'), 'PUT_INLINE'), 'OK');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web1/inline.txt'), 'utf8'), 'web1 inline');
      assert.equal(existsSync(path.join(a.out, 'inline.txt')), false, 'nothing at the top of --out');
      assert.equal(await put(a, web1, '../web10/secret.txt', Buffer.from('escape'), 'PUT_INLINE'), 'BAD_NAME');
      assert.equal(await put(a, reader, 'ri.txt', Buffer.from('read-only key'), 'PUT_INLINE'), 'NOT_ALLOWED');
      assert.equal(await put(a, small, 'big-inline.bin', Buffer.alloc(2048), 'PUT_INLINE'), 'TOO_LARGE');
      assert.equal(await put(a, p, 'inline-vault.txt', Buffer.from('first'), 'PUT_INLINE'), 'OK');
      assert.equal(await put(a, q, 'inline-vault.txt', Buffer.from('second'), 'PUT_INLINE'), 'EXISTS');
      // Re-sent whole after a lost answer (§9.11 step 3): the same bytes are PUT_DONE, not EXISTS.
      assert.equal(await put(a, q, 'inline-vault.txt', Buffer.from('first'), 'PUT_INLINE'), 'OK');
      assert.equal(readFileSync(path.join(a.out, 'vault/inline-vault.txt'), 'utf8'), 'first');
      assert.equal(readFileSync(path.join(a.out, 'hosts/web10/secret.txt'), 'utf8'), 'web10 only');
    });

    test('GET and LIST outside the namespace look exactly like nothing there', async () => {
      assert.equal(await upload(a, web1, 'mine.txt', Buffer.from('mine')), 'OK');
      assert.deepEqual((await get(a, web1, 'mine.txt')).data?.toString(), 'mine');
      // secret.txt exists (for web10), absent.txt nowhere: the answers differ only by the name asked.
      const there = await get(a, web1, 'secret.txt');
      const nowhere = await get(a, web1, 'absent.txt');
      assert.ok(!there.ok && !nowhere.ok);
      assert.equal(there.code, 'NOT_FOUND');
      assert.equal(there.message.replace('secret.txt', 'X'), nowhere.message.replace('absent.txt', 'X'));
      for (const name of ['../web10/secret.txt', '../web10/absent.txt']) assert.equal(codeOf(await get(a, web1, name)), 'BAD_NAME', name);
      const mine = await list(a, web1);
      assert.ok(Array.isArray(mine) && mine.includes('mine.txt') && !mine.some((n) => n.includes('secret')), String(mine));
      assert.deepEqual(await list(a, web1, 'secret.txt'), []);
      assert.deepEqual(await list(a, web1, 'hosts'), []);
      assert.equal(await list(a, web1, '../web10'), 'BAD_NAME');
      // The whole-directory key sees both, under their stored names.
      const all = await list(a, admin, 'hosts');
      assert.ok(Array.isArray(all) && all.includes('hosts/web10/secret.txt') && all.includes('hosts/web1/mine.txt'), String(all));
    });

    test('links cannot lead out: made by the client, by another client inside it, or the namespace itself a link', async () => {
      assert.equal(codeOf(await once(a, web1, [symlink('l', '../web10/secret.txt')], 'MADE')), 'BAD_NAME');
      assert.equal(codeOf(await once(a, web1, [symlink('d/l', '../../web10')], 'MADE')), 'BAD_NAME');
      assert.equal(codeOf(await once(a, web1, [symlink('ok', 'f.txt')], 'MADE')), 'OK', 'a link within the namespace is fine');
      // The admin (whole directory) may make links the namespaced clients could not.
      assert.equal(codeOf(await once(a, admin, [symlink('hosts/web1/peek', '../web10')], 'MADE')), 'OK');
      assert.equal(codeOf(await once(a, admin, [symlink('hosts/web2', 'web10')], 'MADE')), 'OK');
      assert.equal(codeOf(await get(a, web1, 'peek/secret.txt')), 'NOT_FOUND');
      assert.equal(codeOf(await get(a, web1, 'peek')), 'NOT_FOUND');
      assert.deepEqual(await list(a, web1, 'peek'), []);
      const listed = await list(a, web1);
      assert.ok(Array.isArray(listed) && !listed.some((n) => n.startsWith('peek')), String(listed));
      assert.notEqual(await upload(a, web1, 'peek/planted.txt', Buffer.from('x')), 'OK');
      // hosts/web2 is a link to web10: web2's namespace leads nowhere.
      assert.deepEqual(await list(a, web2), []);
      assert.equal(codeOf(await get(a, web2, 'secret.txt')), 'NOT_FOUND');
      assert.notEqual(await upload(a, web2, 'planted.txt', Buffer.from('x')), 'OK');
      assert.notEqual(codeOf(await once(a, web2, [mkdir('planted-dir')], 'MADE')), 'OK');
      assert.deepEqual(tree(path.join(a.out, 'hosts/web10')), ['secret.txt']);
    });

    test('rights per key: no-upload, no download without the option, max-size, unlisted keys', async () => {
      for (const frame of [{ type: 'OPEN', name: 'r.txt', size: 1, mtime: MTIME, mode: 0o644 } as const, mkdir('rd'), symlink('rl', 'f.txt')]) {
        assert.equal(codeOf(await once(a, reader, [frame], frame.type === 'OPEN' ? 'OPEN_OK' : 'MADE')), 'NOT_ALLOWED', frame.type);
      }
      // Permission before the name (§10.1): a read-only key learns nothing from a bad name either.
      assert.equal(codeOf(await once(a, reader, [{ type: 'OPEN', name: '../x', size: 1, mtime: MTIME, mode: 0o644 }], 'OPEN_OK')), 'NOT_ALLOWED');
      assert.ok(Array.isArray(await list(a, reader)), 'the reader lists its namespace');
      assert.equal(await list(a, web10), 'NOT_ALLOWED', 'no download option, no --allow-download');
      assert.equal(codeOf(await get(a, web10, 'secret.txt')), 'NOT_ALLOWED');
      assert.equal(await upload(a, small, 'big.bin', randomBytes(1025)), 'TOO_LARGE');
      assert.equal(await upload(a, small, 'ok.bin', randomBytes(1024)), 'OK');
      assert.equal(await refusal(a, identity()), 'AUTH_REFUSED');
    });

    test("partials and locks are per key: the same identity from another key neither resumes nor takes over", async () => {
      const data = randomBytes(600_000);
      const name = 'big.bin';
      const open: Frame = { type: 'OPEN', name, size: data.length, mtime: MTIME, mode: 0o644 };
      // s1 sends half and goes away: its partial stays, durable.
      const c1 = await connect(a, s1);
      assert.ok((await exchange(c1, [open], 'OPEN_OK')).ok);
      await c1.sendData(data.subarray(0, 300_000));
      c1.end();
      const durable = await released(a, 'shared/big.bin');
      assert.ok(durable > 0, `s1's partial holds ${durable} bytes`);
      // s2 sends the very same OPEN: it starts at 0 (its own partial), and holds the name meanwhile.
      const c2 = await connect(a, s2);
      const second = await exchange(c2, [open], 'OPEN_OK');
      assert.ok(second.ok);
      assert.deepEqual(second.frames.at(-1), { type: 'OPEN_OK', offset: 0 });
      // s1 comes back while s2 holds the name: BUSY, not a takeover of s2's connection.
      assert.equal(codeOf(await once(a, s1, [open], 'OPEN_OK')), 'BUSY');
      c2.destroy();
      await released(a, 'shared/big.bin', 2);
      // s1 resumes its own partial from where it was.
      const c3 = await connect(a, s1);
      const third = await exchange(c3, [open], 'OPEN_OK');
      const ok = third.ok ? third.frames.at(-1) : undefined;
      assert.ok(ok?.type === 'OPEN_OK' && ok.offset === durable, JSON.stringify(ok));
      await c3.sendData(data, ok.offset);
      assert.equal(codeOf(await exchange(c3, [{ type: 'END', sha256: sha256(data) }], 'DONE')), 'OK');
      c3.destroy();
      assert.ok(readFileSync(path.join(a.out, 'shared/big.bin')).equals(data));
    });

    test('append-only keys: no frame sequence replaces, truncates or deletes a stored file', async () => {
      const kept = Buffer.from('kept forever, 32 bytes of text..');
      assert.equal(await upload(a, p, 'keep.bin', kept), 'OK');
      assert.equal(await upload(a, p, 'café.bin', Buffer.from('nfc')), 'OK');
      const other = Buffer.from('x'.repeat(kept.length));
      const openSame: Frame = { type: 'OPEN', name: 'keep.bin', size: kept.length, mtime: MTIME, mode: 0o644 };
      for (const key of [p, q]) {
        assert.equal(await upload(a, key, 'keep.bin', Buffer.from('longer content than before, replaced?')), 'EXISTS');
        assert.equal(await upload(a, key, 'keep.bin', Buffer.alloc(0)), 'EXISTS', 'truncate');
        assert.equal(await upload(a, key, 'keep.bin', other), 'EXISTS', 'same size, other bytes');
        assert.equal(await upload(a, key, 'keep.bin', other, MTIME + 1000), 'EXISTS', 'another mtime');
        // OPEN_OK at the size, then DATA from 0 anyway: refused, nothing written.
        const c = await connect(a, key);
        const opened = await exchange(c, [openSame], 'OPEN_OK');
        assert.deepEqual(opened.ok ? opened.frames.at(-1) : opened, { type: 'OPEN_OK', offset: kept.length });
        await c.sendData(other, 0);
        assert.equal((await c.outcome()).code, 'BAD_OFFSET');
        c.destroy();
        const stream: Frame = { type: 'OPEN', name: 'keep.bin', size: 0, mtime: MTIME, mode: 0o644, stream: randomBytes(16) };
        assert.equal(codeOf(await once(a, key, [stream], 'OPEN_OK')), 'EXISTS', 'a stream');
        assert.equal(codeOf(await once(a, key, [mkdir('keep.bin')], 'MADE')), 'EXISTS', 'MKDIR over it');
        assert.equal(codeOf(await once(a, key, [symlink('keep.bin', 'café.bin')], 'MADE')), 'EXISTS', 'SYMLINK over it');
        // A name that normalises to the stored one is not NFC: refused, whatever exists.
        assert.equal(await upload(a, key, 'cafe\u0301.bin', Buffer.from('nfd')), 'BAD_NAME');
      }
      // The same file again is a re-run of a backup, not an error (§9.5): DONE, nothing written.
      assert.equal(await upload(a, q, 'keep.bin', kept), 'OK');
      assert.ok(readFileSync(path.join(a.out, 'vault/keep.bin')).equals(kept));
      assert.equal(readFileSync(path.join(a.out, 'vault/café.bin'), 'utf8'), 'nfc');
      // Another case is another name on a case-sensitive filesystem; on any, the stored one stays.
      const caseCode = await upload(a, q, 'KEEP.bin', other);
      assert.ok(caseCode === 'OK' || caseCode === 'EXISTS', caseCode);
      assert.ok(readFileSync(path.join(a.out, 'vault/keep.bin')).equals(kept));
    });

    test('append-only: two keys racing for one name, and a partial of one key finished by another', async () => {
      const fromP = randomBytes(200_000);
      const fromQ = randomBytes(200_000);
      const codes = await Promise.all([upload(a, p, 'race.bin', fromP), upload(a, q, 'race.bin', fromQ)]);
      assert.equal(codes.filter((c) => c === 'OK').length, 1, codes.join(','));
      assert.ok(codes.every((c) => c === 'OK' || c === 'BUSY' || c === 'EXISTS'), codes.join(','));
      const stored = readFileSync(path.join(a.out, 'vault/race.bin'));
      assert.ok(stored.equals(codes[0] === 'OK' ? fromP : fromQ), 'the stored file is the winner’s, whole');
      // q leaves half a file; p uploads the name whole from 0; q's resume cannot change it.
      const open: Frame = { type: 'OPEN', name: 'half.bin', size: fromQ.length, mtime: MTIME, mode: 0o644 };
      const c = await connect(a, q);
      assert.ok((await exchange(c, [open], 'OPEN_OK')).ok);
      await c.sendData(fromQ.subarray(0, 100_000));
      c.end();
      await released(a, 'vault/half.bin');
      assert.equal(await upload(a, p, 'half.bin', fromP), 'OK');
      assert.equal(await upload(a, q, 'half.bin', fromQ), 'EXISTS');
      assert.ok(readFileSync(path.join(a.out, 'vault/half.bin')).equals(fromP));
    });
  });

  describe('daemon-wide append-only and downloads, anonymous refused, SIGHUP (one daemon)', { concurrency: true }, () => {
    const plain = identity();
    const nodl = identity();
    const moved = identity();
    const here = identity(); // from= this host
    const elsewhere = identity(); // from= a network the tests are not on
    let a: Arena;
    let keys: { file: string; cleanup: () => Promise<void> };
    const lines = (movedOptions: string): string[] => [
      authorizedKeyLine(plain, 'plain'),
      authorizedKeyLine(nodl, 'nodl', 'no-download'),
      authorizedKeyLine(moved, 'moved', movedOptions),
      authorizedKeyLine(here, 'here', 'from="192.0.2.0/24,127.0.0.1"'),
      authorizedKeyLine(elsewhere, 'elsewhere', 'from="192.0.2.0/24,::2"'),
    ];

    before(async () => {
      keys = await keysFile(lines('namespace="first"'));
      a = await startArena(['--authorized-keys', keys.file, '--append-only', '--allow-download']);
    });
    after(async () => {
      await a.close('global');
      await keys.cleanup();
    });

    test('--append-only holds for a key without options; --allow-download for all but no-download', async () => {
      const kept = Buffer.from('global');
      assert.equal(await upload(a, plain, 'g.bin', kept), 'OK');
      assert.equal(await upload(a, plain, 'g.bin', Buffer.from('GLOBAL')), 'EXISTS');
      assert.equal(await upload(a, plain, 'g.bin', Buffer.from('longer')), 'EXISTS');
      assert.equal(codeOf(await once(a, plain, [symlink('g.bin', 'x')], 'MADE')), 'EXISTS');
      assert.ok(readFileSync(path.join(a.out, 'g.bin')).equals(kept));
      assert.deepEqual((await get(a, plain, 'g.bin')).data, kept);
      assert.equal(await list(a, nodl), 'NOT_ALLOWED');
      assert.equal(codeOf(await get(a, nodl, 'g.bin')), 'NOT_ALLOWED');
    });

    test('anonymous clients, unlisted keys and keys from elsewhere than their from= are refused alike', async () => {
      assert.equal(await refusal(a, undefined), 'AUTH_REFUSED');
      const refusedUnlisted = await refusalMessage(a, identity());
      const refusedElsewhere = await refusalMessage(a, elsewhere);
      assert.equal(refusedElsewhere.code, 'AUTH_REFUSED');
      // One message for both but for the key's own fingerprint: no oracle for which keys are listed.
      assert.equal(refusedElsewhere.message.replace(/SHA256:\S+/, 'K'), refusedUnlisted.message.replace(/SHA256:\S+/, 'K'));
      assert.equal(await refusal(a, here), 'none');
      assert.equal(await upload(a, here, 'from-here.bin', Buffer.from('here')), 'OK');
    });

    test('SIGHUP: new connections get the new options, open ones keep theirs; a bad file changes nothing', async () => {
      const old = await connect(a, moved);
      writeFileSync(keys.file, `${lines('namespace="second",no-download').join('\n')}\n`);
      const reloads = (): number => logLines(a.daemon).filter((l) => l.event === 'reload' || l.event === 'reload_failed').length;
      const before = reloads();
      a.daemon.proc.kill('SIGHUP');
      assert.ok(await waitUntil(() => reloads() > before, 5000), 'reload logged');
      assert.equal(await upload(a, moved, 'r.bin', Buffer.from('new')), 'OK');
      assert.equal(await list(a, moved), 'NOT_ALLOWED', 'the new no-download');
      const onOld = await exchange(old, [{ type: 'LIST', prefix: '' }], 'LIST_END');
      assert.ok(onOld.ok, 'the open connection keeps its download right');
      const data = Buffer.from('old');
      const opened = await exchange(old, [{ type: 'OPEN', name: 'r.bin', size: data.length, mtime: MTIME, mode: 0o644 }], 'OPEN_OK');
      assert.ok(opened.ok);
      await old.sendData(data);
      assert.equal(codeOf(await exchange(old, [{ type: 'END', sha256: sha256(data) }], 'DONE')), 'OK');
      old.destroy();
      assert.equal(readFileSync(path.join(a.out, 'second/r.bin'), 'utf8'), 'new');
      assert.equal(readFileSync(path.join(a.out, 'first/r.bin'), 'utf8'), 'old');
      // A file that does not parse: logged, and the last good one stays in force.
      writeFileSync(keys.file, `${lines('namespace="third",bogus').join('\n')}\n`);
      const failedBefore = logLines(a.daemon).filter((l) => l.event === 'reload_failed').length;
      a.daemon.proc.kill('SIGHUP');
      assert.ok(await waitUntil(() => logLines(a.daemon).filter((l) => l.event === 'reload_failed').length > failedBefore, 5000));
      const failed = logLines(a.daemon).filter((l) => l.event === 'reload_failed').at(-1);
      assert.match(String(failed?.['error']), /authorized_keys:3: unknown option "bogus"/);
      assert.equal(await upload(a, moved, 'r2.bin', Buffer.from('still second')), 'OK');
      assert.ok(existsSync(path.join(a.out, 'second/r2.bin')));
      assert.equal(existsSync(path.join(a.out, 'third')), false);
    });
  });
});
