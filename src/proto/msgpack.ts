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
  const parts: Buffer[] = [head(fields.length, 0x80, 15, 0xde, 0xdf)];
  for (const [key, value] of fields) {
    parts.push(encodeStr(key));
    if (Buffer.isBuffer(value)) parts.push(head(value.length, -1, -1, 0xc5, 0xc6, 0xc4), value);
    else if (typeof value === 'string') parts.push(encodeStr(value));
    else parts.push(encodeInt(value));
  }
  return Buffer.concat(parts);
}

/** The canonical header of a `bin` of `n` bytes (§2.1), for senders that keep the bytes apart. */
export function binHeader(n: number): Buffer {
  return head(n, -1, -1, 0xc5, 0xc6, 0xc4);
}

function encodeStr(s: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  return Buffer.concat([head(bytes.length, 0xa0, 31, 0xda, 0xdb, 0xd9), bytes]);
}

/**
 * The header for a length `n`: fix form (`fix | n`, if `fix` ≥ 0 and n ≤ fixMax), else the 8-bit
 * form if there is one, else 16-bit, else 32-bit.
 */
function head(n: number, fix: number, fixMax: number, h16: number, h32: number, h8?: number): Buffer {
  if (fix >= 0 && n <= fixMax) return Buffer.from([fix | n]);
  if (h8 !== undefined && n <= 0xff) return Buffer.from([h8, n]);
  if (n <= 0xffff) return Buffer.from([h16, n >> 8, n & 0xff]);
  const out = Buffer.alloc(5);
  out[0] = h32;
  out.writeUInt32BE(n, 1);
  return out;
}

function encodeInt(v: number): Buffer {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${v} is not a safe integer`);
  if (v >= 0) {
    if (v <= 0x7f) return Buffer.from([v]);
    if (v <= 0xff) return Buffer.from([0xcc, v]);
    if (v <= 0xffff) return Buffer.from([0xcd, v >> 8, v & 0xff]);
    const out = Buffer.alloc(v <= 0xffff_ffff ? 5 : 9);
    if (v <= 0xffff_ffff) {
      out[0] = 0xce;
      out.writeUInt32BE(v, 1);
    } else {
      out[0] = 0xcf;
      out.writeBigUInt64BE(BigInt(v), 1);
    }
    return out;
  }
  if (v >= -32) return Buffer.from([v & 0xff]);
  if (v >= -0x80) return Buffer.from([0xd0, v & 0xff]);
  const out = Buffer.alloc(v >= -0x8000 ? 3 : v >= -0x8000_0000 ? 5 : 9);
  if (v >= -0x8000) {
    out[0] = 0xd1;
    out.writeInt16BE(v, 1);
  } else if (v >= -0x8000_0000) {
    out[0] = 0xd2;
    out.writeInt32BE(v, 1);
  } else {
    out[0] = 0xd3;
    out.writeBigInt64BE(BigInt(v), 1);
  }
  return out;
}
