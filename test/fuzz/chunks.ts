// Arbitrary chunking of a stream, as TCP may deliver it: cut points (any boundaries, empty pieces
// included) or, for short streams, one byte per chunk.
import fc from 'fast-check';

export interface Chunking {
  readonly cuts: readonly number[];
  readonly bytewise: boolean;
}

export const chunkingArb: fc.Arbitrary<Chunking> = fc.record({
  cuts: fc.array(fc.nat(), { maxLength: 16 }),
  bytewise: fc.boolean(),
});

/** Streams longer than this are cut at the cut points even when `bytewise` asks for bytes. */
const BYTEWISE_MAX = 4096;

export function chunk(buf: Buffer, c: Chunking): Buffer[] {
  if (c.bytewise && buf.length <= BYTEWISE_MAX) {
    return Array.from({ length: buf.length }, (_, i) => buf.subarray(i, i + 1));
  }
  const points = [...new Set(c.cuts.map((x) => x % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

export function showChunking(c: Chunking): string {
  return c.bytewise ? 'bytewise' : `cuts [${c.cuts.join(',')}]`;
}
