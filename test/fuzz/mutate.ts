// Byte-level mutations of valid streams: bit flips, byte sets, truncation, deletion and
// duplication of ranges, insertion of dictionary tokens, splicing with another stream, and
// length fields set to edge values. A mutation is data (so fast-check shrinks it: positions
// shrink towards 0 and lists towards empty); apply() interprets it against the current bytes.
import fc from 'fast-check';

/** Length values at and around every limit of §2 and §8, and the u32 extremes. */
export const EDGE_LENGTHS: readonly number[] = [
  0, 1, 16, 17, 18, 16384, 16385, 16386, 1048584, 1048585, 1048586, 1048600, 1048601, 1048602, 2 ** 31, 2 ** 32 - 1,
];

const hex = (h: string): Buffer => Buffer.from(h.replace(/ /g, ''), 'hex');
const fixstr = (s: string): Buffer => Buffer.concat([Buffer.from([0xa0 | s.length]), Buffer.from(s, 'latin1')]);

/** Tokens worth inserting whole: MessagePack heads at their limits, odd keys, bad UTF-8. */
export const DICTIONARY: readonly Buffer[] = [
  hex('c0'), hex('c1'), hex('c2'), hex('c3'), hex('80'), hex('90'), hex('91 91 91 91'), hex('81 a0 c0'),
  hex('c4 00'), hex('c4 20'), hex('c5 ff ff'), hex('c6 ff ff ff ff'), hex('d9 ff'), hex('da ff ff'), hex('db ff ff ff ff'),
  hex('dc ff ff'), hex('dd ff ff ff ff'), hex('de ff ff'), hex('df ff ff ff ff'),
  hex('cc ff'), hex('cd ff ff'), hex('ce ff ff ff ff'), hex('cf ff ff ff ff ff ff ff ff'), hex('cf 00 20 00 00 00 00 00 00'),
  hex('cf 00 1f ff ff ff ff ff ff'), hex('d3 80 00 00 00 00 00 00 00'), hex('d3 ff e0 00 00 00 00 00 01'), hex('ff'), hex('e0'),
  hex('cb 7f f8 00 00 00 00 00 00'), hex('cb 80 00 00 00 00 00 00 00'), hex('cb 3f f8 00 00 00 00 00 00'), hex('ca 3f 80 00 00'),
  hex('cb 43 40 00 00 00 00 00 00'), hex('d4 01 05'), hex('d6 ff 00 00 00 01'), hex('c7 00 01'), hex('c9 ff ff ff ff 01'),
  fixstr('__proto__'), fixstr('constructor'), fixstr('toString'), fixstr('seq'), fixstr('offset'), fixstr('name'),
  fixstr('verify'), fixstr('identity'), fixstr('signature'), fixstr('message'), fixstr('code'), fixstr('sha256'),
  hex('a1 ff'), hex('a2 c0 af'), hex('a3 ed a0 80'), hex('a4 f4 90 80 80'), hex('a2 e2 82'), hex('a3 ef bb bf'),
  hex('ef bb bf'), hex('ed a0 80'), hex('f8 88 80 80 80'), hex('00 00 00 00'), hex('ff ff ff ff'),
];

export type Mutation =
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'delete'; readonly at: number; readonly len: number }
  | { readonly kind: 'duplicate'; readonly at: number; readonly len: number; readonly to: number }
  | { readonly kind: 'insert'; readonly at: number; readonly token: number }
  | { readonly kind: 'splice'; readonly at: number; readonly other: number; readonly otherAt: number }
  | { readonly kind: 'length'; readonly unit: number; readonly value: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xc1, 0xff) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 96 }), to: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), token: fc.nat(DICTIONARY.length - 1) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), other: fc.nat(), otherAt: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('length' as const), unit: fc.nat(15), value: fc.constantFrom(...EDGE_LENGTHS) }) },
);

export const mutationsArb = (maxLength = 4): fc.Arbitrary<Mutation[]> => fc.array(mutationArb, { minLength: 1, maxLength });

export interface MutationContext {
  /** Streams a splice may take its tail from. */
  readonly others: readonly Buffer[];
  /** Offsets of the length fields in `bytes` (where frames or records start). */
  readonly units: (bytes: Buffer) => number[];
}

/** Offsets of u32 length prefixes walking from `start`, as long as each announced unit fits. */
export function lengthUnits(bytes: Buffer, start = 0, limit = 64): number[] {
  const out: number[] = [];
  let pos = start;
  while (pos + 4 <= bytes.length && out.length < limit) {
    out.push(pos);
    const len = bytes.readUInt32BE(pos);
    if (len === 0 || pos + 4 + len > bytes.length) break;
    pos += 4 + len;
  }
  return out;
}

function one(bytes: Buffer, m: Mutation, ctx: MutationContext): Buffer {
  const n = bytes.length;
  switch (m.kind) {
    case 'flip': {
      if (n === 0) return bytes;
      const out = Buffer.from(bytes);
      out[m.at % n] = (out[m.at % n] ?? 0) ^ (1 << m.bit);
      return out;
    }
    case 'set': {
      if (n === 0) return bytes;
      const out = Buffer.from(bytes);
      out[m.at % n] = m.value;
      return out;
    }
    case 'truncate':
      return bytes.subarray(0, m.at % (n + 1));
    case 'delete': {
      const at = m.at % (n + 1);
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(n, at + m.len))]);
    }
    case 'duplicate': {
      const at = m.at % (n + 1);
      const piece = bytes.subarray(at, Math.min(n, at + m.len));
      const to = m.to % (n + 1);
      return Buffer.concat([bytes.subarray(0, to), piece, bytes.subarray(to)]);
    }
    case 'insert': {
      const at = m.at % (n + 1);
      return Buffer.concat([bytes.subarray(0, at), DICTIONARY[m.token] ?? Buffer.alloc(0), bytes.subarray(at)]);
    }
    case 'splice': {
      const other = ctx.others.length === 0 ? bytes : (ctx.others[m.other % ctx.others.length] ?? bytes);
      return Buffer.concat([bytes.subarray(0, m.at % (n + 1)), other.subarray(m.otherAt % (other.length + 1))]);
    }
    case 'length': {
      const units = ctx.units(bytes);
      const pos = units[m.unit % Math.max(1, units.length)];
      if (pos === undefined || pos + 4 > bytes.length) return bytes;
      const out = Buffer.from(bytes);
      out.writeUInt32BE(m.value, pos);
      return out;
    }
  }
}

/** Applies the mutations in order; the input is never modified. */
export function applyMutations(bytes: Buffer, mutations: readonly Mutation[], ctx: MutationContext): Buffer {
  let out = bytes;
  for (const m of mutations) out = one(out, m, ctx);
  return out;
}

export function showMutations(mutations: readonly Mutation[]): string {
  return mutations.map((m) => JSON.stringify(m)).join(', ');
}
