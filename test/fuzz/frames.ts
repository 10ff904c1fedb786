// Structure-aware generators of valid frames (spec §4), biased to the edges of every field:
// integers around 2^31, 2^32 and 2^53, strings and byte strings at their length limits, DATA
// chunks up to a few KiB. Encoded with our own encoder, they seed the byte-level mutations.
import fc from 'fast-check';
import { encodeBody, packFrame, type Frame, type FrameName } from '../../src/proto/index.js';

const bytes = (min: number, max = min): fc.Arbitrary<Buffer> =>
  fc.oneof(
    fc.uint8Array({ minLength: min, maxLength: Math.min(max, min + 64) }).map((u) => Buffer.from(u)),
    fc.constantFrom(min, max).map((n) => Buffer.alloc(n, 0x5a)),
  );

const uintArb = fc.oneof(
  fc.nat(),
  fc.maxSafeNat(),
  fc.constantFrom(0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1),
);
const intArb = fc.oneof(fc.maxSafeInteger(), fc.constantFrom(-1, -32, -33, -128, -129, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 53) + 1, 2 ** 53 - 1));

/** Strings of at most `max` UTF-8 bytes, with some exactly at the limit in multi-byte characters. */
const textArb = (min: number, max: number): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'grapheme', minLength: min, maxLength: 40 }).filter((s) => Buffer.byteLength(s) >= min && Buffer.byteLength(s) <= max),
    fc.constantFrom('a'.repeat(max), 'é'.repeat(Math.floor(max / 2)), '\u{1F600}'.repeat(Math.floor(max / 4)), '\uFEFF' + 'b'.repeat(Math.max(min, 80)), '\uFFFD'),
  );

