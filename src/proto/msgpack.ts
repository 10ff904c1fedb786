// Reader of control payloads (spec/PROTOCOL.md §2.1): exactly one MessagePack map with str keys
// and scalar values, nothing else; every failure is MALFORMED_FRAME. It replaces msgpackr's
// decoder, whose strings depended on an optional native addon: without msgpackr-extract it
// dropped a leading BOM from strings over 64 bytes, so a valid name arrived changed.
import { ProtocolError } from './errors.js';

/** A decoded value: integers beyond 32 bits as bigint when 64-bit encoded, floats as number. */
type PayloadValue = number | bigint | string | Buffer | boolean | null;

/** str bytes → string, a leading BOM kept; invalid UTF-8 is MALFORMED_FRAME (§2.1). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class Reader {
  private pos = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly frame: string,
  ) {}

  get left(): number {
    return this.buf.length - this.pos;
  }

  fail(detail: string): never {
    throw new ProtocolError('MALFORMED_FRAME', `${this.frame}: ${detail}`);
  }

  bytes(n: number): Buffer {
    if (n > this.left) this.fail('invalid MessagePack (truncated)');
    this.pos += n;
    return this.buf.subarray(this.pos - n, this.pos);
  }

  byte(): number {
    return this.bytes(1).readUInt8(0);
  }

  u16(): number {
    return this.bytes(2).readUInt16BE(0);
  }

  u32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  str(n: number): string {
    const bytes = this.bytes(n);
    try {
      return UTF8.decode(bytes);
    } catch {
      return this.fail('str is not valid UTF-8');
    }
  }

  value(): PayloadValue {
    const h = this.byte();
    if (h <= 0x7f) return h;
    if (h >= 0xe0) return h - 0x100;
    if (h >= 0xa0 && h <= 0xbf) return this.str(h & 0x1f);
    switch (h) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bytes(this.byte());
      case 0xc5: return this.bytes(this.u16());
      case 0xc6: return this.bytes(this.u32());
      case 0xca: return this.bytes(4).readFloatBE(0);
      case 0xcb: return this.bytes(8).readDoubleBE(0);
      case 0xcc: return this.byte();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.bytes(8).readBigUInt64BE(0);
      case 0xd0: return this.bytes(1).readInt8(0);
      case 0xd1: return this.bytes(2).readInt16BE(0);
      case 0xd2: return this.bytes(4).readInt32BE(0);
      case 0xd3: return this.bytes(8).readBigInt64BE(0);
      case 0xd9: return this.str(this.byte());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
    }
    if (h === 0xc1) return this.fail('invalid MessagePack (byte 0xc1)');
    if ((h >= 0xc7 && h <= 0xc9) || (h >= 0xd4 && h <= 0xd8)) return this.fail('an extension type');
    return this.fail('a nested map or array where a field value belongs');
  }
}

/**
 * The payload's fields in order of appearance; for a duplicate key the last value wins (§2.1).
 * Throws MALFORMED_FRAME for anything but one map of str keys to scalars with no trailing bytes.
 */
export function readPayloadMap(frame: string, payload: Buffer): Map<string, PayloadValue> {
  const r: Reader = new Reader(payload, frame);
  const head = r.byte();
  let count: number;
  if (head >= 0x80 && head <= 0x8f) count = head & 0x0f;
  else if (head === 0xde) count = r.u16();
  else if (head === 0xdf) count = r.u32();
  else return r.fail('payload must be a map');
  if (2 * count > r.left) r.fail('invalid MessagePack (map longer than the payload)');
  const fields = new Map<string, PayloadValue>();
  for (let i = 0; i < count; i++) {
    const key = r.value();
    if (typeof key !== 'string') r.fail('a key that is not a string');
    fields.set(key, r.value());
  }
  if (r.left !== 0) r.fail('invalid MessagePack (trailing bytes)');
  return fields;
}

/** A field value as senders write it (§2.1): bin, str or integer. */
export type EncodableValue = Buffer | string | number;

/**
 * The canonical encoding of a payload map (§2.1): a map of the given fields in the given order,
 * each value in its shortest MessagePack format, integers ≥ 0 as unsigned. Decoders accept any
 * valid format (readPayloadMap); senders write only this, so `encode(decode(b))` is `b` for
 * canonical input.
 */
export function encodePayloadMap(fields: ReadonlyArray<readonly [string, EncodableValue]>): Buffer {
  return encodePayloadMapAfter(fields, 0, false);
}

/**
 * encodePayloadMap's bytes in one buffer after `lead` bytes left for the caller (a frame's type
 * byte). With `lastApart`, the last field's value (a bin) is written up to its header only: its
 * bytes are the caller's to send after the buffer (PUT_INLINE's data, codec.ts encodeBodyParts).
 * Sized first and written once: a frame costs one allocation, not one per header and value.
 */
