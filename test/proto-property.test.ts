// Properties of the codec and reader (spec §2), seeded and bounded (fast-check).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import {
  decodeBody,
  encodeBody,
  encodeFrame,
  LENGTH_PREFIX_BYTES,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MIN_RECORD_LENGTH_BYTES,
  StreamReader,
  StxError,
  type Frame,
} from '../src/proto/index.js';
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
