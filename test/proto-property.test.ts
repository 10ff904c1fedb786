// Properties of the codec and reader (spec §2), seeded and bounded (fast-check).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import {
  decodeBody,
  encodeBody,
  encodeBodyParts,
  encodeFrame,
  LENGTH_PREFIX_BYTES,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MIN_RECORD_LENGTH_BYTES,
  StreamReader,
  StxError,
  type Frame,
} from '../src/proto/index.js';
import { encodePayloadMap, encodePayloadMapAfter } from '../src/proto/msgpack.js';
import { chunk } from './fuzz/chunks.js';

const RUNS = { numRuns: 300, seed: 0x57c1, endOnFailure: true };
const PLAINTEXT = { min: 1, max: MAX_PLAINTEXT_FRAME_LENGTH_BYTES };

const bytes = (n: number): fc.Arbitrary<Buffer> => fc.uint8Array({ minLength: n, maxLength: n }).map((u) => Buffer.from(u));
const uint = fc.oneof(fc.nat(), fc.maxSafeNat(), fc.constantFrom(0, 2 ** 31, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER));
const int = fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(-(2 ** 31) - 1, -(2 ** 53) + 1));
const text = (max: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'grapheme', maxLength: max }).filter((s) => Buffer.byteLength(s) <= max);

const frame: fc.Arbitrary<Frame> = fc.oneof(
  fc.record({ type: fc.constant('CLIENT_HELLO' as const), random: bytes(32), x25519: bytes(32) }),
  fc.record({
    type: fc.constant('SERVER_HELLO' as const),
    random: bytes(32),
    x25519: bytes(32),
    server_key: fc.uint8Array({ minLength: 1, maxLength: 600 }).map((u) => Buffer.from(u)),
  }),
  fc.record({ type: fc.constant('KEY_EXCHANGE' as const), encrypted_secret: fc.uint8Array({ minLength: 1, maxLength: 1024 }).map((u) => Buffer.from(u)) }),
  fc.record({ type: fc.constant('CLIENT_FINISHED' as const), verify: bytes(32) }),
  fc.record({ type: fc.constant('CLIENT_FINISHED' as const), verify: bytes(32), identity: bytes(32), signature: bytes(64) }),
  fc.record({ type: fc.constant('SERVER_FINISHED' as const), verify: bytes(32) }),
  fc.record({
    type: fc.constant('OPEN' as const),
    name: text(200).filter((s) => s.length > 0),
    size: uint,
    mtime: int,
    mode: fc.integer({ min: 0, max: 0o7777 }),
  }),
  fc.record({ type: fc.constant('OPEN_OK' as const), offset: uint }),
  fc.record({ type: fc.constant('DATA' as const), offset: uint, data: fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((u) => Buffer.from(u)) }),
  fc.record({ type: fc.constant('ACK' as const), offset: uint }),
  fc.record({ type: fc.constant('END' as const), sha256: bytes(32) }),
  fc.record({ type: fc.constant('DONE' as const), size: uint, sha256: bytes(32) }),
  fc.record({ type: fc.constant('ERROR' as const), code: uint, message: text(300) }),
  fc.record({ type: fc.constant('PING' as const), seq: uint }),
  fc.record({ type: fc.constant('PONG' as const), seq: uint }),
  fc.record({ type: fc.constant('GOAWAY' as const), code: uint, message: text(300) }),
);

/** Splits `buf` at the given cut points (any boundaries, including empty pieces). */
const cutAt = (buf: Buffer, cuts: number[]): Buffer[] => chunk(buf, { bytewise: false, cuts });

