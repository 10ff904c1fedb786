// The conformance cases (spec/PROTOCOL.md §14): the spec's frame vectors (§12) and state tables
// (§11.1) turned into exchanges with a live server, plus one case per rule of the text that a
// server shows on the wire. Each case names its section and the observations that pass; it runs
// on a fresh connection.
import { constants, createHmac, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { ClientHandshake, type ClientKeys } from '../../src/crypto/client-handshake.js';
import { encodeBody, encodeFrame } from '../../src/proto/codec.js';
import { FRAME_TYPES, type FrameName } from '../../src/proto/frames.js';
import { packFrame } from '../../src/proto/pack.js';
import { MAX_CONTROL_RECORD_LENGTH_BYTES, MAX_DATA_CHUNK_BYTES, MAX_NAME_COMPONENTS, MAX_RECORD_LENGTH_BYTES } from '../../src/proto/limits.js';
import { encodePreamble } from '../../src/proto/preamble.js';
import type { ServerState } from '../../src/proto/states.js';
import { refMoves } from '../fuzz/reference-machine.js';
import { jsonToValue } from '../support/json-frames.js';
import { field, str, vectorFiles } from '../support/vectors.js';
import { dataBody, lengthPrefix, sampleFrame, withLength } from '../hostile/raw-client.js';
import { downloadCases } from './download-cases.js';
import { identicalCases } from './identical-cases.js';
import { rangeCases } from './range-cases.js';
import { resumeCases } from './resume-cases.js';
import { describeFrame, describeOutcome, ending, nextEvent, nextFrame, open, partial, RawClient, ready, sha256, until, type RunContext } from './client.js';

export interface ConformanceCase {
  /** The spec section the case checks, as "§9.1". */
  readonly section: string;
  readonly name: string;
  /** Observations (client.ts strings) any of which passes. */
  readonly expect: readonly string[];
  readonly run: (c: RawClient, ctx: RunContext) => Promise<string>;
}

/**
 * What a valid OPEN may get besides OPEN_OK: a policy refusal (§9.5), or BUSY while the server
 * still holds the final name for the previous case's connection (§9.4). Never MALFORMED_FRAME.
 */
const OPEN_REFUSALS = ['ERROR NO_SPACE', 'ERROR TOO_LARGE', 'ERROR EXISTS', 'ERROR BUSY'];
/** What a valid MKDIR or SYMLINK may get (§9.8): MADE, or a refusal for what is there already. */
const MAKE_ANSWERS = ['MADE', 'ERROR EXISTS'];
/** What a valid PUT followed at once by END may get (§9.11): its answer, or BAD_OFFSET for an END before `size` bytes. */
/** What a valid RANGE may get (§9.13): RANGE_OK, a refusal as OPEN's, or no ranges at all on this server. */
const RANGE_ANSWERS = ['RANGE_OK', ...OPEN_REFUSALS, 'ERROR BAD_RANGE', 'ERROR TOO_MANY_STREAMS', 'ERROR NOT_ALLOWED'];
const PUT_ANSWERS = ['PUT_DONE', 'PUT_FAILED EXISTS', 'PUT_FAILED NO_SPACE', 'PUT_FAILED TOO_LARGE', 'PUT_FAILED BUSY', 'ERROR BAD_OFFSET'];


/** OAEP without the H_sh label (§7.1): what an implementation that forgot the label sends. */
function oaepWithEmptyLabel(key: KeyObject, secret: Buffer): Buffer {
  return publicEncrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
}

/** The right CLIENT_FINISHED.verify (§7.3), for cases that break only the identity. */
function finishedVerify(keys: ClientKeys): Buffer {
  return createHmac('sha256', keys.keys.cFinishedKey).update(keys.transcriptHash).digest();
}


// ---- §3 preamble --------------------------------------------------------------------------------

/** Sends `bytes`, then reads the server's preamble (which must state version 1, §3) and the end. */
function preambleCase(name: string, bytes: Buffer, expect: string): ConformanceCase {
  return {
    section: '§3',
    name,
    expect: [`v1, ${expect}`],
    run: async (c, ctx) => {
      await c.write(bytes);
      const p = await c.readPreamble(ctx.waitMs);
      if (p === null) return `no preamble, ${await ending(c, ctx)}`;
      const v = p.subarray(0, 4).equals(encodePreamble().subarray(0, 4)) ? `v${p.readUInt16BE(4)}` : `preamble ${p.toString('hex')}`;
      return `${v}, ${await ending(c, ctx)}`;
    },
  };
}

function preambleCases(): ConformanceCase[] {
  return [
    preambleCase('wrong magic', Buffer.from('5354590000010000', 'hex'), 'ERROR BAD_PREAMBLE'),
    preambleCase('reserved bits set', Buffer.from('5354580000010001', 'hex'), 'ERROR BAD_PREAMBLE'),
    preambleCase('an HTTP request', Buffer.from('GET / HTTP/1.1\r\n\r\n'), 'ERROR BAD_PREAMBLE'),
    preambleCase('version 0: no common version', encodePreamble(0), 'ERROR VERSION_UNSUPPORTED'),
    {
      section: '§3',
      name: 'a client stating version 7 offers 1..7: the server selects 1 and goes on',
      expect: ['v1, SERVER_HELLO'],
      run: async (c, ctx) => {
        await c.write(encodePreamble(7), new ClientHandshake().clientHello());
        const p = await c.readPreamble(ctx.waitMs);
        return `${p === null ? 'no preamble' : `v${p.readUInt16BE(4)}`}, ${await nextEvent(c, ctx)}`;
      },
    },
  ];
}

// ---- §12 vectors --------------------------------------------------------------------------------

/** frames-invalid.json: "stream" vectors after the preamble then FIN; "body" vectors as a record in Ready. */
function invalidVectorCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  for (const { file, vectors } of vectorFiles('frames-invalid')) {
    for (const v of vectors) {
      const bytes = Buffer.from(str(v, 'hex'), 'hex');
      const error = str(v, 'error');
      const name = `${file}: ${str(v, 'name')}`;
      if (str(v, 'phase') === 'stream') {
        cases.push({
          section: '§2',
          name: `${name} (plaintext, then FIN)`,
          expect: [`ERROR ${error}`],
          run: async (c, ctx) => {
            await c.write(encodePreamble(), bytes);
            c.end();
            return (await c.readPreamble(ctx.waitMs)) === null ? 'no preamble' : ending(c, ctx);
          },
        });
      } else {
        cases.push({
          section: bytes.length > 0 && bytes[0] === FRAME_TYPES.DATA ? '§2.2' : '§2.1',
          // An empty body cannot be sealed; its record is 16 bytes, below MIN_RECORD_LENGTH (§8).
          name: bytes.length === 0 ? `${name} (a 16-byte record)` : `${name} (as a record in Ready)`,
          expect: [`ERROR ${error}`],
          run: async (c, ctx) => {
            await ready(c, ctx);
            await c.write(bytes.length === 0 ? Buffer.concat([lengthPrefix(16), Buffer.alloc(16)]) : c.seal(bytes));
            return ending(c, ctx);
          },
        });
      }
    }
  }
  return cases;
}

/**
 * A valid frame sent in Ready proves the server decodes it: PING gets PONG, PONG is ignored, OPEN
 * is accepted or refused for policy, ERROR closes, anything else is UNEXPECTED_FRAME — never
 * MALFORMED_FRAME.
 */
