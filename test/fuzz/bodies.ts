// Structure-aware generator of frame bodies that are almost valid (spec §2.1, §2.2): a map whose
// keys are mostly the frame's own fields and whose values are MessagePack scalars written in
// every width (shortest or not), at the edges of each range, as floats, as invalid UTF-8; plus
// bodies at the exact size limits. Written with a small MessagePack writer of our own so that
// non-canonical forms, wrong counts and trailing bytes are possible.
import fc from 'fast-check';
import { FRAME_TYPES, SCHEMAS, type FrameName } from '../../src/proto/index.js';

const u8 = (...b: number[]): Buffer => Buffer.from(b);
function be(v: bigint, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** Every MessagePack integer format that can hold v. */
function intForms(v: bigint): Buffer[] {
  const forms: Buffer[] = [];
  if (v >= 0n && v <= 0x7fn) forms.push(u8(Number(v)));
  if (v >= -32n && v < 0n) forms.push(u8(Number(v + 0x100n)));
  const unsigned: [number, number][] = [[0xcc, 1], [0xcd, 2], [0xce, 4], [0xcf, 8]];
  for (const [head, n] of unsigned) if (v >= 0n && v < 1n << BigInt(8 * n)) forms.push(Buffer.concat([u8(head), be(v, n)]));
  const signed: [number, number][] = [[0xd0, 1], [0xd1, 2], [0xd2, 4], [0xd3, 8]];
  for (const [head, n] of signed) {
    const lim = 1n << BigInt(8 * n - 1);
    if (v >= -lim && v < lim) forms.push(Buffer.concat([u8(head), be(BigInt.asUintN(8 * n, v), n)]));
  }
  return forms;
}

function sized(raw: Buffer, heads: readonly [number | null, number, number][]): Buffer[] {
  // heads: [fix head or null, sized head, size bytes]; a fix form is used when raw fits in 5 bits
  const forms: Buffer[] = [];
  for (const [fix, head, n] of heads) {
    if (fix !== null) {
      if (raw.length <= 31) forms.push(Buffer.concat([u8(fix | raw.length), raw]));
    } else if (raw.length < 2 ** (8 * n)) {
      forms.push(Buffer.concat([u8(head), be(BigInt(raw.length), n), raw]));
    }
  }
  return forms;
}
const strForms = (raw: Buffer): Buffer[] => sized(raw, [[0xa0, 0, 0], [null, 0xd9, 1], [null, 0xda, 2], [null, 0xdb, 4]]);
const binForms = (raw: Buffer): Buffer[] => sized(raw, [[null, 0xc4, 1], [null, 0xc5, 2], [null, 0xc6, 4]]);

const INTS = [0n, 1n, 127n, 128n, 255n, 256n, 0o7777n, 0o10000n, 65535n, 65536n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n,
  -1n, -32n, -33n, -128n, -129n, -(2n ** 31n), -(2n ** 53n) + 1n, -(2n ** 53n), -(2n ** 63n)];
const FLOATS = [0, -0, 1, 1.5, -1, 2 ** 53, 2 ** 53 - 1, Number.NaN, Number.POSITIVE_INFINITY, 0o7777];
const STR_BYTES: readonly Buffer[] = [
  Buffer.alloc(0), Buffer.from('a'), Buffer.from('hello.txt'), Buffer.alloc(1024, 0x6d), Buffer.alloc(1025, 0x6d), Buffer.alloc(4096, 0x61), Buffer.alloc(4097, 0x61),
  Buffer.concat([Buffer.alloc(4095, 0x61), Buffer.from('é')]), Buffer.from('é'.repeat(512)), Buffer.from('\uFEFF' + 'x'.repeat(80)), Buffer.from('\uFFFD'),
  u8(0xff), u8(0xc0, 0xaf), u8(0xed, 0xa0, 0x80), u8(0xf4, 0x90, 0x80, 0x80), u8(0xe2, 0x82), Buffer.concat([Buffer.alloc(70, 0x61), u8(0xff)]),
  Buffer.concat([u8(0xef, 0xbb, 0xbf), Buffer.alloc(70, 0x61)]), u8(0x00), u8(0x7f),
];
const BIN_LENGTHS = [0, 1, 31, 32, 33, 63, 64, 65, 1024, 1025, 4096, 4097];

/** A MessagePack value: an integer, float, str, bin, nil, bool, ext, array or map in some form. */
const valueArb: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 4, arbitrary: fc.tuple(fc.constantFrom(...INTS), fc.nat()).map(([v, i]) => { const f = intForms(v); return f[i % f.length] ?? u8(0); }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...FLOATS), fc.boolean()).map(([v, single]) => {
    const out = Buffer.alloc(single ? 5 : 9);
    out[0] = single ? 0xca : 0xcb;
    if (single) out.writeFloatBE(v, 1);
    else out.writeDoubleBE(v, 1);
    return out;
  }) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...STR_BYTES), fc.nat()).map(([raw, i]) => { const f = strForms(raw); return f[i % f.length] ?? u8(0xa0); }) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...BIN_LENGTHS), fc.nat(), fc.nat(255)).map(([n, i, fill]) => { const f = binForms(Buffer.alloc(n, fill)); return f[i % f.length] ?? u8(0xc4, 0); }) },
  { weight: 1, arbitrary: fc.constantFrom(u8(0xc0), u8(0xc2), u8(0xc3), u8(0xd4, 0x01, 0x05), u8(0xd6, 0xff, 0, 0, 0, 1), u8(0x91, 0x01), u8(0x80), u8(0x81, 0xa1, 0x61, 0x01), u8(0xc1)) },
);