export function encodePayloadMapAfter(fields: ReadonlyArray<readonly [string, EncodableValue]>, lead: number, lastApart: boolean): Buffer {
  if (lastApart && !Buffer.isBuffer(fields[fields.length - 1]?.[1])) throw new TypeError('the last field kept apart is no bin');
  let size = lead + headBytes(fields.length, 15, false);
  for (let i = 0; i < fields.length; i++) {
    const [key, value] = fields[i] as readonly [string, EncodableValue];
    size += strBytes(Buffer.byteLength(key, 'utf8'));
    if (Buffer.isBuffer(value)) size += headBytes(value.length, -1, true) + (lastApart && i === fields.length - 1 ? 0 : value.length);
    else if (typeof value === 'string') size += strBytes(Buffer.byteLength(value, 'utf8'));
    else size += intBytes(value);
  }
  const out = Buffer.allocUnsafe(size);
  let at = writeHead(out, lead, fields.length, 0x80, 15, 0xde, 0xdf);
  for (let i = 0; i < fields.length; i++) {
    const [key, value] = fields[i] as readonly [string, EncodableValue];
    at = writeStr(out, at, key);
    if (Buffer.isBuffer(value)) {
      at = writeHead(out, at, value.length, -1, -1, 0xc5, 0xc6, 0xc4);
      if (!lastApart || i < fields.length - 1) at += value.copy(out, at);
    } else if (typeof value === 'string') at = writeStr(out, at, value);
    else at = writeInt(out, at, value);
  }
  if (at !== size) throw new Error(`payload map of ${at} bytes, sized ${size}`);
  return out;
}

/** Bytes of a str of `n` UTF-8 bytes, header included. */
function strBytes(n: number): number {
  return headBytes(n, 31, true) + n;
}

/** Bytes of the header for a length `n` (writeHead): fix form up to `fixMax` (-1: none), 8-bit form if `h8`, 16-bit, 32-bit. */
function headBytes(n: number, fixMax: number, h8: boolean): number {
  if (n <= fixMax) return 1;
  if (h8 && n <= 0xff) return 2;
  return n <= 0xffff ? 3 : 5;
}

function writeStr(out: Buffer, at: number, s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  at = writeHead(out, at, n, 0xa0, 31, 0xda, 0xdb, 0xd9);
  return at + out.write(s, at, n, 'utf8');
}

/**
 * The header for a length `n` at `at`: fix form (`fix | n`, if `fix` ≥ 0 and n ≤ fixMax), else
 * the 8-bit form if there is one, else 16-bit, else 32-bit. Returns where it ends.
 */
function writeHead(out: Buffer, at: number, n: number, fix: number, fixMax: number, h16: number, h32: number, h8?: number): number {
  if (fix >= 0 && n <= fixMax) {
    out[at] = fix | n;
    return at + 1;
  }
  if (h8 !== undefined && n <= 0xff) {
    out[at] = h8;
    out[at + 1] = n;
    return at + 2;
  }
  if (n <= 0xffff) {
    out[at] = h16;
    out[at + 1] = n >> 8;
    out[at + 2] = n & 0xff;
    return at + 3;
  }
  out[at] = h32;
  out.writeUInt32BE(n, at + 1);
  return at + 5;
}

/** Bytes of integer `v` in its shortest format (writeInt). */
function intBytes(v: number): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not a safe integer`);
  if (v >= 0) return v <= 0x7f ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffff_ffff ? 5 : 9;
  return v >= -32 ? 1 : v >= -0x80 ? 2 : v >= -0x8000 ? 3 : v >= -0x8000_0000 ? 5 : 9;
}

function writeInt(out: Buffer, at: number, v: number): number {
  if (v >= 0) {
    if (v <= 0x7f) {
      out[at] = v;
      return at + 1;
    }
    if (v <= 0xff) {
      out[at] = 0xcc;
      out[at + 1] = v;
      return at + 2;
    }
    if (v <= 0xffff) {
      out[at] = 0xcd;
      out[at + 1] = v >> 8;
      out[at + 2] = v & 0xff;
      return at + 3;
    }
    if (v <= 0xffff_ffff) {
      out[at] = 0xce;
      out.writeUInt32BE(v, at + 1);
      return at + 5;
    }
    out[at] = 0xcf;
    out.writeBigUInt64BE(BigInt(v), at + 1);
    return at + 9;
  }
  if (v >= -32) {
    out[at] = v & 0xff;
    return at + 1;
  }
  if (v >= -0x80) {
    out[at] = 0xd0;
    out[at + 1] = v & 0xff;
    return at + 2;
  }
  if (v >= -0x8000) {
    out[at] = 0xd1;
    out.writeInt16BE(v, at + 1);
    return at + 3;
  }
  if (v >= -0x8000_0000) {
    out[at] = 0xd2;
    out.writeInt32BE(v, at + 1);
    return at + 5;
  }
  out[at] = 0xd3;
  out.writeBigInt64BE(BigInt(v), at + 1);
  return at + 9;
}