function validFrameCase(section: string, name: string, body: Buffer, frame: unknown): ConformanceCase {
  const type = typeof frame === 'object' && frame !== null && 'type' in frame ? String(frame.type) : '?';
  const seq = typeof frame === 'object' && frame !== null && 'seq' in frame ? String(frame.seq) : '?';
  const expect =
    type === 'PING'
      ? [`PONG seq=${seq}`]
      : type === 'PONG'
        ? ['PONG seq=424242']
        : type === 'ERROR'
          ? ['CLOSED']
          : type === 'OPEN'
            ? ['OPEN_OK', ...OPEN_REFUSALS]
            : type === 'LIST'
              ? ['LIST_ENTRY', 'LIST_END', 'ERROR NOT_ALLOWED']
              : type === 'GET'
                ? ['GET_OK', 'ERROR NOT_FOUND', 'ERROR NOT_ALLOWED']
                : type === 'MKDIR' || type === 'SYMLINK'
                  ? MAKE_ANSWERS
                  : type === 'PUT' || type === 'PUT_INLINE'
                    ? PUT_ANSWERS
                    : type === 'RANGE'
                      ? RANGE_ANSWERS
                      : type === 'PUT_PACK'
                        ? ['PONG seq=424242']
                        : ['ERROR UNEXPECTED_FRAME'];
  return {
    section,
    name: `${name} (${type} in Ready)`,
    expect,
    run: async (c, ctx) => {
      await ready(c, ctx);
      await c.write(c.seal(body));
      // A PUT_PACK waits for its DATA (§9.11 step 8), and answers PING meanwhile.
      if (type === 'PONG' || type === 'PUT_PACK') await c.send({ type: 'PING', seq: 424242 });
      // A PUT waits for its DATA and END (§9.11): END at once, which is early unless it is empty.
      if (type === 'PUT') await c.send({ type: 'END', sha256: sha256(Buffer.alloc(0)) });
      return nextEvent(c, ctx);
    },
  };
}

function validVectorCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  for (const { file, vectors } of vectorFiles('frames-valid')) {
    vectors.forEach((v, i) => {
      const body = Buffer.from(str(v, 'body_hex'), 'hex');
      // DATA vectors are bodies of up to 1 MiB; in Ready they are UNEXPECTED_FRAME only if short enough for a control record.
      if (body.length + 16 > MAX_CONTROL_RECORD_LENGTH_BYTES) return;
      cases.push(validFrameCase('§4', `${file} #${i}`, body, jsonToValue(field(v, 'frame'))));
    });
  }
  for (const { file, vectors } of vectorFiles('frames-noncanonical')) {
    for (const v of vectors) {
      cases.push(validFrameCase('§2.1', `${file}: ${str(v, 'name')}`, Buffer.from(str(v, 'body_hex'), 'hex'), jsonToValue(field(v, 'frame'))));
    }
  }
  return cases;
}

// ---- §11.1 every frame in every server state ---------------------------------------------------

const ALL_FRAMES = Object.keys(FRAME_TYPES) as FrameName[];
/** What the spec's own §11.1 receive table (parsed from PROTOCOL.md, not src/) allows in `state`. */
const allowed = (state: ServerState): Set<string> => new Set(refMoves('server', state).recv);

interface Driver {
  readonly state: ServerState;
  /** Frames allowed where the server may already be when the frame is read (transient states). */
  readonly alsoAllowed?: ServerState;
  /** UNEXPECTED_FRAME as ERROR, or a silent close where the server has no keys (§6). */
  readonly expect: string;
  /** Brings a fresh connection's server into `state` and sends `frame` there. */
  readonly send: (c: RawClient, ctx: RunContext, frame: Buffer | ((c: RawClient) => Buffer), n: string) => Promise<void>;
}

const sealed = (c: RawClient, f: Buffer | ((c: RawClient) => Buffer)): Buffer => (typeof f === 'function' ? f(c) : c.seal(f));

const DRIVERS: readonly Driver[] = [
  {
    state: 'AwaitClientHello',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f) => {
      await c.write(encodePreamble(), typeof f === 'function' ? f(c) : withLength(f));
      await c.readPreamble(ctx.waitMs);
    },
  },
  {
    state: 'AwaitKeyExchange',
    expect: 'CLOSED',
    send: async (c, ctx, f) => {
      await partial(c, ctx, 'server_hello');
      await c.write(typeof f === 'function' ? f(c) : withLength(f));
    },
  },
  {
    state: 'AwaitClientFinished',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f) => {
      await partial(c, ctx, 'key_exchange');
      await c.write(sealed(c, f));
    },
  },
  {
    state: 'Ready',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f) => {
      await ready(c, ctx);
      await c.write(sealed(c, f));
    },
  },
  {
    // Opening lasts while the server works on OPEN: a frame right behind OPEN arrives in it, or in Receiving.
    state: 'Opening',
    alsoAllowed: 'Receiving',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.write(c.sealFrame({ type: 'OPEN', name: `${ctx.prefix}/opening-${n}.bin`, size: 10, mtime: 1, mode: 0o600 }), sealed(c, f));
    },
  },
  {
    state: 'Receiving',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await open(c, ctx, `${ctx.prefix}/receiving-${n}.bin`, 10);
      await c.write(sealed(c, f));
    },
  },
  {
    // Verifying lasts while the server checks END: a frame right behind END arrives in it, or in Ready.
    state: 'Verifying',
    alsoAllowed: 'Ready',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      const data = Buffer.from(`verifying ${n}`);
      await open(c, ctx, `${ctx.prefix}/verifying-${n}.bin`, data.length);
      await c.write(c.seal(dataBody(0, data)), c.sealFrame({ type: 'END', sha256: sha256(data) }), sealed(c, f));
    },
  },
  {
    // Putting lasts from PUT to its END (§9.11).
    state: 'Putting',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.write(c.sealFrame({ type: 'PUT', name: `${ctx.prefix}/putting-${n}.bin`, size: 10, mtime: 1, mode: 0o600 }), sealed(c, f));
    },
  },
  {
    // Packing lasts from PUT_PACK until its total bytes are in (§9.11 step 8).
    state: 'Packing',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      const header = packFrame([{ name: `${ctx.prefix}/packing-${n}.bin`, size: 10, mtime: 1, mode: 0o600, sha256: sha256(Buffer.alloc(10)) }]);
      await c.write(c.sealFrame(header), sealed(c, f));
    },
  },
  {
    // A frame right behind RANGE is judged in Ranging after RANGE_OK (revision 1.12: Claiming receives nothing), in Claiming by a 1.11 server.
    state: 'Claiming',
    alsoAllowed: 'Ranging',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.write(c.sealFrame({ type: 'RANGE', name: `${ctx.prefix}/claiming-${n}.bin`, size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 }), sealed(c, f));
    },
  },
  {
    state: 'Ranging',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.send({ type: 'RANGE', name: `${ctx.prefix}/ranging-${n}.bin`, size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 });
      await until(c, ctx, 'RANGE_OK');
      await c.write(sealed(c, f));
    },
  },
  {
    // Settling lasts while the server makes the range durable: a frame right behind RANGE_END arrives in it, or in Ready.
    state: 'Settling',
    alsoAllowed: 'Ready',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.send({ type: 'RANGE', name: `${ctx.prefix}/settling-${n}.bin`, size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 });
      await until(c, ctx, 'RANGE_OK');
      await c.write(c.seal(dataBody(0, Buffer.from('0123456789'))), c.sealFrame({ type: 'RANGE_END', end: 10 }), sealed(c, f));
    },
  },
  {
    // A frame right behind MKDIR is judged in Ready after MADE (revision 1.11: Making receives nothing), in Making by a 1.10 server.
    state: 'Making',
    alsoAllowed: 'Ready',
    expect: 'ERROR UNEXPECTED_FRAME',
    send: async (c, ctx, f, n) => {
      await ready(c, ctx);
      await c.write(c.sealFrame({ type: 'MKDIR', name: `${ctx.prefix}/making-${n}`, mtime: 1, mode: 0o755 }), sealed(c, f));
    },
  },
];