/** One generator per frame type. */
export const FRAME_ARBS: { readonly [K in FrameName]: fc.Arbitrary<Frame> } = {
  CLIENT_HELLO: fc.oneof(
    fc.record({ type: fc.constant('CLIENT_HELLO' as const), random: bytes(32), x25519: bytes(32) }),
    fc.record({ type: fc.constant('CLIENT_HELLO' as const), random: bytes(32), x25519: bytes(32), ticket: bytes(1, 512), tickets: fc.integer({ min: 0, max: 1 }) }),
  ),
  SERVER_HELLO: fc.oneof(
    fc.record({ type: fc.constant('SERVER_HELLO' as const), random: bytes(32), x25519: bytes(32), server_key: bytes(1, 4096) }),
    fc.record({ type: fc.constant('SERVER_HELLO' as const), random: bytes(32), x25519: bytes(32), server_key: bytes(1, 4096), resumed: fc.integer({ min: 0, max: 1 }) }),
  ),
  KEY_EXCHANGE: fc.record({ type: fc.constant('KEY_EXCHANGE' as const), encrypted_secret: bytes(1, 1024) }),
  CLIENT_FINISHED: fc.oneof(
    fc.record({ type: fc.constant('CLIENT_FINISHED' as const), verify: bytes(32) }),
    fc.record({ type: fc.constant('CLIENT_FINISHED' as const), verify: bytes(32), identity: bytes(32), signature: bytes(64) }),
  ),
  SERVER_FINISHED: fc.record({ type: fc.constant('SERVER_FINISHED' as const), verify: bytes(32) }),
  OPEN: fc.oneof(
    fc.record({ type: fc.constant('OPEN' as const), name: textArb(1, 4096), size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
    fc.record({ type: fc.constant('OPEN' as const), name: textArb(1, 4096), size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), stream: bytes(16) }),
    fc.record({ type: fc.constant('OPEN' as const), name: textArb(1, 4096), size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), sha256: bytes(32) }),
  ),
  OPEN_OK: fc.record({ type: fc.constant('OPEN_OK' as const), offset: uintArb }),
  DATA: fc.record({ type: fc.constant('DATA' as const), offset: uintArb, data: bytes(1, 4096) }),
  ACK: fc.record({ type: fc.constant('ACK' as const), offset: uintArb }),
  END: fc.oneof(
    fc.record({ type: fc.constant('END' as const), sha256: bytes(32) }),
    fc.record({ type: fc.constant('END' as const), sha256: bytes(32), size: uintArb }),
  ),
  DONE: fc.record({ type: fc.constant('DONE' as const), size: uintArb, sha256: bytes(32) }),
  PROGRESS: fc.record({ type: fc.constant('PROGRESS' as const), done: uintArb, total: uintArb }),
  MKDIR: fc.record({ type: fc.constant('MKDIR' as const), name: textArb(1, 4096), mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
  SYMLINK: fc.record({ type: fc.constant('SYMLINK' as const), name: textArb(1, 4096), target: textArb(1, 4096), mtime: intArb }),
  MADE: fc.constant({ type: 'MADE' as const }),
  PUT: fc.record({ type: fc.constant('PUT' as const), name: textArb(1, 4096), size: fc.integer({ min: 0, max: 1_048_576 }), mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
  PUT_DONE: fc.record({ type: fc.constant('PUT_DONE' as const), size: uintArb, sha256: bytes(32) }),
  PUT_FAILED: fc.record({ type: fc.constant('PUT_FAILED' as const), code: uintArb, message: textArb(0, 1024) }),
  PUT_INLINE: fc.record({ type: fc.constant('PUT_INLINE' as const), name: textArb(1, 4096), mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), sha256: bytes(32), data: bytes(0, 8192) }),
  PUTS_DONE: fc.integer({ min: 1, max: 511 }).chain((n) => bytes(32 * n).map((sha256s) => ({ type: 'PUTS_DONE' as const, sha256s }))),
  END_DETACHED: fc.record({ type: fc.constant('END_DETACHED' as const), sha256: bytes(32) }),
  // A valid pack (§9.11 step 8): n files of short names and small sizes, total ≥ 1.
  PUT_PACK: fc
    .array(fc.record({ name: fc.stringMatching(/^[a-z0-9/._-]{1,24}$/), size: fc.integer({ min: 0, max: 4096 }), mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), sha256: bytes(32) }), { minLength: 1, maxLength: 40 })
    .filter((files) => files.some((f) => f.size > 0))
    .map((files) => packFrame(files)),
  ERROR: fc.record({ type: fc.constant('ERROR' as const), code: uintArb, message: textArb(0, 1024) }),
  PING: fc.record({ type: fc.constant('PING' as const), seq: uintArb }),
  PONG: fc.record({ type: fc.constant('PONG' as const), seq: uintArb }),
  GOAWAY: fc.record({ type: fc.constant('GOAWAY' as const), code: uintArb, message: textArb(0, 1024) }),
  NEW_TICKET: fc.record({ type: fc.constant('NEW_TICKET' as const), ticket: bytes(1, 512), lifetime: fc.integer({ min: 0, max: 7 * 24 * 3600 }) }),
  LIST: fc.oneof(
    fc.record({ type: fc.constant('LIST' as const), prefix: textArb(0, 4096) }),
    fc.record({ type: fc.constant('LIST' as const), prefix: textArb(0, 4096), after: textArb(1, 4096) }),
  ),
  LIST_ENTRY: fc.oneof(
    fc.record({ type: fc.constant('LIST_ENTRY' as const), name: textArb(1, 4096), size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
    fc.record({ type: fc.constant('LIST_ENTRY' as const), name: textArb(1, 4096), size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), sha256: bytes(32) }),
  ),
  LIST_END: fc.oneof(
    fc.record({ type: fc.constant('LIST_END' as const), count: uintArb }),
    fc.record({ type: fc.constant('LIST_END' as const), count: uintArb, next: textArb(1, 4096) }),
  ),
  GET: fc.oneof(
    fc.record({ type: fc.constant('GET' as const), name: textArb(1, 4096), offset: uintArb }),
    fc.record({ type: fc.constant('GET' as const), name: textArb(1, 4096), offset: uintArb, size: uintArb, mtime: intArb }),
  ),
  GET_OK: fc.oneof(
    fc.record({ type: fc.constant('GET_OK' as const), offset: uintArb, size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
    fc.record({ type: fc.constant('GET_OK' as const), offset: uintArb, size: uintArb, mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }), sha256: bytes(32) }),
  ),
  GET_END: fc.record({ type: fc.constant('GET_END' as const), size: uintArb, sha256: bytes(32) }),
  LIST_DIR: fc.record({ type: fc.constant('LIST_DIR' as const), name: textArb(1, 4096), mtime: intArb, mode: fc.integer({ min: 0, max: 0o7777 }) }),
  RANGE: fc.record({
    type: fc.constant('RANGE' as const),
    name: textArb(1, 4096),
    size: uintArb,
    mtime: intArb,
    mode: fc.integer({ min: 0, max: 0o7777 }),
    start: uintArb,
    end: uintArb,
  }),
  RANGE_OK: fc.record({ type: fc.constant('RANGE_OK' as const), offset: uintArb }),
  RANGE_END: fc.record({ type: fc.constant('RANGE_END' as const), end: uintArb }),
  RANGE_DONE: fc.record({ type: fc.constant('RANGE_DONE' as const), end: uintArb }),
};

/** A valid frame of any type. */
export const frameArb: fc.Arbitrary<Frame> = fc.oneof(...Object.values(FRAME_ARBS));

/** Frames of the given types, as encoded bodies. */
export function bodiesOf(types: readonly FrameName[]): fc.Arbitrary<Buffer> {
  return fc.oneof(...types.map((t) => FRAME_ARBS[t])).map(encodeBody);
}
