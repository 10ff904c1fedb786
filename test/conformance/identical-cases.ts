// Conformance cases of §9.1 "Identical files": an OPEN that carries the file's SHA-256 for a name
// the server published from a verified upload, with the same size, mtime and mode, is answered
// DONE at once (no DATA, nothing written); any difference gets OPEN_OK and the upload goes on.
import { nextFrame, open, ready, sha256, until, type RawClient, type RunContext } from './client.js';
import type { ConformanceCase } from './cases.js';

/** The mtime and mode client.ts open() sends. */
const MTIME = 1_700_000_000_000;
const MODE = 0o644;

/** Uploads `data` as `name` (OPEN_OK at 0 expected), back in Ready. */
async function put(c: RawClient, ctx: RunContext, name: string, data: Buffer): Promise<void> {
  await open(c, ctx, name, data.length);
  await c.sendData(data, 0, 64 * 1024);
  await c.send({ type: 'END', sha256: sha256(data) });
  await until(c, ctx, 'DONE');
}

/** What an OPEN with `sha256` gets: "DONE matches", "OPEN_OK <offset>", or what came instead. */
async function offer(c: RawClient, ctx: RunContext, open: { name: string; size: number; mtime: number; mode: number; sha256: Buffer }, data: Buffer): Promise<string> {
  await c.send({ type: 'OPEN', ...open });
  const f = await nextFrame(c, ctx);
  if (typeof f === 'string') return f;
  if (f.type === 'OPEN_OK') return `OPEN_OK ${f.offset}`;
  if (f.type !== 'DONE') return f.type;
  return f.size === data.length && f.sha256.equals(sha256(data)) ? 'DONE matches' : 'DONE differs';
}

function identicalCase(name: string, expect: string, change: (o: { size: number; mtime: number; mode: number; sha256: Buffer }) => { size: number; mtime: number; mode: number; sha256: Buffer }): ConformanceCase {
  return {
    section: '§9.1',
    name,
    expect: [expect],
    run: async (c, ctx) => {
      const data = Buffer.from(`identical ${name}`);
      const stored = `${ctx.prefix}/identical/${name.replace(/[^a-z]+/g, '-')}.bin`;
      await ready(c, ctx);
      await put(c, ctx, stored, data);
      const first = await offer(c, ctx, { name: stored, ...change({ size: data.length, mtime: MTIME, mode: MODE, sha256: sha256(data) }) }, data);
      if (first !== 'DONE matches') return first;
      // Back in Ready after DONE: the connection goes on (a PING is answered).
      await c.send({ type: 'PING', seq: 5 });
      const pong = await nextFrame(c, ctx);
      return typeof pong === 'string' ? pong : pong.type === 'PONG' ? 'DONE matches; PONG' : pong.type;
    },
  };
}

export function identicalCases(): ConformanceCase[] {
  return [
    identicalCase('an OPEN with the SHA-256, size, mtime and mode of the file held is answered DONE at once', 'DONE matches; PONG', (o) => o),
    identicalCase('an OPEN with another SHA-256 gets OPEN_OK', 'OPEN_OK 0', (o) => ({ ...o, sha256: sha256(Buffer.from('other')) })),
    identicalCase('an OPEN with the same bytes and another mtime gets OPEN_OK', 'OPEN_OK 0', (o) => ({ ...o, mtime: o.mtime + 1000 })),
  ];
}