/** Feeds chunks to a reader; returns frames, or the StxError code. Any other exception escapes. */
function feed(chunks: Buffer[], bounds: { min: number; max: number }, decode: boolean): { frames: Frame[]; code?: string; maxPending: number } {
  const reader = new StreamReader();
  const frames: Frame[] = [];
  let maxPending = 0;
  try {
    for (const c of chunks) {
      reader.push(c);
      maxPending = Math.max(maxPending, reader.pending);
      for (let raw = reader.next(bounds); raw !== null; raw = reader.next(bounds)) {
        assert.ok(raw.length <= LENGTH_PREFIX_BYTES + bounds.max, 'a frame larger than the limit was returned');
        if (decode) frames.push(decodeBody(raw.subarray(LENGTH_PREFIX_BYTES)));
      }
    }
    reader.end();
    return { frames, maxPending };
  } catch (err) {
    if (err instanceof StxError) return { frames, code: err.code, maxPending };
    throw err;
  }
}

it('decode(encode(f)) = f for every frame type', () => {
  fc.assert(
    fc.property(frame, (f) => {
      const back = decodeBody(encodeBody(f));
      assert.deepEqual({ ...back }, { ...f });
      assert.deepEqual(encodeBody(back), encodeBody(f));
    }),
    RUNS,
  );
});

it('any chunking of a valid stream gives the same frames', () => {
  const control = frame.filter((f) => f.type !== 'DATA');
  fc.assert(
    fc.property(fc.array(control, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 20 }), (frames, cuts) => {
      const stream = Buffer.concat(frames.map(encodeFrame));
      const result = feed(cutAt(stream, cuts), PLAINTEXT, true);
      assert.equal(result.code, undefined);
      assert.deepEqual(result.frames.map(encodeBody), frames.map(encodeBody));
    }),
    RUNS,
  );
});

it('random bytes in any chunking give frames or a typed error, never more buffered than a frame', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 10 }), (u, cuts) => {
      const chunks = cutAt(Buffer.from(u), cuts);
      const largest = Math.max(0, ...chunks.map((c) => c.length));
      const result = feed(chunks, PLAINTEXT, true);
      assert.ok(result.maxPending <= LENGTH_PREFIX_BYTES + PLAINTEXT.max + largest);
    }),
    RUNS,
  );
});

it('a stream of valid frames with mutated bytes gives frames or a typed error', () => {
  fc.assert(
    fc.property(
      fc.array(frame.filter((f) => f.type !== 'DATA'), { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      (frames, flips, cuts) => {
        const stream = Buffer.concat(frames.map(encodeFrame));
        for (const [at, value] of flips) stream[at % stream.length] = value;
        feed(cutAt(stream, cuts), PLAINTEXT, true);
      },
    ),
    RUNS,
  );
});

it('random frame bodies give a frame or a typed error', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0x30 }), fc.uint8Array({ maxLength: 200 }), (type, payload) => {
      try {
        decodeBody(Buffer.concat([Buffer.from([type]), payload]));
      } catch (err) {
        assert.ok(err instanceof StxError, `not a typed error: ${String(err)}`);
      }
    }),
    RUNS,
  );
});

it('record lengths outside the limits fail before the body arrives', () => {
  const bounds = { min: MIN_RECORD_LENGTH_BYTES, max: MAX_RECORD_LENGTH_BYTES };
  fc.assert(
    fc.property(fc.oneof(fc.integer({ min: 0, max: MIN_RECORD_LENGTH_BYTES - 1 }), fc.integer({ min: MAX_RECORD_LENGTH_BYTES + 1, max: 2 ** 32 - 1 })), (len) => {
      const head = Buffer.alloc(4);
      head.writeUInt32BE(len);
      const result = feed([head], bounds, false);
      assert.ok(result.code === 'FRAME_TOO_LARGE' || result.code === 'MALFORMED_FRAME');
    }),
    RUNS,
  );
});

