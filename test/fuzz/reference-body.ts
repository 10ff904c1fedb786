// Reference decoder of frame bodies, written from spec/PROTOCOL.md §2, §2.1, §2.2 and §4 alone:
// the fuzz oracle compares src/proto/codec.ts with it. It shares no code or constants with
// src/proto on purpose (an error copied into both would hide itself), and it is written for
// clarity, not speed: a flat walk over one MessagePack map, with no MessagePack library.
import type { ErrorCode } from '../../src/proto/index.js';

/** Limits of §2, as the spec states them. */
export const SPEC = {
  MAX_PLAINTEXT_FRAME_LENGTH: 16385,
  MAX_FRAME_LENGTH: 1048585,
  MAX_DATA_CHUNK: 1048576,
  MAX_CONTROL_PAYLOAD: 16384,
  MAX_RECORD_LENGTH: 1048601,
  MIN_RECORD_LENGTH: 17,
  MAX_INT: 2 ** 53 - 1,
} as const;

type Kind = { t: 'bin'; min: number; max: number } | { t: 'str'; min: number; max: number } | { t: 'uint'; max: number } | { t: 'int' };
interface Field {
  readonly name: string;
  readonly kind: Kind;
  readonly optional?: true;
}

const bin = (min: number, max = min): Kind => ({ t: 'bin', min, max });
const str = (min: number, max: number): Kind => ({ t: 'str', min, max });
const uint = (max: number = SPEC.MAX_INT): Kind => ({ t: 'uint', max });
const int: Kind = { t: 'int' };