const FIELD_NAMES = [...new Set(Object.values(SCHEMAS).flatMap((specs) => specs.map((s) => s.name)))];
const ODD_KEYS: readonly Buffer[] = [u8(0xa0), u8(0xa9, ...Buffer.from('__proto__')), u8(0x01), u8(0xc0), u8(0xc4, 3, ...Buffer.from('seq')), u8(0x91, 0xa3, ...Buffer.from('seq')), u8(0xa3, 0x73, 0x65, 0xff)];

function mapHead(count: number, form: number): Buffer {
  if (form % 3 === 0 && count <= 15) return u8(0x80 | count);
  if (form % 3 === 1 && count <= 0xffff) return Buffer.concat([u8(0xde), be(BigInt(count), 2)]);
  return Buffer.concat([u8(0xdf), be(BigInt(count), 4)]);
}

type ControlName = Exclude<FrameName, 'DATA'>;
const CONTROL_NAMES = Object.keys(SCHEMAS).filter((t): t is ControlName => t in FRAME_TYPES && t !== 'DATA');

/** type ‖ map of (mostly) the type's fields with edge-case values; sometimes a wrong count or trailing bytes. */
export const controlBodyArb: fc.Arbitrary<Buffer> = fc
  .record({
    type: fc.constantFrom(...CONTROL_NAMES),
    entries: fc.array(
      fc.record({ key: fc.oneof({ weight: 6, arbitrary: fc.constant(-1) }, { weight: 2, arbitrary: fc.nat(FIELD_NAMES.length - 1) }, { weight: 1, arbitrary: fc.nat(ODD_KEYS.length - 1).map((i) => 1000 + i) }), field: fc.nat(), value: valueArb }),
      { maxLength: 5 },
    ),
    countSkew: fc.constantFrom(0, 0, 0, 0, 1, -1),
    form: fc.nat(2),
    trailing: fc.constantFrom(Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0), u8(0xc0), u8(0x00, 0x00)),
  })
  .map(({ type, entries, countSkew, form, trailing }) => {
    const own = SCHEMAS[type].map((s) => s.name);
    const parts: Buffer[] = [];
    for (const e of entries) {
      let key: Buffer;
      if (e.key >= 1000) key = ODD_KEYS[e.key - 1000] ?? u8(0xa0);
      else key = strForms(Buffer.from(e.key < 0 ? (own[e.field % own.length] ?? 'seq') : (FIELD_NAMES[e.key] ?? 'seq')))[0] ?? u8(0xa0);
      parts.push(key, e.value);
    }
    const count = Math.max(0, entries.length + countSkew);
    return Buffer.concat([u8(FRAME_TYPES[type]), mapHead(count, form), ...parts, trailing]);
  });

/** Control bodies around MAX_CONTROL_PAYLOAD (§2): payloads of 16382..16386 bytes. */
export const controlLimitArb: fc.Arbitrary<Buffer> = fc
  .tuple(fc.integer({ min: 16382, max: 16386 }), fc.constantFrom(...CONTROL_NAMES))
  .map(([size, type]) => {
    const payload = Buffer.alloc(size, 0xc0);
    payload[0] = 0x80; // an empty map followed by nils: too large, or trailing bytes
    return Buffer.concat([u8(FRAME_TYPES[type]), payload]);
  });

/** DATA bodies at the edges of §2.2: 0..8 payload bytes, chunks around 1 MiB, offsets around 2^53. */
export const dataLimitArb: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(fc.constantFrom(1, 2, 1048575, 1048576, 1048577), fc.constantFrom(0n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n)).map(([n, offset]) =>
    Buffer.concat([u8(FRAME_TYPES.DATA), be(offset, 8), Buffer.alloc(n, 0x44)]),
  ),
  fc.integer({ min: 0, max: 8 }).map((n) => Buffer.concat([u8(FRAME_TYPES.DATA), Buffer.alloc(n)])),
);