function stateCases(): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  for (const d of DRIVERS) {
    const ok = new Set([...allowed(d.state), ...(d.alsoAllowed === undefined ? [] : allowed(d.alsoAllowed))]);
    for (const frame of ALL_FRAMES.filter((f) => !ok.has(f) && f !== 'ERROR')) {
      cases.push({
        section: '§11.1',
        name: `${d.state}: ${frame} has no row`,
        expect: [d.expect],
        run: async (c, ctx) => {
          await d.send(c, ctx, encodeBody(sampleFrame(frame)), frame);
          // In Verifying the DONE for the END may come first (in Making, the MADE).
          for (let i = 0; i < 3; i++) {
            const e = await nextEvent(c, ctx);
            if (e !== 'DONE' && e !== 'OPEN_OK' && e !== 'MADE' && e !== 'RANGE_OK' && e !== 'RANGE_DONE' && !e.startsWith('ACK')) return e;
          }
          return 'no end';
        },
      });
    }
    cases.push({
      section: '§11',
      name: `${d.state}: ERROR from the client closes without an answer`,
      expect: ['CLOSED'],
      run: async (c, ctx) => {
        await d.send(c, ctx, encodeBody(sampleFrame('ERROR')), 'error');
        for (let i = 0; i < 3; i++) {
          const e = await nextEvent(c, ctx);
          if (e !== 'DONE' && e !== 'OPEN_OK' && e !== 'MADE' && e !== 'RANGE_OK' && e !== 'RANGE_DONE' && !e.startsWith('ACK')) return e;
        }
        return 'no end';
      },
    });
  }
  return cases;
}

// ---- rules of the text ---------------------------------------------------------------------------

/** A whole upload on a fresh connection; DONE's size and sha256 checked (§9.1). */
async function upload(c: RawClient, ctx: RunContext, name: string, data: Buffer, chunk = 64 * 1024): Promise<string> {
  await ready(c, ctx);
  const offset = await open(c, ctx, `${ctx.prefix}/${name}`, data.length);
  await c.sendData(data, offset, chunk);
  await c.send({ type: 'END', sha256: sha256(data) });
  for (let i = 0; i < 10_000; i++) {
    const got = await c.next(ctx.waitMs);
    if (got.kind === 'frame' && got.frame.type === 'ACK') {
      if (got.frame.offset > data.length) return `ACK beyond size (${got.frame.offset})`;
      continue;
    }
    if (got.kind === 'frame' && got.frame.type === 'PROGRESS') continue;
    if (got.kind === 'frame' && got.frame.type === 'DONE') {
      const ok = got.frame.size === data.length && got.frame.sha256.equals(sha256(data));
      return ok ? 'DONE matches' : `DONE size=${got.frame.size} sha256=${got.frame.sha256.toString('hex')}`;
    }
    return got.kind === 'frame' ? `${got.frame.type} before DONE` : got.kind;
  }
  return 'no DONE';
}

/**
 * §9.4: a first connection holds `name` (OPEN of 1000 bytes, 100 sent), then `c` sends OPEN for
 * the same name with `size`: what each connection sees ("new: …, old: …"; the old one is given a
 * short wait only, TIMEOUT meaning it was left alone).
 */
async function holdThen(c: RawClient, ctx: RunContext, file: string, size: number): Promise<string> {
  const name = `${ctx.prefix}/${file}`;
  const first = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
  try {
    await ready(first, ctx);
    await open(first, ctx, name, 1000);
    await first.write(first.seal(dataBody(0, Buffer.alloc(100, 1))));
    await first.send({ type: 'PING', seq: 4 });
    await until(first, ctx, 'PONG');
    await ready(c, ctx);
    await c.send({ type: 'OPEN', name, size, mtime: 1_700_000_000_000, mode: 0o644 });
    const now = await nextEvent(c, ctx);
    const old = describeOutcome(await first.outcome(500, ctx.waitMs));
    return `new: ${now}, old: ${old}`;
  } finally {
    first.destroy();
  }
}