/** The table of §4: type byte → name and payload fields (DATA: null, §2.2). */
const TYPES = new Map<number, { name: string; fields: readonly Field[] | null }>([
  [0x01, { name: 'CLIENT_HELLO', fields: [{ name: 'random', kind: bin(32) }, { name: 'x25519', kind: bin(32) }, { name: 'ticket', kind: bin(1, 512), optional: true }, { name: 'tickets', kind: uint(1), optional: true }] }],
  [0x02, { name: 'SERVER_HELLO', fields: [{ name: 'random', kind: bin(32) }, { name: 'x25519', kind: bin(32) }, { name: 'server_key', kind: bin(1, 4096) }, { name: 'resumed', kind: uint(1), optional: true }] }],
  [0x03, { name: 'KEY_EXCHANGE', fields: [{ name: 'encrypted_secret', kind: bin(1, 1024) }] }],
  [0x04, { name: 'CLIENT_FINISHED', fields: [{ name: 'verify', kind: bin(32) }, { name: 'identity', kind: bin(32), optional: true }, { name: 'signature', kind: bin(64), optional: true }] }],
  [0x05, { name: 'SERVER_FINISHED', fields: [{ name: 'verify', kind: bin(32) }] }],
  [0x10, { name: 'OPEN', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'size', kind: uint() }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }, { name: 'stream', kind: bin(16), optional: true }, { name: 'sha256', kind: bin(32), optional: true }] }],
  [0x11, { name: 'OPEN_OK', fields: [{ name: 'offset', kind: uint() }] }],
  [0x12, { name: 'DATA', fields: null }],
  [0x13, { name: 'ACK', fields: [{ name: 'offset', kind: uint() }] }],
  [0x14, { name: 'END', fields: [{ name: 'sha256', kind: bin(32) }, { name: 'size', kind: uint(), optional: true }] }],
  [0x15, { name: 'DONE', fields: [{ name: 'size', kind: uint() }, { name: 'sha256', kind: bin(32) }] }],
  [0x16, { name: 'PROGRESS', fields: [{ name: 'done', kind: uint() }, { name: 'total', kind: uint() }] }],
  [0x17, { name: 'MKDIR', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }] }],
  [0x18, { name: 'SYMLINK', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'target', kind: str(1, 4096) }, { name: 'mtime', kind: int }] }],
  [0x19, { name: 'MADE', fields: [] }],
  [0x1a, { name: 'PUT', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'size', kind: uint(1_048_576) }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }] }],
  [0x1b, { name: 'PUT_DONE', fields: [{ name: 'size', kind: uint() }, { name: 'sha256', kind: bin(32, 32) }] }],
  [0x1c, { name: 'PUT_FAILED', fields: [{ name: 'code', kind: uint() }, { name: 'message', kind: str(0, 1024) }] }],
  [0x1d, { name: 'PUT_INLINE', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }, { name: 'sha256', kind: bin(32) }, { name: 'data', kind: bin(0, 16384) }] }],
  [0x37, { name: 'PUT_PACK', fields: [{ name: 'names', kind: str(1, 16384) }, { name: 'sizes', kind: bin(4, 1024) }, { name: 'mtimes', kind: bin(8, 2048) }, { name: 'modes', kind: bin(2, 512) }, { name: 'sha256s', kind: bin(32, 8192) }] }],
  [0x1e, { name: 'PUTS_DONE', fields: [{ name: 'sha256s', kind: bin(32, 16352) }] }],
  [0x1f, { name: 'END_DETACHED', fields: [{ name: 'sha256', kind: bin(32) }, { name: 'size', kind: uint(), optional: true }] }],
  [0x20, { name: 'ERROR', fields: [{ name: 'code', kind: uint() }, { name: 'message', kind: str(0, 1024) }] }],
  [0x21, { name: 'PING', fields: [{ name: 'seq', kind: uint() }] }],
  [0x22, { name: 'PONG', fields: [{ name: 'seq', kind: uint() }] }],
  [0x23, { name: 'GOAWAY', fields: [{ name: 'code', kind: uint() }, { name: 'message', kind: str(0, 1024) }] }],
  [0x24, { name: 'NEW_TICKET', fields: [{ name: 'ticket', kind: bin(1, 512) }, { name: 'lifetime', kind: uint(604_800) }] }],
  [0x30, { name: 'LIST', fields: [{ name: 'prefix', kind: str(0, 4096) }, { name: 'after', kind: str(1, 4096), optional: true }] }],
  [0x31, { name: 'LIST_ENTRY', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'size', kind: uint() }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }, { name: 'sha256', kind: bin(32), optional: true }] }],
  [0x32, { name: 'LIST_END', fields: [{ name: 'count', kind: uint() }, { name: 'next', kind: str(1, 4096), optional: true }] }],
  [0x33, { name: 'GET', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'offset', kind: uint() }, { name: 'size', kind: uint(), optional: true }, { name: 'mtime', kind: int, optional: true }] }],
  [0x34, { name: 'GET_OK', fields: [{ name: 'offset', kind: uint() }, { name: 'size', kind: uint() }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }, { name: 'sha256', kind: bin(32), optional: true }] }],
  [0x35, { name: 'GET_END', fields: [{ name: 'size', kind: uint() }, { name: 'sha256', kind: bin(32) }] }],
  [0x36, { name: 'LIST_DIR', fields: [{ name: 'name', kind: str(1, 4096) }, { name: 'mtime', kind: int }, { name: 'mode', kind: uint(0o7777) }] }],
  [
    0x40,
    {
      name: 'RANGE',
      fields: [
        { name: 'name', kind: str(1, 4096) },
        { name: 'size', kind: uint() },
        { name: 'mtime', kind: int },
        { name: 'mode', kind: uint(0o7777) },
        { name: 'start', kind: uint() },
        { name: 'end', kind: uint() },
      ],
    },
  ],
  [0x41, { name: 'RANGE_OK', fields: [{ name: 'offset', kind: uint() }] }],
  [0x42, { name: 'RANGE_END', fields: [{ name: 'end', kind: uint() }] }],
  [0x43, { name: 'RANGE_DONE', fields: [{ name: 'end', kind: uint() }] }],
]);

/** Frame names by type byte, for the other reference models. */
export const REF_FRAME_NAMES: ReadonlyMap<number, string> = new Map([...TYPES].map(([t, v]) => [t, v.name]));

/** A decoded frame: 'type' plus its fields, Buffers for bin, strings, numbers. */
export type RefFrame = ReadonlyMap<string, string | number | Buffer>;

