// Conformance cases of §9.13 (ranged uploads): ranges on separate connections, then the OPEN … END
// that publishes the file verified whole; a cut range resumed from its own durable end; and the
// claims a server refuses (BAD_RANGE), DATA outside the range and an early RANGE_END (BAD_OFFSET).
// A server whose storage takes no ranges answers every RANGE NOT_ALLOWED: the cases accept that.
import { MIN_RANGE_BYTES } from '../../src/proto/limits.js';
import { describeFrame, ending, nextFrame, open, RawClient, ready, sha256, until, type RunContext } from './client.js';
import type { ConformanceCase } from './cases.js';

const MTIME = 1_700_000_000_000;
const MODE = 0o644;
/** What a server without ranged storage answers (§9.13). */
const NOT_ALLOWED = 'ERROR NOT_ALLOWED';

const patterned = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 29 + seed) & 0xff));

/** RANGE → "RANGE_OK <offset>" or what came instead. */
async function claim(c: RawClient, ctx: RunContext, name: string, size: number, start: number, end: number): Promise<string> {
  await c.send({ type: 'RANGE', name, size, mtime: MTIME, mode: MODE, start, end });
  const f = await nextFrame(c, ctx);
  if (typeof f === 'string') return f;
  if (f.type === 'RANGE_OK') return `RANGE_OK ${f.offset}`;
  return describeFrame(f);
}

/** A whole range on a ready connection: RANGE, DATA from the server's offset, RANGE_END → RANGE_DONE. */
async function sendRange(c: RawClient, ctx: RunContext, name: string, file: Buffer, start: number, end: number): Promise<string> {
  const got = await claim(c, ctx, name, file.length, start, end);
  if (!got.startsWith('RANGE_OK ')) return got;
  const offset = Number(got.slice('RANGE_OK '.length));
  if (offset < start || offset > end) return `RANGE_OK offset ${offset} outside [${start}, ${end})`;
  await c.sendData(file.subarray(0, end), offset, 256 * 1024);
  await c.send({ type: 'RANGE_END', end });
  const done = await until(c, ctx, 'RANGE_DONE');
  return done.type === 'RANGE_DONE' && done.end === end ? 'RANGE_DONE' : `RANGE_DONE ${done.type === 'RANGE_DONE' ? done.end : done.type}`;
}

/** OPEN … END of the whole file after its ranges (§9.13 step 4): "DONE matches" or what came. */
async function publish(c: RawClient, ctx: RunContext, name: string, file: Buffer): Promise<string> {
  const offset = await open(c, ctx, name, file.length);
  await c.sendData(file, offset, 256 * 1024);
  await c.send({ type: 'END', sha256: sha256(file) });
  const done = await until(c, ctx, 'DONE');
  return done.type === 'DONE' && done.sha256.equals(sha256(file)) && done.size === file.length ? `OPEN_OK ${offset === file.length ? 'size' : offset}, DONE matches` : 'DONE differs';
}

/**
 * Range [0, MIN_RANGE_BYTES) of `file` claimed on a connection of its own, 300,000 bytes of it sent
 * (a PING's PONG says they were read), and the connection cut: null, or what went wrong.
 */
async function cutFirstRange(ctx: RunContext, name: string, file: Buffer): Promise<string | null> {
  const first = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
  try {
    await ready(first, ctx);
    const got = await claim(first, ctx, name, file.length, 0, MIN_RANGE_BYTES);
    if (got !== 'RANGE_OK 0') return got;
    await first.sendData(file.subarray(0, 300_000), 0, 100_000);
    await first.send({ type: 'PING', seq: 9 });
    await until(first, ctx, 'PONG');
    return null;
  } finally {
    first.destroy();
  }
}

/**
 * Range [0, MIN_RANGE_BYTES) of `file` cut off on another connection after 300,000 bytes, then
 * resumed on `c` with DATA from 0 right behind RANGE (1.12): `eagerBytes` of it before RANGE_OK is
 * read, then on from RANGE_OK's offset if that is further, else on in order; then the rest of the
 * file as a second range, and the publishing OPEN … END.
 */