function ruleCases(): ConformanceCase[] {
  const data = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));
  return [
    // §2, §8: the record limit of the current state.
    {
      section: '§2',
      name: `a record of ${MAX_CONTROL_RECORD_LENGTH_BYTES + 1} bytes announced in Ready is refused at its length`,
      expect: ['ERROR FRAME_TOO_LARGE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(lengthPrefix(MAX_CONTROL_RECORD_LENGTH_BYTES + 1));
        return ending(c, ctx);
      },
    },
    {
      section: '§2',
      name: `a record of ${MAX_CONTROL_RECORD_LENGTH_BYTES} bytes in Ready is read and authenticated`,
      expect: ['ERROR DECRYPT_FAILED'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(lengthPrefix(MAX_CONTROL_RECORD_LENGTH_BYTES), Buffer.alloc(MAX_CONTROL_RECORD_LENGTH_BYTES, 0x5a));
        return ending(c, ctx);
      },
    },
    {
      section: '§2',
      name: `a record of ${MAX_RECORD_LENGTH_BYTES + 1} bytes announced in Receiving is refused at its length`,
      expect: ['ERROR FRAME_TOO_LARGE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/too-long-record.bin`, 2 * MAX_DATA_CHUNK_BYTES);
        await c.write(lengthPrefix(MAX_RECORD_LENGTH_BYTES + 1));
        return ending(c, ctx);
      },
    },
    { section: '§2', name: 'a DATA record of the maximum length is accepted in Receiving', expect: ['DONE matches'], run: (c, ctx) => upload(c, ctx, 'max-record.bin', data(MAX_DATA_CHUNK_BYTES, 3), MAX_DATA_CHUNK_BYTES) },
    // §10.1: the order of checks.
    {
      section: '§10.1',
      name: 'a plaintext OPEN with size −1 as the first frame: payload before state',
      expect: ['ERROR MALFORMED_FRAME'],
      run: async (c, ctx) => {
        const body = Buffer.from(encodeBody({ type: 'OPEN', name: 'x', size: 1, mtime: 0, mode: 0 }).toString('hex').replace('a473697a6501', 'a473697a65ff'), 'hex');
        await c.write(encodePreamble(), withLength(body));
        await c.readPreamble(ctx.waitMs);
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a valid plaintext OPEN as the first frame',
      expect: ['ERROR UNEXPECTED_FRAME'],
      run: async (c, ctx) => {
        await c.write(encodePreamble(), encodeFrame({ type: 'OPEN', name: 'x', size: 1, mtime: 0, mode: 0 }));
        await c.readPreamble(ctx.waitMs);
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a 7-byte record where CLIENT_FINISHED is due: length before authentication',
      expect: ['ERROR MALFORMED_FRAME'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'key_exchange');
        await c.write(lengthPrefix(7), Buffer.alloc(7, 1));
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a first record that fails to open is HANDSHAKE_FAILED',
      expect: ['ERROR HANDSHAKE_FAILED'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'key_exchange');
        await c.write(lengthPrefix(40), Buffer.alloc(40, 1));
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a later record that fails to open is DECRYPT_FAILED',
      expect: ['ERROR DECRYPT_FAILED'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const r = c.sealFrame({ type: 'PING', seq: 1 });
        r[r.length - 1] = (r[r.length - 1] ?? 0) ^ 1;
        await c.write(r);
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'an unknown type with a junk payload in Ready: type before payload',
      expect: ['ERROR UNKNOWN_FRAME_TYPE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(c.seal(Buffer.from([0x7f, 0xc1, 0xc1])));
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a malformed OPEN_OK from the client in Ready: payload before state',
      expect: ['ERROR MALFORMED_FRAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(c.seal(Buffer.from([FRAME_TYPES.OPEN_OK, 0xc1])));
        return ending(c, ctx);
      },
    },
    {
      section: '§10.1',
      name: 'a bad name in a plaintext OPEN first: state before meaning',
      expect: ['ERROR UNEXPECTED_FRAME'],
      run: async (c, ctx) => {
        await c.write(encodePreamble(), encodeFrame({ type: 'OPEN', name: '../x', size: 1, mtime: 0, mode: 0 }));
        await c.readPreamble(ctx.waitMs);
        return ending(c, ctx);
      },
    },
    // §6, §7: the handshake.
    {
      section: '§6',
      name: 'an anonymous handshake completes; SERVER_FINISHED verifies',
      expect: ['PONG seq=1'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'PING', seq: 1 });
        return nextEvent(c, ctx);
      },
    },
    {
      section: '§7.3',
      name: 'CLIENT_FINISHED with a wrong verify',
      expect: ['ERROR HANDSHAKE_FAILED'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'client_finished', { clientFinishedBody: () => encodeBody({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32, 7) }) });
        return ending(c, ctx);
      },
    },
    {
      section: '§7.1',
      name: 'KEY_EXCHANGE under the wrong OAEP label: CLIENT_FINISHED fails to open',
      expect: ['ERROR HANDSHAKE_FAILED', 'LOCAL HANDSHAKE_FAILED'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'client_finished', { client: { oaepEncrypt: (key, secret) => oaepWithEmptyLabel(key, secret) } });
        return ending(c, ctx);
      },
    },
    {
      section: '§7.4',
      name: 'an identity whose signature does not verify',
      expect: ['ERROR AUTH_REFUSED'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'client_finished', {
          clientFinishedBody: (_body, keys) =>
            encodeBody({ type: 'CLIENT_FINISHED', verify: finishedVerify(keys), identity: Buffer.alloc(32, 9), signature: Buffer.alloc(64, 9) }),
        });
        return ending(c, ctx);
      },
    },
    // §11.1: SERVER_FINISHED once (state Confirming).
    {
      section: '§11.1',
      name: 'SERVER_FINISHED is sent once: the next frame answers our PING',
      expect: ['PONG seq=2'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'PING', seq: 2 });
        return nextEvent(c, ctx);
      },
    },
    // §9.6: PING.
    {
      section: '§9.6',
      name: 'PING in Receiving is answered with the same seq',
      expect: ['PONG seq=9007199254740991'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/ping-receiving.bin`, 10);
        await c.send({ type: 'PING', seq: Number.MAX_SAFE_INTEGER });
        return nextEvent(c, ctx);
      },
    },
    // §9.1–§9.3: uploads.
    { section: '§9.1', name: 'an upload of 3 DATA frames: DONE has the size and SHA-256', expect: ['DONE matches'], run: (c, ctx) => upload(c, ctx, 'three.bin', data(150_000, 1)) },
    { section: '§9.1', name: 'an empty file: OPEN, END, DONE', expect: ['DONE matches'], run: (c, ctx) => upload(c, ctx, 'empty.bin', Buffer.alloc(0)) },
    {
      section: '§9.1',
      name: 'DATA at the wrong offset',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/bad-offset.bin`, 100);
        await c.write(c.seal(dataBody(5, Buffer.alloc(10))));
        return ending(c, ctx);
      },
    },
    {
      section: '§9.1',
      name: 'DATA beyond size',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/beyond.bin`, 5);
        await c.write(c.seal(dataBody(0, Buffer.alloc(6))));
        return ending(c, ctx);
      },
    },
    {
      section: '§9.1',
      name: 'END before size bytes',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/early-end.bin`, 5);
        await c.send({ type: 'END', sha256: sha256(Buffer.alloc(5)) });
        return ending(c, ctx);
      },
    },
    {
      section: '§9.1',
      name: 'END with another SHA-256',
      expect: ['ERROR INTEGRITY_FAILED'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await open(c, ctx, `${ctx.prefix}/integrity.bin`, 5);
        await c.write(c.seal(dataBody(0, Buffer.from('hello'))), c.sealFrame({ type: 'END', sha256: sha256(Buffer.from('world')) }));
        return ending(c, ctx);
      },
    },
    {
      section: '§9.2',
      name: 'resume: a second connection gets an offset no larger than what was sent, and finishes',
      expect: ['DONE matches'],
      run: async (c, ctx) => {
        const file = data(300_000, 5);
        const name = `${ctx.prefix}/resume.bin`;
        const first = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
        try {
          await ready(first, ctx);
          await open(first, ctx, name, file.length);
          await first.sendData(file.subarray(0, 200_000), 0, 50_000);
          // Frames in flight (ACKs) are let go with the connection; the PONG says all DATA was read.
          await first.send({ type: 'PING', seq: 3 });
          await until(first, ctx, 'PONG');
        } finally {
          first.destroy();
        }
        await ready(c, ctx);
        const offset = await open(c, ctx, name, file.length);
        if (offset > 200_000) return `OPEN_OK offset ${offset} beyond what was sent`;
        await c.sendData(file, offset, 50_000);
        await c.send({ type: 'END', sha256: sha256(file) });
        const done = await until(c, ctx, 'DONE');
        return done.type === 'DONE' && done.sha256.equals(sha256(file)) ? 'DONE matches' : 'DONE differs';
      },
    },
    {
      section: '§9.4',
      name: 'the same upload identity on a second connection takes the upload over; the first gets SUPERSEDED',
      expect: ['new: OPEN_OK, old: ERROR SUPERSEDED'],
      run: (c, ctx) => holdThen(c, ctx, 'takeover.bin', 1000),
    },
    {
      section: '§9.4',
      name: 'another upload identity for a held final name is BUSY',
      expect: ['new: ERROR BUSY, old: TIMEOUT'],
      run: (c, ctx) => holdThen(c, ctx, 'busy.bin', 1001),
    },
    {
      section: '§9.3',
      name: 'a name with a .. component',
      expect: ['ERROR BAD_NAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'OPEN', name: `${ctx.prefix}/../x`, size: 1, mtime: 0, mode: 0o644 });
        return ending(c, ctx);
      },
    },
    {
      section: '§9.3',
      name: `a name of ${MAX_NAME_COMPONENTS + 1} components`,
      expect: ['ERROR BAD_NAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'OPEN', name: deepName(ctx.prefix, MAX_NAME_COMPONENTS + 1), size: 1, mtime: 0, mode: 0o644 });
        return ending(c, ctx);
      },
    },
    {
      section: '§9.3',
      name: `a name of ${MAX_NAME_COMPONENTS} components is uploaded`,
      expect: ['DONE matches'],
      run: (c, ctx) => upload(c, ctx, deepName('', MAX_NAME_COMPONENTS - ctx.prefix.split('/').length), data(100, 9)),
    },
    {
      section: '§9.3',
      name: 'an absolute name',
      expect: ['ERROR BAD_NAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.send({ type: 'OPEN', name: `/${ctx.prefix}/abs`, size: 1, mtime: 0, mode: 0o644 });
        return ending(c, ctx);
      },
    },
  ];
}