/**
 * The spec's answer for one body. 'either' marks where the spec leaves a choice: an integral
 * float where an integer is required and duplicate keys (§2.1), invalid UTF-8 in a str (§2.1
 * against §9.3); a receiver may accept (with these values: the last of duplicates, U+FFFD for
 * invalid UTF-8) or reject (with this code).
 */
export type Verdict =
  | { readonly kind: 'accept'; readonly frame: RefFrame }
  | { readonly kind: 'reject'; readonly code: ErrorCode }
  | { readonly kind: 'either'; readonly frame: RefFrame; readonly code: ErrorCode };

type Value =
  | { t: 'nil' | 'bool' | 'container' | 'ext' }
  | { t: 'int'; v: bigint }
  | { t: 'float'; v: number }
  | { t: 'str'; bytes: Buffer }
  | { t: 'bin'; v: Buffer };

class Invalid extends Error {}
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8, or null. */
function utf8(bytes: Buffer): string | null {
  try {
    return UTF8.decode(bytes);
  } catch {
    return null;
  }
}

/** A cursor over one MessagePack payload; every read checks bounds and throws Invalid. */
class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  bytes(n: number): Buffer {
    if (n > this.left) throw new Invalid('truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  uint(n: 1 | 2 | 4 | 8): bigint {
    const b = this.bytes(n);
    let v = 0n;
    for (const byte of b) v = (v << 8n) | BigInt(byte);
    return v;
  }
  size(n: 1 | 2 | 4): number {
    return Number(this.uint(n));
  }
}

/** Container header → number of MessagePack values it holds, or null for a scalar head. */
function containerItems(c: Cursor, head: number): number | null {
  if (head >= 0x80 && head <= 0x8f) return 2 * (head & 0x0f);
  if (head >= 0x90 && head <= 0x9f) return head & 0x0f;
  if (head === 0xdc) return c.size(2);
  if (head === 0xdd) return c.size(4);
  if (head === 0xde) return 2 * c.size(2);
  if (head === 0xdf) return 2 * c.size(4);
  return null;
}

/** Reads one value; a container is skipped whole (no field admits one) without recursion. */
function readValue(c: Cursor): Value {
  const head = c.uint(1);
  const h = Number(head);
  if (h <= 0x7f) return { t: 'int', v: head };
  if (h >= 0xe0) return { t: 'int', v: BigInt(h - 0x100) };
  if (h >= 0xa0 && h <= 0xbf) return { t: 'str', bytes: c.bytes(h & 0x1f) };
  let pending = containerItems(c, h);
  if (pending !== null) {
    while (pending > 0) {
      if (pending > c.left) throw new Invalid('container longer than the payload');
      pending -= 1;
      const inner = Number(c.uint(1));
      const items = containerItems(c, inner);
      if (items !== null) pending += items;
      else skipScalar(c, inner);
    }
    return { t: 'container' };
  }
  switch (h) {
    case 0xc0: return { t: 'nil' };
    case 0xc2: case 0xc3: return { t: 'bool' };
    case 0xc4: return { t: 'bin', v: c.bytes(c.size(1)) };
    case 0xc5: return { t: 'bin', v: c.bytes(c.size(2)) };
    case 0xc6: return { t: 'bin', v: c.bytes(c.size(4)) };
    case 0xca: return { t: 'float', v: c.bytes(4).readFloatBE(0) };
    case 0xcb: return { t: 'float', v: c.bytes(8).readDoubleBE(0) };
    case 0xcc: return { t: 'int', v: c.uint(1) };
    case 0xcd: return { t: 'int', v: c.uint(2) };
    case 0xce: return { t: 'int', v: c.uint(4) };
    case 0xcf: return { t: 'int', v: c.uint(8) };
    case 0xd0: return { t: 'int', v: BigInt.asIntN(8, c.uint(1)) };
    case 0xd1: return { t: 'int', v: BigInt.asIntN(16, c.uint(2)) };
    case 0xd2: return { t: 'int', v: BigInt.asIntN(32, c.uint(4)) };
    case 0xd3: return { t: 'int', v: BigInt.asIntN(64, c.uint(8)) };
    case 0xd9: return { t: 'str', bytes: c.bytes(c.size(1)) };
    case 0xda: return { t: 'str', bytes: c.bytes(c.size(2)) };
    case 0xdb: return { t: 'str', bytes: c.bytes(c.size(4)) };
    default:
      skipScalar(c, h);
      return { t: 'ext' };
  }
}