/** The canonical encoding of §2.1 written the plain way, header by header: what encodePayloadMap must equal. */
function referencePayloadMap(fields: ReadonlyArray<readonly [string, Buffer | string | number]>): Buffer {
  const head = (n: number, fix: number, fixMax: number, h16: number, h32: number, h8?: number): Buffer => {
    if (fix >= 0 && n <= fixMax) return Buffer.from([fix | n]);
    if (h8 !== undefined && n <= 0xff) return Buffer.from([h8, n]);
    if (n <= 0xffff) return Buffer.from([h16, n >> 8, n & 0xff]);
    const out = Buffer.alloc(5, h32);
    out.writeUInt32BE(n, 1);
    return out;
  };
  const str = (s: string): Buffer => Buffer.concat([head(Buffer.byteLength(s), 0xa0, 31, 0xda, 0xdb, 0xd9), Buffer.from(s)]);
  const int = (v: number): Buffer => {
    const typed = (type: number, n: number, write: (b: Buffer) => void): Buffer => {
      const b = Buffer.alloc(1 + n, type);
      write(b);
      return b;
    };
    if (v >= 0) {
      if (v <= 0x7f) return Buffer.from([v]);
      if (v <= 0xff) return Buffer.from([0xcc, v]);
      if (v <= 0xffff) return typed(0xcd, 2, (b) => b.writeUInt16BE(v, 1));
      if (v <= 0xffff_ffff) return typed(0xce, 4, (b) => b.writeUInt32BE(v, 1));
      return typed(0xcf, 8, (b) => b.writeBigUInt64BE(BigInt(v), 1));
    }
    if (v >= -32) return Buffer.from([v & 0xff]);
    if (v >= -0x80) return typed(0xd0, 1, (b) => b.writeInt8(v, 1));
    if (v >= -0x8000) return typed(0xd1, 2, (b) => b.writeInt16BE(v, 1));
    if (v >= -0x8000_0000) return typed(0xd2, 4, (b) => b.writeInt32BE(v, 1));
    return typed(0xd3, 8, (b) => b.writeBigInt64BE(BigInt(v), 1));
  };
  const parts = [head(fields.length, 0x80, 15, 0xde, 0xdf)];
  for (const [key, value] of fields) {
    parts.push(str(key));
    if (Buffer.isBuffer(value)) parts.push(head(value.length, -1, -1, 0xc5, 0xc6, 0xc4), value);
    else parts.push(typeof value === 'string' ? str(value) : int(value));
  }
  return Buffer.concat(parts);
}

it('payload maps are written in the canonical encoding, in one buffer (every header and integer size)', () => {
  const value = fc.oneof(
    int,
    uint,
    fc.integer({ min: -0x8001, max: 0x1_0001 }),
    text(300),
    fc.constantFrom('x'.repeat(31), 'x'.repeat(32), 'é'.repeat(128), 'x'.repeat(0x1_0000), '\ud800 lone'),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    fc.constantFrom(255, 256, 0xffff, 0x1_0000).map((n) => Buffer.alloc(n, 7)),
  );
  const fields = fc.array(fc.tuple(text(40), value), { maxLength: 20 });
  fc.assert(
    fc.property(fields, (f) => {
      const want = referencePayloadMap(f);
      assert.deepEqual(encodePayloadMap(f), want);
      const last = f[f.length - 1];
      if (last !== undefined && Buffer.isBuffer(last[1])) {
        // The last bin kept apart (PUT_INLINE's data): the head then its bytes are the same map.
        const apart = encodePayloadMapAfter(f, 1, true);
        assert.deepEqual(Buffer.concat([apart.subarray(1), last[1]]), want);
      }
    }),
    { ...RUNS, numRuns: 200 },
  );
  assert.equal(encodePayloadMap(Array.from({ length: 16 }, (_, i) => [`k${i}`, i] as const))[0], 0xde);
});

it('PUT_INLINE in parts is its whole body', () => {
  const put = fc.record({
    type: fc.constant('PUT_INLINE' as const),
    name: text(200).filter((s) => s.length > 0),
    mtime: int,
    mode: fc.integer({ min: 0, max: 0o7777 }),
    sha256: bytes(32),
    data: fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.constantFrom(255, 256, 4096, 12_000).map((n) => new Uint8Array(n))).map((u) => Buffer.from(u)),
  });
  fc.assert(
    fc.property(put, (f) => {
      assert.deepEqual(Buffer.concat(encodeBodyParts(f)), encodeBody(f));
      assert.deepEqual(decodeBody(encodeBody(f)), { ...f });
    }),
    { ...RUNS, numRuns: 100 },
  );
});
