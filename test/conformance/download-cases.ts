// Conformance cases of §9.9 (download) and §9.10 (listing), for a server that serves them
// (`npm run conformance -- --downloads`; stx-recv --allow-download). Each uploads what it then
// lists or fetches under the run's prefix.
import type { Frame } from '../../src/proto/frames.js';
import { MAX_DATA_CHUNK_BYTES } from '../../src/proto/limits.js';
import { ending, nextFrame, open, ready, sha256, until, type RawClient, type RunContext } from './client.js';
import type { ConformanceCase } from './cases.js';

const MTIME = 1_700_000_000_000;
/** More than one DATA frame, and more than the offsets the cases resume from. */
const SIZE = MAX_DATA_CHUNK_BYTES + 4321;

function content(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Uploads `file` as `name` on `c` (Ready), back in Ready afterwards (§9.1). */
async function put(c: RawClient, ctx: RunContext, name: string, file: Buffer): Promise<void> {
  await open(c, ctx, name, file.length);
  await c.sendData(file, 0, 64 * 1024);
  await c.send({ type: 'END', sha256: sha256(file) });
  await until(c, ctx, 'DONE');
}

/** GET → GET_OK, DATA in order, GET_END: "GET_OK <offset>, <n> bytes, sha256 matches|differs" or what came instead. */
async function fetch(c: RawClient, ctx: RunContext, get: Extract<Frame, { type: 'GET' }>, file: Buffer): Promise<string> {
  await c.send(get);
  const ok = await nextFrame(c, ctx);
  if (typeof ok === 'string') return ok;
  if (ok.type !== 'GET_OK') return ok.type;
  let at = ok.offset;
  const parts: Buffer[] = [file.subarray(0, ok.offset)];
  for (let i = 0; i <= file.length / 1024 + 4; i++) {
    const f = await nextFrame(c, ctx);
    if (typeof f === 'string') return `GET_OK ${ok.offset}, then ${f}`;
    if (f.type === 'PING') continue;
    if (f.type === 'DATA') {
      if (f.offset !== at) return `DATA at ${f.offset}, expected ${at}`;
      parts.push(Buffer.from(f.data));
      at += f.data.length;
      continue;
    }
    if (f.type !== 'GET_END') return `GET_OK ${ok.offset}, then ${f.type}`;
    const whole = Buffer.concat(parts);
    const matches = f.size === file.length && whole.equals(file) && f.sha256.equals(sha256(file)) && f.size === ok.size && ok.mtime === MTIME;
    return `GET_OK ${ok.offset}, ${at - ok.offset} bytes, ${matches ? 'sha256 matches' : 'sha256 differs'}`;
  }
  return 'no GET_END';
}

function getCase(name: string, expect: string, run: (c: RawClient, ctx: RunContext, file: Buffer, stored: string) => Promise<string>): ConformanceCase {
  return {
    section: '§9.9',
    name,
    expect: [expect],
    run: async (c, ctx) => {
      const file = content(SIZE, name.length);
      const stored = `${ctx.prefix}/get/${name.replace(/[^a-z]+/g, '-')}.bin`;
      await ready(c, ctx);
      await put(c, ctx, stored, file);
      return run(c, ctx, file, stored);
    },
  };
}

export function downloadCases(): ConformanceCase[] {
  const size = SIZE;
  return [
    getCase('an uploaded file comes back whole', `GET_OK 0, ${size} bytes, sha256 matches`, (c, ctx, file, stored) => fetch(c, ctx, { type: 'GET', name: stored, offset: 0 }, file)),
    getCase('GET from an offset of the same version sends the rest; GET_END hashes the whole file', `GET_OK 1000000, ${size - 1_000_000} bytes, sha256 matches`, (c, ctx, file, stored) =>
      fetch(c, ctx, { type: 'GET', name: stored, offset: 1_000_000, size: file.length, mtime: MTIME }, file),
    ),
    getCase('GET from an offset of another version starts at 0', `GET_OK 0, ${size} bytes, sha256 matches`, (c, ctx, file, stored) =>
      fetch(c, ctx, { type: 'GET', name: stored, offset: 1_000_000, size: file.length, mtime: MTIME + 1 }, file),
    ),
    getCase('GET beyond the size of the same version is BAD_OFFSET', 'ERROR BAD_OFFSET', async (c, ctx, file, stored) => {
      await c.send({ type: 'GET', name: stored, offset: file.length + 1, size: file.length, mtime: MTIME });
      return ending(c, ctx);
    }),
    getCase('two downloads and an upload on one connection', `GET_OK 0, ${size} bytes, sha256 matches; DONE`, async (c, ctx, file, stored) => {
      const first = await fetch(c, ctx, { type: 'GET', name: stored, offset: 0 }, file);
      const second = await fetch(c, ctx, { type: 'GET', name: stored, offset: 0 }, file);
      if (first !== second) return `${first} / ${second}`;
      await put(c, ctx, `${stored}.again`, file.subarray(0, 10));
      return `${first}; DONE`;
    }),
    ...['.stx/partials/0000000000000000000000000000000000000000000000000000000000000000.part', '../etc/passwd', '/etc/passwd', 'a//b', '.STX/x'].map(
      (name): ConformanceCase => ({
        section: '§9.9',
        name: `GET of ${JSON.stringify(name)} is BAD_NAME`,
        expect: ['ERROR BAD_NAME'],
        run: async (c, ctx) => {
          await ready(c, ctx);
          await c.send({ type: 'GET', name, offset: 0 });
          return ending(c, ctx);
        },
      }),
    ),
    {
      section: '§9.9',
      name: 'GET of an absent name is NOT_FOUND',
      expect: ['ERROR NOT_FOUND'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'GET', name: `${ctx.prefix}/absent/never.bin`, offset: 0 });
        return ending(c, ctx);
      },
    },
    {
      section: '§9.9',
      name: 'GET of a directory is NOT_FOUND',
      expect: ['ERROR NOT_FOUND'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await put(c, ctx, `${ctx.prefix}/dir/inside.bin`, Buffer.from('x'));
        await c.send({ type: 'GET', name: `${ctx.prefix}/dir`, offset: 0 });
        return ending(c, ctx);
      },
    },
    {
      section: '§9.10',
      name: 'LIST of a prefix gives the directory itself, then its files and directories in listing order (component by component), then LIST_END with their count',
      expect: ['./, a/, a/b/, a/b/c.bin 2, a/b-c.bin 3, a/b.bin 1; LIST_END 6'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const base = `${ctx.prefix}/list`;
        for (const [n, size] of [['a/b-c.bin', 3], ['a/b/c.bin', 2], ['a/b.bin', 1]] as const) await put(c, ctx, `${base}/${n}`, Buffer.alloc(size, 1));
        await c.send({ type: 'LIST', prefix: base });
        const seen: string[] = [];
        for (let i = 0; i < 12; i++) {
          const f = await nextFrame(c, ctx);
          if (typeof f === 'string') return f;
          if (f.type === 'LIST_ENTRY') seen.push(`${f.name.slice(base.length + 1)} ${f.size}`);
          else if (f.type === 'LIST_DIR') seen.push(`${f.name === base ? '.' : f.name.slice(base.length + 1)}/`);
          else if (f.type === 'LIST_END') return `${seen.join(', ')}; LIST_END ${f.count}`;
          else return f.type;
        }
        return 'no LIST_END';
      },
    },
    {
      section: '§9.10',
      name: 'LIST gives directories (an empty one too) as LIST_DIR before their contents, and the SHA-256 of a file uploaded whole',
      expect: ['d/, d/e/, d/f.bin 3 sha256 matches; LIST_END 3'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const base = `${ctx.prefix}/dirs`;
        const file = Buffer.from('abc');
        await put(c, ctx, `${base}/d/f.bin`, file);
        await c.send({ type: 'MKDIR', name: `${base}/d/e`, mtime: MTIME, mode: 0o700 });
        await until(c, ctx, 'MADE');
        await c.send({ type: 'MKDIR', name: `${base}/d`, mtime: MTIME, mode: 0o755 });
        await until(c, ctx, 'MADE');
        await c.send({ type: 'LIST', prefix: `${base}/d` });
        const seen: string[] = [];
        for (let i = 0; i < 10; i++) {
          const f = await nextFrame(c, ctx);
          if (typeof f === 'string') return f;
          if (f.type === 'LIST_DIR') seen.push(`${f.name.slice(base.length + 1)}/`);
          else if (f.type === 'LIST_ENTRY') seen.push(`${f.name.slice(base.length + 1)} ${f.size} sha256 ${f.sha256?.equals(sha256(file)) === true ? 'matches' : 'missing or differs'}`);
          else if (f.type === 'LIST_END') return `${seen.join(', ')}; LIST_END ${f.count}`;
          else return f.type;
        }
        return 'no LIST_END';
      },
    },
    {
      section: '§9.10',
      name: 'LIST of a prefix that names nothing is LIST_END 0',
      expect: ['LIST_END 0'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'LIST', prefix: `${ctx.prefix}/nothing/here` });
        const f = await nextFrame(c, ctx);
        return typeof f === 'string' ? f : f.type === 'LIST_END' ? `LIST_END ${f.count}` : f.type;
      },
    },
    {
      section: '§9.10',
      name: 'LIST of the reserved prefix is BAD_NAME',
      expect: ['ERROR BAD_NAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'LIST', prefix: '.stx' });
        return ending(c, ctx);
      },
    },
  ];
}
