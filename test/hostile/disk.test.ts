// Hostile clients against a real stx-recv, part 7: what an upload makes the daemon hold or do on
// disk (issue 14, items 4, 5 and 8). Deep names that made it create thousands of directories at
// OPEN (§9.3); partials that anonymous clients leave behind to fill the disk, and re-OPENs that
// keep them alive (§9.2, §9.5); read-backs a client asks for over and over (§9.7).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { partials, startArena, tree, waitUntil, type Arena } from './harness.js';
import { makeFile, readJsonLine, sha256File } from '../support/procs.js';
import { codeFromWire } from '../../src/proto/errors.js';
import { decodeRecordFile } from '../../src/storage/local/record.js';
import { READ_BACK_BURST_BYTES, READ_BACK_BYTES_PER_SECOND } from '../../src/recv/config.js';
import { HandshakeRefused, RawClient, sha256 } from './raw-client.js';

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks / 100;
}

/** Directories of the published tree (outside the reserved .stx). */
function publishedDirs(arena: Arena): string[] {
  return tree(arena.out, ['.stx']).filter((p) => p.endsWith('/'));
}

/** A raw connection to the daemon from `localAddress` (another loopback address is another client). */
async function connectFrom(port: number, localAddress: string): Promise<RawClient> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.removeAllListeners('error');
  return RawClient.adopt(socket);
}

/** One anonymous connection that sends OPEN and returns OPEN_OK's offset or the error code. */
async function openOnce(arena: Arena, name: string, size: number, from = '127.0.0.1'): Promise<{ client: RawClient; result: number | string }> {
  const client = await connectFrom(arena.daemon.port, from);
  assert.ok(await client.handshake());
  try {
    return { client, result: await client.open(name, size) };
  } catch (err) {
    if (err instanceof HandshakeRefused) return { client, result: err.outcome.code };
    throw err;
  }
}

/** The names in the daemon's partial records. */
function recordedNames(): string[] {
  const dir = path.join(arena.out, '.stx', 'partials');
  return readdirSync(dir)
    .filter((e) => e.endsWith('.json'))
    .map((e) => {
      const record: unknown = decodeRecordFile(readFileSync(path.join(dir, e)));
      return typeof record === 'object' && record !== null && 'name' in record ? String(record.name) : '?';
    });
}

/** DATA from `offset`, END, then what the server answers: 'DONE' or the error code. */
async function sendRest(client: RawClient, data: Buffer, offset: number): Promise<string> {
  await client.sendData(data, offset);
  await client.send({ type: 'END', sha256: sha256(data) });
  for (let i = 0; i < 10_000; i++) {
    const got = await client.next(30_000);
    if (got.kind === 'frame' && (got.frame.type === 'ACK' || got.frame.type === 'PROGRESS')) continue;
    if (got.kind === 'frame' && got.frame.type === 'DONE') return 'DONE';
    if (got.kind === 'frame' && got.frame.type === 'ERROR') return codeFromWire(got.frame.code) ?? `#${got.frame.code}`;
    return got.kind;
  }
  return 'too many frames';
}

const MiB = 1024 * 1024;
/** --max-partial-bytes of the daemon under test. */
const CAP = 64 * MiB;

// One daemon for every suite (starting one costs seconds): append-only, for the re-sends of the
// read-back suite, which the other suites do not mind (they upload new names only).
let arena: Arena;
before(async () => {
  arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '10s', '--append-only', '--max-partial-bytes', String(CAP)]);
});
after(() => arena.close('after the disk suites'));

describe('directory amplification (§9.3, issue 14 item 5)', () => {
  it('20 OPENs of 64-component names create no directory before publish; publishing one creates its own', async () => {
    const pid = arena.daemon.proc.pid;
    assert.ok(pid !== undefined);
    const cpuBefore = cpuSeconds(pid);
    for (let i = 0; i < 20; i++) {
      const name = [`deep${i}`, ...Array.from({ length: 62 }, (_, j) => String.fromCharCode(97 + (j % 26))), 'f.bin'].join('/');
      const { client, result } = await openOnce(arena, name, 10);
      client.destroy();
      assert.equal(result, 0, `OPEN ${i}`);
    }
    const cpu = cpuSeconds(pid) - cpuBefore;
    const dirs = publishedDirs(arena);
    console.log(`20 OPENs of 64-component names: ${dirs.length} directories in the published tree, daemon CPU ${cpu.toFixed(2)} s`);
    assert.deepEqual(dirs, [], 'no directory before publish');
    const name = ['pub', ...Array.from({ length: 62 }, () => 'p'), 'f.bin'].join('/');
    const { client, result } = await openOnce(arena, name, 4);
    assert.equal(result, 0);
    assert.equal(await sendRest(client, Buffer.from('abcd'), 0), 'DONE');
    client.destroy();
    assert.equal(publishedDirs(arena).length, 63, 'publish makes the name’s 63 directories');
  });

  it('a 2,000-component name is BAD_NAME and creates nothing', async () => {
    const before = publishedDirs(arena).length;
    const { client, result } = await openOnce(arena, `${'x/'.repeat(1999)}f.bin`, 10);
    client.destroy();
    const created = publishedDirs(arena).length - before;
    console.log(`OPEN of a 2,000-component name: ${String(result)}, ${created} directories created`);
    assert.equal(result, 'BAD_NAME');
    assert.equal(created, 0);
  });
});