/** A name of `components` components in all: `prefix`'s, then one-letter directories, then a file. */
function deepName(prefix: string, components: number): string {
  const own = prefix === '' ? 0 : prefix.split('/').length;
  const dirs = Array.from({ length: components - own - 1 }, (_, i) => String.fromCharCode(97 + (i % 26)));
  return [...(prefix === '' ? [] : [prefix]), ...dirs, 'deep.bin'].join('/');
}

/** `n` bytes of a pattern. */
const patterned = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

/** One command of §9.8 on a fresh connection: what came back (MADE, or how it ended). */
async function make(c: RawClient, ctx: RunContext, frame: Parameters<RawClient['send']>[0]): Promise<string> {
  await ready(c, ctx);
  await c.send(frame);
  return nextEvent(c, ctx);
}

/** A stream upload (§9.8): OPEN with `stream`, DATA, END with `endSize` (or none). */
async function streamUpload(c: RawClient, ctx: RunContext, name: string, data: Buffer, endSize: number | undefined): Promise<string> {
  await ready(c, ctx);
  await c.send({ type: 'OPEN', name: `${ctx.prefix}/${name}`, size: 0, mtime: 1_700_000_000_000, mode: 0o600, stream: randomBytes(16) });
  const got = await nextFrame(c, ctx);
  if (typeof got === 'string' || got.type !== 'OPEN_OK') return typeof got === 'string' ? got : got.type;
  await c.sendData(data, got.offset, 64 * 1024);
  await c.send(endSize === undefined ? { type: 'END', sha256: sha256(data) } : { type: 'END', sha256: sha256(data), size: endSize });
  for (let i = 0; i < 1000; i++) {
    const f = await nextFrame(c, ctx);
    if (typeof f === 'string') return f;
    if (f.type === 'ACK') continue;
    if (f.type !== 'DONE') return f.type;
    return f.size === data.length && f.sha256.equals(sha256(data)) ? 'DONE matches' : `DONE size=${f.size}`;
  }
  return 'no DONE';
}

/** §9.8: directories, links and streams. */
function treeCases(): ConformanceCase[] {
  const mk = (name: string, ctx: RunContext): { type: 'MKDIR'; name: string; mtime: number; mode: number } => ({ type: 'MKDIR', name: `${ctx.prefix}/${name}`, mtime: 1_600_000_000_000, mode: 0o750 });
  const link = (name: string, target: string, ctx: RunContext): { type: 'SYMLINK'; name: string; target: string; mtime: number } => ({ type: 'SYMLINK', name: `${ctx.prefix}/${name}`, target, mtime: 1_600_000_000_000 });
  return [
    { section: '§9.8', name: 'MKDIR of a new directory', expect: ['MADE'], run: (c, ctx) => make(c, ctx, mk('tree/new dir', ctx)) },
    { section: '§9.8', name: 'MKDIR with a .. component', expect: ['ERROR BAD_NAME'], run: (c, ctx) => make(c, ctx, mk('tree/../x', ctx)) },
    {
      section: '§9.8',
      name: 'MKDIR where a file is',
      expect: ['ERROR EXISTS'],
      run: async (c, ctx) => {
        const up = await upload(c, ctx, 'tree-file.bin', Buffer.from('file'));
        if (up !== 'DONE matches') return up;
        await c.send(mk('tree-file.bin', ctx));
        return nextEvent(c, ctx);
      },
    },
    { section: '§9.8', name: 'SYMLINK to a sibling', expect: ['MADE'], run: (c, ctx) => make(c, ctx, link('tree/sibling-link', 'new dir', ctx)) },
    { section: '§9.8', name: 'SYMLINK with an absolute target', expect: ['ERROR BAD_NAME'], run: (c, ctx) => make(c, ctx, link('tree/abs-link', '/etc/passwd', ctx)) },
    {
      section: '§9.8',
      name: 'SYMLINK whose target climbs out of the output directory',
      expect: ['ERROR BAD_NAME'],
      run: (c, ctx) => make(c, ctx, link('tree/out-link', `${'../'.repeat(ctx.prefix.split('/').length + 2)}x`, ctx)),
    },
    { section: '§9.8', name: 'SYMLINK with .. after a name', expect: ['ERROR BAD_NAME'], run: (c, ctx) => make(c, ctx, link('tree/dotdot-link', 'a/../b', ctx)) },
    { section: '§9.8', name: 'SYMLINK to the reserved directory', expect: ['ERROR BAD_NAME'], run: (c, ctx) => make(c, ctx, link('stx-link', `${'../'.repeat(ctx.prefix.split('/').length)}.stx`, ctx)) },
    {
      section: '§9.8',
      name: 'MKDIR, MKDIR, SYMLINK and PING pipelined in one write (1.11): each answered in order, after the MADE before it',
      expect: ['MADE, MADE, MADE, PONG seq=7'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(
          c.sealFrame(mk('piped/a', ctx)),
          c.sealFrame(mk('piped/b', ctx)),
          c.sealFrame(link('piped/a/l', '../b', ctx)),
          c.sealFrame({ type: 'PING', seq: 7 }),
        );
        return madeUntilOther(c, ctx, 4);
      },
    },
    {
      section: '§9.8',
      name: 'a refused MKDIR among pipelined ones (1.11): MADE for the one before it, then its ERROR and the close',
      expect: ['MADE, ERROR BAD_NAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(c.sealFrame(mk('piped-bad/a', ctx)), c.sealFrame(mk('piped-bad/../x', ctx)), c.sealFrame(mk('piped-bad/c', ctx)));
        const first = await nextEvent(c, ctx);
        return first === 'MADE' ? `${first}, ${await nextEvent(c, ctx)}` : first;
      },
    },
    {
      section: '§9.8',
      name: 'a run of six MKDIRs and a PING in one write, one below another of the run (1.14): a MADE each, in order, then PONG',
      expect: ['MADE, MADE, MADE, MADE, MADE, MADE, PONG seq=9'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const names = ['run/a/deep', 'run/a', 'run/b', 'run/c', 'run/b', 'run'];
        await c.write(...names.map((n) => c.sealFrame(mk(n, ctx))), c.sealFrame({ type: 'PING', seq: 9 }));
        return madeUntilOther(c, ctx, names.length + 1);
      },
    },
    {
      section: '§9.8',
      name: 'a refused MKDIR in the middle of a run (1.14): the MADEs of those before it, then its ERROR and the close',
      expect: ['MADE, MADE, ERROR EXISTS'],
      run: async (c, ctx) => {
        const up = await upload(c, ctx, 'run-file.bin', Buffer.from('file'));
        if (up !== 'DONE matches') return up;
        await c.write(...['run-bad/a', 'run-bad/b', 'run-file.bin', 'run-bad/c'].map((n) => c.sealFrame(mk(n, ctx))));
        return madeUntilOther(c, ctx, 4);
      },
    },
    { section: '§9.8', name: 'a stream: OPEN with stream, END with size', expect: ['DONE matches'], run: (c, ctx) => streamUpload(c, ctx, 'stream.bin', patterned(150_000, 3), 150_000) },
    { section: '§9.8', name: 'a stream END without size', expect: ['ERROR BAD_OFFSET'], run: (c, ctx) => streamUpload(c, ctx, 'stream-nosize.bin', patterned(1000, 4), undefined) },
    { section: '§9.8', name: 'a stream END with another size', expect: ['ERROR BAD_OFFSET'], run: (c, ctx) => streamUpload(c, ctx, 'stream-badsize.bin', patterned(1000, 5), 999) },
  ];
}