async function resumeEagerly(c: RawClient, ctx: RunContext, name: string, file: Buffer, eagerBytes: number): Promise<string> {
  const cut = await cutFirstRange(ctx, name, file);
  if (cut !== null) return cut;
  await ready(c, ctx);
  await c.send({ type: 'RANGE', name, size: file.length, mtime: MTIME, mode: MODE, start: 0, end: MIN_RANGE_BYTES });
  await c.sendData(file.subarray(0, eagerBytes), 0, 64 * 1024);
  const ok = await nextFrame(c, ctx);
  if (typeof ok === 'string') return ok;
  if (ok.type !== 'RANGE_OK') return describeFrame(ok);
  if (ok.offset > 300_000) return `resumed at ${ok.offset}, beyond the 300000 bytes sent`;
  await c.sendData(file.subarray(0, MIN_RANGE_BYTES), Math.max(ok.offset, eagerBytes), 256 * 1024);
  await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
  const done = await until(c, ctx, 'RANGE_DONE');
  if (done.type !== 'RANGE_DONE' || done.end !== MIN_RANGE_BYTES) return describeFrame(done);
  const rest = await sendRange(c, ctx, name, file, MIN_RANGE_BYTES, file.length);
  return `resumed, ${rest}, ${await publish(c, ctx, name, file)}`;
}

function refusalCase(name: string, expect: string, run: (c: RawClient, ctx: RunContext, file: string) => Promise<string>): ConformanceCase {
  return {
    section: '§9.13',
    name,
    expect: [expect, NOT_ALLOWED],
    run: async (c, ctx) => {
      await ready(c, ctx);
      return run(c, ctx, `${ctx.prefix}/ranges/${name.replace(/[^a-z]+/g, '-')}.bin`);
    },
  };
}