describe('disk held by partials (§9.5, issue 14 item 4)', () => {
  it('anonymous clients from one address reserve up to the cap, then NO_SPACE; another client still uploads 40 MiB', async () => {
    const attacker = '127.0.0.2';
    const results: (number | string)[] = [];
    // Three partials of 20 MiB (60 of 64 MiB), each left behind after 1 MiB; a fourth would pass the cap.
    for (let i = 0; i < 4; i++) {
      const { client, result } = await openOnce(arena, `held/p${i}.bin`, 20 * MiB, attacker);
      results.push(result);
      if (result === 0) {
        await client.sendData(Buffer.alloc(MiB, i), 0);
        await client.send({ type: 'PING', seq: 1 });
        await client.untilFrame('PONG');
      }
      client.destroy();
    }
    const held = (): string[] => recordedNames().filter((n) => n.startsWith('held/'));
    await waitUntil(() => held().length >= 3 && !partials(arena.out).some((p) => p.endsWith('.tmp')), 5000);
    console.log(`OPENs of 4 × 20 MiB from one address with --max-partial-bytes 64M: ${JSON.stringify(results)}; partials kept: ${held().join(', ')}`);
    assert.deepEqual(results, [0, 0, 0, 'NO_SPACE']);
    // The refused OPEN left nothing: three partials, each a .part and a .json.
    assert.deepEqual(held().sort(), ['held/p0.bin', 'held/p1.bin', 'held/p2.bin']);
    assert.equal(partials(arena.out).length, 2 * recordedNames().length, partials(arena.out).join(' '));
    const file = path.join(arena.src, 'normal-40m.bin');
    const sha = await makeFile(file, 40 * MiB, 44);
    const r = await arena.send(file, ['--as', 'normal/40m.bin']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readJsonLine(r.stdout)['sha256'], sha);
    assert.equal(await sha256File(path.join(arena.out, 'normal', '40m.bin')), sha);
  });

  it('a re-OPEN that sends no data leaves the time the sweep ages the partial by', async () => {
    const name = 'ttl/idle.bin';
    const first = await openOnce(arena, name, 4 * MiB);
    assert.equal(first.result, 0);
    await first.client.sendData(Buffer.alloc(MiB, 7), 0);
    await first.client.send({ type: 'PING', seq: 1 });
    await first.client.untilFrame('PONG');
    first.client.destroy();
    // The one record of this upload (the other suites left theirs in the same directory).
    const records = (): string[] =>
      readdirSync(path.join(arena.out, '.stx', 'partials')).filter((e) => e.endsWith('.json') && readFileSync(path.join(arena.out, '.stx', 'partials', e), 'utf8').includes(`"${name}"`));
    const fieldOf = (field: string): number[] =>
      records().map((e) => {
        const record: unknown = decodeRecordFile(readFileSync(path.join(arena.out, '.stx', 'partials', e)));
        return typeof record === 'object' && record !== null && field in record ? Number((record as Record<string, unknown>)[field]) : -1;
      });
    const updatedOf = (): number[] => fieldOf('updated');
    // The checkpoint at the close records the MiB (on a busy machine later than at once): the
    // time to compare with is that one's.
    assert.ok(await waitUntil(() => fieldOf('durable').join() === String(MiB), 10_000), `the close recorded ${MiB} bytes: ${JSON.stringify(fieldOf('durable'))}`);
    const before = new Set(records());
    const ages = updatedOf();
    // Re-OPEN twice, 30 ms apart, each without a byte of DATA.
    for (let i = 0; i < 2; i++) {
      await waitUntil(() => false, 30);
      const again = await openOnce(arena, name, 4 * MiB);
      assert.equal(again.result, MiB);
      await again.client.send({ type: 'PING', seq: 2 });
      await again.client.untilFrame('PONG');
      again.client.destroy();
    }
    await waitUntil(() => false, 50);
    assert.deepEqual(new Set(records()), before);
    console.log(`partial record 'updated' before and after 2 re-OPENs without data: ${JSON.stringify(ages)} → ${JSON.stringify(updatedOf())}`);
    assert.deepEqual(updatedOf(), ages, 'the sweep time did not move');
  });
});