/** Skips one non-container value whose head byte was read; Invalid for 0xc1. */
function skipScalar(c: Cursor, h: number): void {
  if (h <= 0x7f || h >= 0xe0 || h === 0xc0 || h === 0xc2 || h === 0xc3) return;
  if (h >= 0xa0 && h <= 0xbf) return void c.bytes(h & 0x1f);
  const fixed: Record<number, number> = { 0xca: 4, 0xcb: 8, 0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8, 0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17 };
  const n = fixed[h];
  if (n !== undefined) return void c.bytes(n);
  const sized: Record<number, 1 | 2 | 4> = { 0xc4: 1, 0xc5: 2, 0xc6: 4, 0xd9: 1, 0xda: 2, 0xdb: 4 };
  const s = sized[h];
  if (s !== undefined) return void c.bytes(c.size(s));
  const ext: Record<number, 1 | 2 | 4> = { 0xc7: 1, 0xc8: 2, 0xc9: 4 };
  const e = ext[h];
  if (e !== undefined) return void c.bytes(c.size(e) + 1);
  throw new Invalid(`byte 0x${h.toString(16)} is not MessagePack`);
}

const reject = (code: ErrorCode): Verdict => ({ kind: 'reject', code });
const MALFORMED = reject('MALFORMED_FRAME');

/** One field value checked against its kind; `lenient` marks a latitude (either): an integral float, invalid UTF-8. */
function fieldValue(kind: Kind, v: Value): { value: string | number | Buffer; lenient: boolean } | null {
  switch (kind.t) {
    case 'bin':
      return v.t === 'bin' && v.v.length >= kind.min && v.v.length <= kind.max ? { value: v.v, lenient: false } : null;
    case 'str': {
      if (v.t !== 'str') return null;
      // Invalid UTF-8 is MALFORMED_FRAME (§2.1).
      const s = utf8(v.bytes);
      return s !== null && v.bytes.length >= kind.min && v.bytes.length <= kind.max ? { value: s, lenient: false } : null;
    }
    case 'uint':
    case 'int': {
      const min = kind.t === 'uint' ? 0 : -SPEC.MAX_INT;
      const max = kind.t === 'uint' ? kind.max : SPEC.MAX_INT;
      if (v.t === 'int') return v.v >= BigInt(min) && v.v <= BigInt(max) ? { value: Number(v.v), lenient: false } : null;
      if (v.t === 'float' && Number.isInteger(v.v) && v.v >= min && v.v <= max) return { value: v.v === 0 ? 0 : v.v, lenient: true };
      return null;
    }
  }
}

