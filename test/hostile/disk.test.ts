// Hostile clients against a real stx-recv, part 7: what an upload makes the daemon hold or do on
// disk (issue 14, items 4, 5 and 8). Deep names that made it create thousands of directories at
// OPEN (§9.3); partials that anonymous clients leave behind to fill the disk, and re-OPENs that
// keep them alive (§9.2, §9.5); read-backs a client asks for over and over (§9.7).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startArena, tree, type Arena } from './harness.js';
import { codeFromWire } from '../../src/proto/errors.js';
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

/** One anonymous connection that sends OPEN and returns OPEN_OK's offset or the error code. */
async function openOnce(arena: Arena, name: string, size: number): Promise<{ client: RawClient; result: number | string }> {
  const client = await RawClient.connect(arena.daemon.port);
  assert.ok(await client.handshake());
  try {
    return { client, result: await client.open(name, size) };
  } catch (err) {
    if (err instanceof HandshakeRefused) return { client, result: err.outcome.code };
    throw err;
  }
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

describe('directory amplification (§9.3, issue 14 item 5)', () => {
  let arena: Arena;
  before(async () => {
    arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '10s']);
  });
  after(() => arena.close('after the directory suite'));

  it('20 OPENs of 64-component names create no directory before publish; publishing one creates its own', async () => {
    const pid = arena.daemon.proc.pid;
    assert.ok(pid !== undefined);
    const cpuBefore = cpuSeconds(pid);
    for (let i = 0; i < 20; i++) {
      const name = [`deep${i}`, ...Array.from({ length: 62 }, (_, j) => String.fromCharCode(97 + (j % 26))), 'f.bin'].join('/');
      const { client, result } = await openOnce(arena, name, 10);
      assert.equal(result, 0, `OPEN ${i}`);
      client.destroy();
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