/** Up to `max` answers to pipelined MKDIR and SYMLINK (§9.8), to the first that is not MADE, joined. */
async function madeUntilOther(c: RawClient, ctx: RunContext, max: number): Promise<string> {
  const answers: string[] = [];
  for (let i = 0; i < max; i++) {
    const e = await nextEvent(c, ctx);
    answers.push(e);
    if (!e.startsWith('MADE')) break;
  }
  return answers.join(', ');
}

/** PUT, its DATA and END as one write, without waiting (§9.11). */
function putRecords(c: RawClient, name: string, data: Buffer): Buffer[] {
  const out = [c.sealFrame({ type: 'PUT', name, size: data.length, mtime: 1_700_000_000_000, mode: 0o640 })];
  if (data.length > 0) out.push(c.seal(dataBody(0, data)));
  out.push(c.sealFrame({ type: 'END', sha256: sha256(data) }));
  return out;
}

/** PUT_INLINE (§9.11 step 6): a whole file in one record. */
function putInlineRecord(c: RawClient, name: string, data: Buffer, hash = sha256(data)): Buffer {
  return c.sealFrame({ type: 'PUT_INLINE', name, mtime: 1_700_000_000_000, mode: 0o640, sha256: hash, data });
}

/**
 * The answers to `hashes.length` PUTs (§9.11 step 7), PUTS_DONE taken apart: "done" for each file
 * answered with its own SHA-256 ("done, wrong sha256" otherwise), PUT_FAILED with its code;
 * " (PUTS_DONE)" after the list if one came. Stops at anything else, which it names.
 */
async function putAnswers(c: RawClient, ctx: RunContext, hashes: readonly Buffer[]): Promise<string> {
  const got: string[] = [];
  let batched = false;
  for (let i = 0; i < hashes.length + 20 && got.length < hashes.length; i++) {
    const next = await c.next(ctx.waitMs);
    if (next.kind !== 'frame') {
      got.push(await ending(c, ctx));
      break;
    }
    const f = next.frame;
    if (f.type === 'PONG' || f.type === 'PROGRESS' || f.type === 'ACK') continue;
    const check = (h: Buffer): string => (hashes[got.length]?.equals(h) === true ? 'done' : 'done, wrong sha256');
    if (f.type === 'PUT_DONE') got.push(check(f.sha256));
    else if (f.type === 'PUTS_DONE') {
      batched = true;
      for (let at = 0; at < f.sha256s.length; at += 32) got.push(check(f.sha256s.subarray(at, at + 32)));
    } else if (f.type === 'PUT_FAILED') got.push(describeFrame(f));
    else {
      got.push(describeFrame(f));
      break;
    }
  }
  return got.join(', ') + (batched ? ' (PUTS_DONE)' : '');
}

/** The next `n` answers, PROGRESS, PONG and ACK skipped, joined by ", ". */
async function answers(c: RawClient, ctx: RunContext, n: number): Promise<string> {
  const got: string[] = [];
  for (let i = 0; i < n + 20 && got.length < n; i++) {
    const e = await nextEvent(c, ctx);
    if (e.startsWith('PONG') || e === 'ACK') continue;
    got.push(e);
    if (!e.startsWith('PUT_') && e !== 'MADE' && e !== 'OPEN_OK') break;
  }
  return got.join(', ');
}

/** §9.11: pipelined small files. */
function putCases(): ConformanceCase[] {
  return [
    {
      section: '§9.11',
      name: 'three PUTs in one write, a bad name in the middle: answered in order, the others published',
      expect: ['PUT_DONE, PUT_FAILED BAD_NAME, PUT_DONE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const a = patterned(5000, 11);
        await c.write(...putRecords(c, `${ctx.prefix}/put/a.bin`, a), ...putRecords(c, `${ctx.prefix}/put/../b.bin`, patterned(10, 12)), ...putRecords(c, `${ctx.prefix}/put/empty`, Buffer.alloc(0)));
        return answers(c, ctx, 3);
      },
    },
    {
      section: '§9.11',
      name: 'a PUT with the wrong SHA-256 fails alone: PUT_FAILED INTEGRITY_FAILED, then the next PUT is answered',
      expect: ['PUT_FAILED INTEGRITY_FAILED, PUT_DONE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const data = patterned(100, 13);
        const bad = [c.sealFrame({ type: 'PUT', name: `${ctx.prefix}/put/bad.bin`, size: data.length, mtime: 1, mode: 0o600 }), c.seal(dataBody(0, data)), c.sealFrame({ type: 'END', sha256: sha256(Buffer.from('other')) })];
        await c.write(...bad, ...putRecords(c, `${ctx.prefix}/put/good.bin`, data));
        return answers(c, ctx, 2);
      },
    },
    {
      section: '§9.11',
      name: 'MKDIR right behind a PUT: the PUT is answered first',
      expect: ['PUT_DONE, MADE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(...putRecords(c, `${ctx.prefix}/put/dir/f.txt`, patterned(64, 14)), c.sealFrame({ type: 'MKDIR', name: `${ctx.prefix}/put/dir`, mtime: 1_600_000_000_000, mode: 0o750 }));
        return answers(c, ctx, 2);
      },
    },
    {
      section: '§9.11',
      name: 'PUT DATA beyond its size: ERROR BAD_OFFSET',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(c.sealFrame({ type: 'PUT', name: `${ctx.prefix}/put/over.bin`, size: 4, mtime: 1, mode: 0o600 }), c.seal(dataBody(0, patterned(5, 15))));
        return nextEvent(c, ctx);
      },
    },
    {
      section: '§9.11',
      name: 'PUT DATA not from offset 0: ERROR BAD_OFFSET',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        await c.write(c.sealFrame({ type: 'PUT', name: `${ctx.prefix}/put/late.bin`, size: 10, mtime: 1, mode: 0o600 }), c.seal(dataBody(5, patterned(5, 16))));
        return nextEvent(c, ctx);
      },
    },
    {
      section: '§9.11',
      name: 'PUT_INLINE and PUT mixed, a bad name and a wrong SHA-256 among them: one order of answers, each checked',
      expect: ['done, done, PUT_FAILED BAD_NAME, done, PUT_FAILED INTEGRITY_FAILED, done', 'done, done, PUT_FAILED BAD_NAME, done, PUT_FAILED INTEGRITY_FAILED, done (PUTS_DONE)'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = [patterned(3000, 21), Buffer.alloc(0), patterned(10, 22), patterned(20_000, 23), patterned(50, 24), patterned(700, 25)];
        const [a, empty, bad, big, wrong, last] = files;
        if (a === undefined || empty === undefined || bad === undefined || big === undefined || wrong === undefined || last === undefined) throw new Error('six files');
        await c.write(
          putInlineRecord(c, `${ctx.prefix}/inline/a.bin`, a),
          putInlineRecord(c, `${ctx.prefix}/inline/empty`, empty),
          putInlineRecord(c, `${ctx.prefix}/inline/../x.bin`, bad),
          ...putRecords(c, `${ctx.prefix}/inline/big.bin`, big),
          putInlineRecord(c, `${ctx.prefix}/inline/wrong.bin`, wrong, sha256(Buffer.from('other'))),
          putInlineRecord(c, `${ctx.prefix}/inline/last.bin`, last),
        );
        return putAnswers(c, ctx, files.map((f) => sha256(f)));
      },
    },
    {
      section: '§9.11',
      name: 'PUTs with no PUT_INLINE on the connection are never answered by PUTS_DONE',
      expect: ['done, done, done, done, done, done, done, done'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = Array.from({ length: 8 }, (_, i) => patterned(100 + i, 30 + i));
        await c.write(...files.flatMap((f, i) => putRecords(c, `${ctx.prefix}/plain-puts/f${i}.bin`, f)));
        return putAnswers(c, ctx, files.map((f) => sha256(f)));
      },
    },
    {
      section: '§9.11',
      name: 'MKDIR right behind PUT_INLINEs: the PUTs are answered first',
      expect: ['done, done, MADE', 'done, done (PUTS_DONE), MADE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = [patterned(64, 40), patterned(65, 41)];
        await c.write(
          ...files.map((f, i) => putInlineRecord(c, `${ctx.prefix}/inline-dir/f${i}.txt`, f)),
          c.sealFrame({ type: 'MKDIR', name: `${ctx.prefix}/inline-dir`, mtime: 1_600_000_000_000, mode: 0o750 }),
        );
        const first = await putAnswers(c, ctx, files.map((f) => sha256(f)));
        return `${first}, ${await answers(c, ctx, 1)}`;
      },
    },
  ];
}