export function rangeCases(): ConformanceCase[] {
  const size = 2 * MIN_RANGE_BYTES + 1000;
  return [
    {
      section: '§9.13',
      name: 'two ranges on two connections, then OPEN … END publishes the file verified whole',
      expect: ['RANGE_DONE, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: async (c, ctx) => {
        const file = patterned(size, 3);
        const name = `${ctx.prefix}/ranges/two.bin`;
        const other = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
        try {
          await ready(c, ctx);
          await ready(other, ctx);
          // The second range first, on the other connection: ranges arrive in any order.
          const [second, first] = await Promise.all([sendRange(other, ctx, name, file, MIN_RANGE_BYTES, size), sendRange(c, ctx, name, file, 0, MIN_RANGE_BYTES)]);
          if (second !== 'RANGE_DONE' || first !== 'RANGE_DONE') return [second, first].find((x) => x !== 'RANGE_DONE') ?? '';
          return `${second}, ${first}, ${await publish(c, ctx, name, file)}`;
        } finally {
          other.destroy();
        }
      },
    },
    {
      section: '§9.13',
      name: 'a range cut off resumes from no further than was sent, on a new connection, and the file publishes',
      expect: ['resumed, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: async (c, ctx) => {
        const file = patterned(size, 4);
        const name = `${ctx.prefix}/ranges/resume.bin`;
        const cut = await cutFirstRange(ctx, name, file);
        if (cut !== null) return cut;
        await ready(c, ctx);
        const again = await claim(c, ctx, name, file.length, 0, MIN_RANGE_BYTES);
        const offset = Number(again.replace('RANGE_OK ', ''));
        if (!again.startsWith('RANGE_OK ') || offset > 300_000) return `resume: ${again}`;
        await c.sendData(file.subarray(0, MIN_RANGE_BYTES), offset, 256 * 1024);
        await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
        await until(c, ctx, 'RANGE_DONE');
        const rest = await sendRange(c, ctx, name, file, MIN_RANGE_BYTES, size);
        return `resumed, ${rest}, ${await publish(c, ctx, name, file)}`;
      },
    },
    {
      section: '§9.13',
      name: 'a RANGE chained right after RANGE_END is answered after its RANGE_DONE (1.10), and the file publishes',
      expect: ['RANGE_DONE 1048576, RANGE_OK 1048576, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: async (c, ctx) => {
        const file = patterned(size, 5);
        const name = `${ctx.prefix}/ranges/chained.bin`;
        await ready(c, ctx);
        const got = await claim(c, ctx, name, file.length, 0, MIN_RANGE_BYTES);
        if (got !== 'RANGE_OK 0') return got;
        await c.sendData(file.subarray(0, MIN_RANGE_BYTES), 0, 256 * 1024);
        await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
        await c.send({ type: 'RANGE', name, size: file.length, mtime: MTIME, mode: MODE, start: MIN_RANGE_BYTES, end: size });
        const answers: string[] = [];
        while (answers.length < 2) {
          const f = await nextFrame(c, ctx);
          if (typeof f === 'string') return [...answers, f].join(', ');
          if (f.type === 'ACK' || f.type === 'PONG') continue;
          answers.push(f.type === 'RANGE_DONE' ? `RANGE_DONE ${f.end}` : f.type === 'RANGE_OK' ? `RANGE_OK ${f.offset}` : describeFrame(f));
        }
        if (answers[1] !== `RANGE_OK ${MIN_RANGE_BYTES}`) return answers.join(', ');
        await c.sendData(file.subarray(0, size), MIN_RANGE_BYTES, 256 * 1024);
        await c.send({ type: 'RANGE_END', end: size });
        const done = await until(c, ctx, 'RANGE_DONE');
        if (done.type !== 'RANGE_DONE' || done.end !== size) return `${answers.join(', ')}, ${describeFrame(done)}`;
        return `${answers.join(', ')}, RANGE_DONE, ${await publish(c, ctx, name, file)}`;
      },
    },
    {
      section: '§9.13',
      name: 'DATA right behind RANGE, before RANGE_OK, and behind a chained RANGE, is taken after RANGE_OK (1.12), and the file publishes',
      expect: ['RANGE_OK 0, RANGE_DONE 1048576, RANGE_OK 1048576, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: async (c, ctx) => {
        const file = patterned(size, 6);
        const name = `${ctx.prefix}/ranges/eager.bin`;
        await ready(c, ctx);
        await c.send({ type: 'RANGE', name, size: file.length, mtime: MTIME, mode: MODE, start: 0, end: MIN_RANGE_BYTES });
        await c.sendData(file.subarray(0, MIN_RANGE_BYTES), 0, 256 * 1024);
        const answers: string[] = [];
        const answer = async (): Promise<string | undefined> => {
          for (;;) {
            const f = await nextFrame(c, ctx);
            if (typeof f === 'string') return [...answers, f].join(', ');
            if (f.type === 'ACK' || f.type === 'PONG') continue;
            answers.push(f.type === 'RANGE_DONE' ? `RANGE_DONE ${f.end}` : f.type === 'RANGE_OK' ? `RANGE_OK ${f.offset}` : describeFrame(f));
            return undefined;
          }
        };
        const failed = await answer();
        if (failed !== undefined) return failed;
        if (answers[0] !== 'RANGE_OK 0') return answers.join(', ');
        await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
        // The next range chained, and its DATA behind it, all before RANGE_DONE and RANGE_OK.
        await c.send({ type: 'RANGE', name, size: file.length, mtime: MTIME, mode: MODE, start: MIN_RANGE_BYTES, end: size });
        await c.sendData(file.subarray(0, size), MIN_RANGE_BYTES, 256 * 1024);
        while (answers.length < 3) {
          const more = await answer();
          if (more !== undefined) return more;
        }
        if (answers[2] !== `RANGE_OK ${MIN_RANGE_BYTES}`) return answers.join(', ');
        await c.send({ type: 'RANGE_END', end: size });
        const done = await until(c, ctx, 'RANGE_DONE');
        if (done.type !== 'RANGE_DONE' || done.end !== size) return `${answers.join(', ')}, ${describeFrame(done)}`;
        return `${answers.join(', ')}, RANGE_DONE, ${await publish(c, ctx, name, file)}`;
      },
    },
    {
      section: '§9.13',
      name: 'a range resumed with DATA from its start before RANGE_OK: the bytes held are skipped, a DATA at RANGE_OK\'s offset goes on (1.12)',
      expect: ['resumed, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: (c, ctx) => resumeEagerly(c, ctx, `${ctx.prefix}/ranges/eager-jump.bin`, patterned(size, 7), 100_000),
    },
    {
      section: '§9.13',
      name: 'a range resumed with DATA from its start before RANGE_OK, past what the server holds: written from RANGE_OK\'s offset on (1.12)',
      expect: ['resumed, RANGE_DONE, OPEN_OK size, DONE matches', NOT_ALLOWED],
      run: (c, ctx) => resumeEagerly(c, ctx, `${ctx.prefix}/ranges/eager-across.bin`, patterned(size, 8), 400_000),
    },
    refusalCase('a RANGE chained after an early RANGE_END is never carried out: BAD_OFFSET, closed', 'ERROR BAD_OFFSET', async (c, ctx, name) => {
      const got = await claim(c, ctx, name, size, 0, MIN_RANGE_BYTES);
      if (got !== 'RANGE_OK 0') return got;
      await c.sendData(patterned(1000, 1), 0);
      await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
      await c.send({ type: 'RANGE', name, size, mtime: MTIME, mode: MODE, start: MIN_RANGE_BYTES, end: size });
      return ending(c, ctx);
    }),
    refusalCase('a range beyond the size is BAD_RANGE', 'ERROR BAD_RANGE', (c, ctx, name) => claim(c, ctx, name, size, 0, size + 1)),
    refusalCase('an empty range is BAD_RANGE', 'ERROR BAD_RANGE', (c, ctx, name) => claim(c, ctx, name, size, 5, 5)),
    refusalCase('a range shorter than MIN_RANGE_BYTES that does not end the file is BAD_RANGE', 'ERROR BAD_RANGE', (c, ctx, name) => claim(c, ctx, name, size, 0, 1000)),
    refusalCase('a range overlapping another range of the upload is BAD_RANGE', 'ERROR BAD_RANGE', async (c, ctx, name) => {
      const got = await claim(c, ctx, name, size, 0, MIN_RANGE_BYTES);
      if (got !== 'RANGE_OK 0') return got;
      const other = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
      try {
        await ready(other, ctx);
        return await claim(other, ctx, name, size, MIN_RANGE_BYTES - 1, size);
      } finally {
        other.destroy();
      }
    }),
    refusalCase('DATA outside the claimed range is BAD_OFFSET', 'ERROR BAD_OFFSET', async (c, ctx, name) => {
      const got = await claim(c, ctx, name, size, MIN_RANGE_BYTES, size);
      if (got !== `RANGE_OK ${MIN_RANGE_BYTES}`) return got;
      await c.sendData(patterned(MIN_RANGE_BYTES + 10, 1), MIN_RANGE_BYTES - 10, 64);
      return ending(c, ctx);
    }),
    refusalCase('RANGE_END before the end of the range is BAD_OFFSET', 'ERROR BAD_OFFSET', async (c, ctx, name) => {
      const got = await claim(c, ctx, name, size, 0, MIN_RANGE_BYTES);
      if (got !== 'RANGE_OK 0') return got;
      await c.sendData(patterned(1000, 1), 0);
      await c.send({ type: 'RANGE_END', end: MIN_RANGE_BYTES });
      return ending(c, ctx);
    }),
  ];
}