describe('re-hash amplification (§9.7, issue 14 item 8)', () => {
  const SIZE = 8 * MiB;
  const ATTACK_MS = 2000;

  /** An append-only re-send: OPEN of the stored file, END with `sha`; the answer's code or 'DONE' (or 'cut' at the deadline). */
  async function resend(from: string, name: string, size: number, sha: Buffer, deadline: number): Promise<string> {
    const client = await connectFrom(arena.daemon.port, from);
    try {
      if ((await client.handshake()) === null) return 'no handshake';
      const offset = await client.open(name, size).catch((err: unknown) => (err instanceof HandshakeRefused ? err.outcome.code : 'refused'));
      if (offset !== size) return String(offset);
      await client.send({ type: 'END', sha256: sha });
      for (let i = 0; i < 10_000; i++) {
        const left = deadline - Date.now();
        if (left <= 0) return 'cut';
        const got = await client.next(Math.min(left, 1000));
        if (got.kind === 'timeout') continue;
        if (got.kind !== 'frame') return got.kind;
        if (got.frame.type === 'PROGRESS') continue;
        if (got.frame.type === 'DONE') return 'DONE';
        if (got.frame.type === 'ERROR') return codeFromWire(got.frame.code) ?? `#${got.frame.code}`;
      }
      return 'too many frames';
    } finally {
      client.destroy();
    }
  }

  it("one client re-sending a stored file in a loop is charged its read-backs; another client's re-send still completes", async () => {
    const big = Buffer.alloc(SIZE, 3);
    const mine = Buffer.alloc(4 * MiB, 4);
    // One stored file per loop: one name is one upload at a time (§9.4).
    const stored: [string, Buffer][] = [0, 1, 2, 3].map((i) => [`rb/big-${i}.bin`, big]);
    for (const [name, data] of [...stored, ['rb/mine.bin', mine] as [string, Buffer]]) {
      const c = await RawClient.connect(arena.daemon.port);
      assert.ok(await c.handshake());
      await c.upload(name, data);
      c.destroy();
    }
    const pid = arena.daemon.proc.pid;
    assert.ok(pid !== undefined);
    const cpuBefore = cpuSeconds(pid);
    const started = Date.now();
    const deadline = started + ATTACK_MS;
    const outcomes: string[] = [];
    // Four loops from one address, each re-sending a stored 8 MiB file with a wrong hash: a full read each.
    const attack = stored.map(async ([name]) => {
      for (let i = 0; i < 1000 && Date.now() < deadline; i++) outcomes.push(await resend('127.0.0.3', name, SIZE, Buffer.alloc(32), deadline));
    });
    await new Promise((r) => setTimeout(r, 500));
    const other = await resend('127.0.0.1', 'rb/mine.bin', mine.length, sha256(mine), Date.now() + 30_000);
    await Promise.all(attack);
    const elapsed = (Date.now() - started) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;
    const reads = outcomes.filter((o) => o === 'EXISTS').length;
    const count = (code: string): number => outcomes.filter((o) => o === code).length;
    console.log(
      `read-back attack ${elapsed.toFixed(1)} s: ${outcomes.length} re-sends, ${reads} full reads (${reads * (SIZE / MiB)} MiB re-read), ` +
        `${count("RATE_LIMITED")} RATE_LIMITED, ${count("cut")} still waiting at the end (${JSON.stringify([...new Set(outcomes)])}); daemon CPU ${cpu.toFixed(2)} s; the other client: ${other}`,
    );
    assert.equal(other, 'DONE', "the other client's re-send completes");
    // What the allowance lets through in that time, plus the read in progress when it ran out.
    const allowed = READ_BACK_BURST_BYTES + READ_BACK_BYTES_PER_SECOND * elapsed + SIZE;
    assert.ok(reads * SIZE <= allowed, `${reads * SIZE} bytes re-read for one client, allowance ${allowed}`);
  });
});