function controlVerdict(name: string, fields: readonly Field[], payload: Buffer): Verdict {
  const c = new Cursor(payload);
  const last = new Map<string, Value>();
  let duplicate = false;
  try {
    const head = Number(c.uint(1));
    let n: number;
    if (head >= 0x80 && head <= 0x8f) n = head & 0x0f;
    else if (head === 0xde) n = c.size(2);
    else if (head === 0xdf) n = c.size(4);
    else return MALFORMED; // not a map (or not MessagePack at all)
    if (2 * n > c.left) return MALFORMED;
    for (let i = 0; i < n; i++) {
      const k = readValue(c);
      if (k.t !== 'str') return MALFORMED; // a key that is not a string
      const key = utf8(k.bytes);
      const value = readValue(c);
      if (key === null) return MALFORMED;
      if (last.has(key)) duplicate = true;
      last.set(key, value);
    }
    if (c.left !== 0) return MALFORMED; // trailing bytes
  } catch (err) {
    if (err instanceof Invalid) return MALFORMED;
    throw err;
  }
  const known = new Set(fields.map((f) => f.name));
  for (const key of last.keys()) if (!known.has(key)) return MALFORMED;
  const frame = new Map<string, string | number | Buffer>([['type', name]]);
  // Duplicate keys: a receiver may reject them; one that does not uses the last value (§2.1).
  let lenient = duplicate;
  for (const f of fields) {
    const v = last.get(f.name);
    if (v === undefined) {
      if (f.optional === true) continue;
      return MALFORMED;
    }
    const checked = fieldValue(f.kind, v);
    if (checked === null) return MALFORMED;
    lenient ||= checked.lenient;
    frame.set(f.name, checked.value);
  }
  if (name === 'CLIENT_FINISHED' && frame.has('identity') !== frame.has('signature')) return MALFORMED;
  // §4: PUTS_DONE's sha256s, a multiple of 32 bytes.
  if (name === 'PUTS_DONE') {
    const hashes = frame.get('sha256s');
    if (!Buffer.isBuffer(hashes) || hashes.length % 32 !== 0) return MALFORMED;
  }
  // §4: PUT_PACK's columns, n = len(sizes) / 4 entries each; names by NUL; sizes, total, mtimes and modes in range.
  if (name === 'PUT_PACK' && !packAgrees(frame)) return MALFORMED;
  // §4: GET's size and mtime, both or neither.
  if (name === 'GET' && frame.has('size') !== frame.has('mtime')) return MALFORMED;
  return lenient ? { kind: 'either', frame, code: 'MALFORMED_FRAME' } : { kind: 'accept', frame };
}

/** §4 and §9.11 step 8, read from the spec's words: the checks a PUT_PACK's columns must pass. */
function packAgrees(frame: ReadonlyMap<string, unknown>): boolean {
  const names = frame.get('names');
  const sizes = frame.get('sizes');
  const mtimes = frame.get('mtimes');
  const modes = frame.get('modes');
  const hashes = frame.get('sha256s');
  if (typeof names !== 'string' || !Buffer.isBuffer(sizes) || !Buffer.isBuffer(mtimes) || !Buffer.isBuffer(modes) || !Buffer.isBuffer(hashes)) return false;
  if (sizes.length % 4 !== 0) return false;
  const n = sizes.length / 4;
  if (n < 1 || n > 256 || mtimes.length !== 8 * n || modes.length !== 2 * n || hashes.length !== 32 * n) return false;
  const list = names.split('\u0000');
  if (list.length !== n || list.some((x) => Buffer.byteLength(x) < 1 || Buffer.byteLength(x) > 4096)) return false;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const size = sizes.readUInt32BE(4 * i);
    if (size > 1_048_576) return false;
    total += size;
    const mtime = mtimes.readBigInt64BE(8 * i);
    if (mtime > BigInt(SPEC.MAX_INT) || mtime < -BigInt(SPEC.MAX_INT)) return false;
    if (modes.readUInt16BE(2 * i) > 0o7777) return false;
  }
  return total >= 1 && total <= 1_048_576;
}

function dataVerdict(payload: Buffer): Verdict {
  if (payload.length < 9) return MALFORMED;
  if (payload.length - 8 > SPEC.MAX_DATA_CHUNK) return reject('FRAME_TOO_LARGE');
  const offset = payload.readBigUInt64BE(0);
  if (offset > BigInt(SPEC.MAX_INT)) return MALFORMED;
  return { kind: 'accept', frame: new Map<string, string | number | Buffer>([['type', 'DATA'], ['offset', Number(offset)], ['data', payload.subarray(8)]]) };
}

/** The spec's verdict on one frame body (type ‖ payload). */
export function referenceBody(body: Buffer): Verdict {
  if (body.length === 0) return MALFORMED;
  const type = TYPES.get(body[0] ?? -1);
  if (type === undefined) return reject('UNKNOWN_FRAME_TYPE');
  const payload = body.subarray(1);
  if (type.fields === null) return dataVerdict(payload);
  if (payload.length > SPEC.MAX_CONTROL_PAYLOAD) return reject('FRAME_TOO_LARGE');
  return controlVerdict(type.name, type.fields, payload);
}