/** A PUT_PACK of `files` (named `dir`/f<i>.bin) and its DATA (§9.11 step 8); `hashes` default to the files'. */
function packRecords(c: RawClient, dir: string, files: readonly Buffer[], hashes = files.map((f) => sha256(f))): Buffer[] {
  const header = packFrame(files.map((f, i) => ({ name: `${dir}/f${i}.bin`, size: f.length, mtime: 1_700_000_000_000, mode: 0o640, sha256: hashes[i] ?? sha256(f) })));
  return [c.sealFrame(header), c.seal(dataBody(0, Buffer.concat(files)))];
}

/** §9.11 step 8 (revision 1.9): many small files in two records. */
function packCases(): ConformanceCase[] {
  const three = (seed: number): Buffer[] => [patterned(3000, seed), Buffer.alloc(0), patterned(70_000, seed + 1)];
  return [
    {
      section: '§9.11',
      name: 'a PUT_PACK of three files (one empty) between PUT_INLINEs: each answered in the one order, then a MKDIR',
      expect: ['done, done, done, done, done, MADE', 'done, done, done, done, done (PUTS_DONE), MADE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = three(50);
        const before = patterned(10, 53);
        const after = patterned(20, 54);
        await c.write(
          putInlineRecord(c, `${ctx.prefix}/pack/before.bin`, before),
          ...packRecords(c, `${ctx.prefix}/pack`, files),
          putInlineRecord(c, `${ctx.prefix}/pack/after.bin`, after),
          c.sealFrame({ type: 'MKDIR', name: `${ctx.prefix}/pack`, mtime: 1_600_000_000_000, mode: 0o750 }),
        );
        const first = await putAnswers(c, ctx, [before, ...files, after].map((f) => sha256(f)));
        return `${first}, ${await answers(c, ctx, 1)}`;
      },
    },
    {
      section: '§9.11',
      name: 'a PUT_PACK with a wrong SHA-256 in the middle: that file alone fails INTEGRITY_FAILED',
      expect: ['done, PUT_FAILED INTEGRITY_FAILED, done'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = [patterned(100, 55), patterned(200, 56), patterned(300, 57)];
        const hashes = files.map((f) => sha256(f));
        hashes[1] = sha256(Buffer.from('other'));
        await c.write(...packRecords(c, `${ctx.prefix}/pack-bad`, files, hashes));
        return putAnswers(c, ctx, hashes);
      },
    },
    {
      section: '§9.11',
      name: 'a PUT_PACK naming a file twice, and one a PUT_INLINE just before named: each answered in the one order',
      expect: ['done, done, done, done, done (PUTS_DONE)'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const dir = `${ctx.prefix}/pack-again`;
        const inline = patterned(40, 60);
        const files = [
          { name: `${dir}/a.bin`, data: patterned(100, 61) },
          { name: `${dir}/b.bin`, data: patterned(200, 62) },
          { name: `${dir}/a.bin`, data: patterned(300, 63) },
          { name: `${dir}/c.bin`, data: patterned(400, 64) },
        ];
        const header = packFrame(files.map((f) => ({ name: f.name, size: f.data.length, mtime: 1_700_000_000_000, mode: 0o640, sha256: sha256(f.data) })));
        await c.write(
          putInlineRecord(c, `${dir}/b.bin`, inline),
          c.sealFrame(header),
          c.seal(dataBody(0, Buffer.concat(files.map((f) => f.data)))),
        );
        return putAnswers(c, ctx, [inline, ...files.map((f) => f.data)].map((f) => sha256(f)));
      },
    },
    {
      section: '§9.11',
      name: 'a PUT_PACK whose DATA comes in four frames, cut inside its files: each file answered with its own SHA-256',
      expect: ['done, done, done, done', 'done, done, done, done (PUTS_DONE)'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const files = [patterned(1000, 61), patterned(1, 62), patterned(5000, 63), patterned(300, 64)];
        const header = c.sealFrame(packFrame(files.map((f, i) => ({ name: `${ctx.prefix}/pack-split/f${i}.bin`, size: f.length, mtime: 1_700_000_000_000, mode: 0o640, sha256: sha256(f) }))));
        const data = Buffer.concat(files);
        const cuts = [0, 500, 1001, 4000, data.length];
        const frames = cuts.slice(1).map((end, i) => c.seal(dataBody(cuts[i] ?? 0, data.subarray(cuts[i], end))));
        await c.write(header, ...frames);
        return putAnswers(c, ctx, files.map((f) => sha256(f)));
      },
    },
    {
      section: '§9.11',
      name: 'PUT_PACK DATA beyond its total: ERROR BAD_OFFSET',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const header = packFrame([{ name: `${ctx.prefix}/pack-over/a.bin`, size: 4, mtime: 1, mode: 0o600, sha256: sha256(patterned(4, 58)) }]);
        await c.write(c.sealFrame(header), c.seal(dataBody(0, patterned(5, 58))));
        return nextEvent(c, ctx);
      },
    },
    {
      section: '§9.11',
      name: 'PUT_PACK DATA not from offset 0: ERROR BAD_OFFSET',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const header = packFrame([{ name: `${ctx.prefix}/pack-late/a.bin`, size: 10, mtime: 1, mode: 0o600, sha256: sha256(patterned(10, 59)) }]);
        await c.write(c.sealFrame(header), c.seal(dataBody(5, patterned(5, 59))));
        return nextEvent(c, ctx);
      },
    },
    {
      section: '§9.11',
      name: 'END after a pack\'s last byte: ERROR UNEXPECTED_FRAME (the pack ended in Ready)',
      expect: ['PUT_DONE, ERROR UNEXPECTED_FRAME', 'ERROR UNEXPECTED_FRAME'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const data = patterned(10, 60);
        await c.write(...packRecords(c, `${ctx.prefix}/pack-end`, [data]), c.sealFrame({ type: 'END', sha256: sha256(data) }));
        return answers(c, ctx, 2);
      },
    },
  ];
}

/**
 * An upload OPENed (at `offset` 0) and sent whole, ended with END_DETACHED (§9.1 "Detached END"):
 * the records to write after OPEN_OK. `hash` defaults to the data's.
 */
function detachedRecords(c: RawClient, data: Buffer, hash = sha256(data)): Buffer[] {
  return [...(data.length > 0 ? [c.seal(dataBody(0, data))] : []), c.sealFrame({ type: 'END_DETACHED', sha256: hash })];
}

/** §9.1 "Detached END" (revision 1.7): an upload answered as a PUT, in the order of the PUTs. */
function detachedCases(): ConformanceCase[] {
  return [
    {
      section: '§9.1',
      name: 'END_DETACHED, a PUT and the next OPEN at once: the OPEN is answered, the upload and the PUT in their order',
      expect: ['done, done; OPEN_OK'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const a = patterned(300_000, 50);
        const b = patterned(2000, 51);
        if ((await c.open(`${ctx.prefix}/detached/a.bin`, a.length)) !== 0) return 'OPEN_OK not at 0';
        await c.write(...detachedRecords(c, a), ...putRecords(c, `${ctx.prefix}/detached/b.bin`, b), c.sealFrame({ type: 'OPEN', name: `${ctx.prefix}/detached/c.bin`, size: 10, mtime: 1, mode: 0o600 }));
        // OPEN_OK may come before, between or after the two answers (§9.11 step 4): noted apart.
        const hashes = [sha256(a), sha256(b)];
        const got: string[] = [];
        let opened = false;
        for (let i = 0; i < 40 && (got.length < 2 || !opened); i++) {
          const next = await c.next(ctx.waitMs);
          if (next.kind !== 'frame') return `${got.join(', ')}; ${await ending(c, ctx)}`;
          const f = next.frame;
          if (f.type === 'ACK' || f.type === 'PONG' || f.type === 'PROGRESS') continue;
          if (f.type === 'OPEN_OK') opened = true;
          else if (f.type === 'PUT_DONE') got.push(hashes[got.length]?.equals(f.sha256) === true ? 'done' : 'done, wrong sha256');
          else if (f.type === 'PUTS_DONE') for (let at = 0; at < f.sha256s.length; at += 32) got.push(hashes[got.length]?.equals(f.sha256s.subarray(at, at + 32)) === true ? 'done' : 'done, wrong sha256');
          else return `${got.join(', ')}; ${describeFrame(f)}`;
        }
        return `${got.join(', ')}; ${opened ? 'OPEN_OK' : 'no OPEN_OK'}`;
      },
    },
    {
      section: '§9.1',
      name: 'END_DETACHED with the wrong SHA-256: PUT_FAILED INTEGRITY_FAILED, and the connection goes on',
      expect: ['PUT_FAILED INTEGRITY_FAILED, PUT_DONE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const data = patterned(50_000, 52);
        if ((await c.open(`${ctx.prefix}/detached/wrong.bin`, data.length)) !== 0) return 'OPEN_OK not at 0';
        await c.write(...detachedRecords(c, data, sha256(Buffer.from('other'))), ...putRecords(c, `${ctx.prefix}/detached/after-wrong.bin`, data));
        return answers(c, ctx, 2);
      },
    },
    {
      section: '§9.1',
      name: 'MKDIR right behind END_DETACHED: the upload is answered first',
      expect: ['PUT_DONE, MADE'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const data = patterned(20_000, 53);
        if ((await c.open(`${ctx.prefix}/detached/dir/f.bin`, data.length)) !== 0) return 'OPEN_OK not at 0';
        await c.write(...detachedRecords(c, data), c.sealFrame({ type: 'MKDIR', name: `${ctx.prefix}/detached/dir`, mtime: 1_600_000_000_000, mode: 0o750 }));
        return answers(c, ctx, 2);
      },
    },
    {
      section: '§9.1',
      name: 'a PUT and an OPEN of the name of a detached upload right behind it: carried out after its answer, in order',
      expect: ['PUT_DONE, PUT_DONE, OPEN_OK'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const name = `${ctx.prefix}/detached/same.bin`;
        const first = patterned(40_000, 55);
        if ((await c.open(name, first.length)) !== 0) return 'OPEN_OK not at 0';
        await c.write(...detachedRecords(c, first), ...putRecords(c, name, patterned(100, 56)), c.sealFrame({ type: 'OPEN', name, size: 10, mtime: 1, mode: 0o600 }));
        return answers(c, ctx, 3);
      },
    },
    {
      section: '§9.1',
      name: 'END_DETACHED before size bytes: ERROR BAD_OFFSET',
      expect: ['ERROR BAD_OFFSET'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        const data = patterned(1000, 54);
        if ((await c.open(`${ctx.prefix}/detached/short.bin`, data.length + 1)) !== 0) return 'OPEN_OK not at 0';
        await c.write(...detachedRecords(c, data));
        return nextEvent(c, ctx);
      },
    },
  ];
}

/** §9.6: cases that wait for the server's timers (HANDSHAKE_TIMEOUT, IDLE_TIMEOUT); only with --timeouts. */
export function timerCases(): ConformanceCase[] {
  return [
    {
      section: '§9.6',
      name: 'a client that never sends its preamble: the server preamble, then ERROR TIMEOUT',
      expect: ['v1, ERROR TIMEOUT'],
      run: async (c, ctx) => {
        const p = await c.readPreamble(ctx.timerWaitMs);
        return `${p === null ? 'no preamble' : `v${p.readUInt16BE(4)}`}, ${await ending(c, ctx)}`;
      },
    },
    {
      section: '§9.6',
      name: 'silence after the handshake: ERROR TIMEOUT as a record',
      expect: ['ERROR TIMEOUT'],
      run: async (c, ctx) => {
        await ready(c, ctx);
        return ending(c, ctx, ctx.timerWaitMs);
      },
    },
    {
      section: '§9.6',
      name: 'silence after SERVER_HELLO: closed without a word (no keys)',
      expect: ['CLOSED'],
      run: async (c, ctx) => {
        await partial(c, ctx, 'server_hello');
        return ending(c, ctx, ctx.timerWaitMs);
      },
    },
  ];
}

export function conformanceCases(options: { timers?: boolean; downloads?: boolean } = {}): ConformanceCase[] {
  return [
    ...(options.downloads === true ? downloadCases() : []),
    ...preambleCases(),
    ...invalidVectorCases(),
    ...validVectorCases(),
    ...stateCases(),
    ...ruleCases(),
    ...treeCases(),
    ...identicalCases(),
    ...putCases(),
    ...packCases(),
    ...detachedCases(),
    ...rangeCases(),
    ...resumeCases(),
    ...(options.timers === true ? timerCases() : []),
  ];
}
