// Field schemas of the control payloads (spec/PROTOCOL.md §2.1, §4) and their strict decoding.
import { ProtocolError } from './errors.js';
import { MAX_CONTROL_PAYLOAD_BYTES, MAX_MESSAGE_BYTES, MAX_MODE, MAX_NAME_BYTES, MAX_PACK_FILES, MAX_PUT_BYTES, MAX_PUTS_PER_DONE, MAX_SAFE_UINT, MAX_TICKET_BYTES, MAX_TICKET_LIFETIME_S, STREAM_ID_BYTES } from './limits.js';

type FieldKind =
  | { readonly kind: 'bin'; readonly min: number; readonly max: number }
  | { readonly kind: 'str'; readonly min: number; readonly max: number }
  | { readonly kind: 'uint'; readonly max: number }
  | { readonly kind: 'int' };

interface FieldSpec {
  readonly name: string;
  readonly type: FieldKind;
  readonly optional?: boolean;
}

const bin = (min: number, max = min): FieldKind => ({ kind: 'bin', min, max });
const str = (min: number, max: number): FieldKind => ({ kind: 'str', min, max });
const uint = (max = MAX_SAFE_UINT): FieldKind => ({ kind: 'uint', max });
const int: FieldKind = { kind: 'int' };
const field = (name: string, type: FieldKind, optional = false): FieldSpec =>
  optional ? { name, type, optional } : { name, type };

/** Fields of every MessagePack frame, in the order senders write them (§4). */
export const SCHEMAS = {
  CLIENT_HELLO: [field('random', bin(32)), field('x25519', bin(32)), field('ticket', bin(1, MAX_TICKET_BYTES), true), field('tickets', uint(1), true)],
  SERVER_HELLO: [field('random', bin(32)), field('x25519', bin(32)), field('server_key', bin(1, 4096)), field('resumed', uint(1), true)],
  KEY_EXCHANGE: [field('encrypted_secret', bin(1, 1024))],
  CLIENT_FINISHED: [
    field('verify', bin(32)),
    field('identity', bin(32), true),
    field('signature', bin(64), true),
  ],
  SERVER_FINISHED: [field('verify', bin(32))],
  OPEN: [
    field('name', str(1, MAX_NAME_BYTES)),
    field('size', uint()),
    field('mtime', int),
    field('mode', uint(MAX_MODE)),
    field('stream', bin(STREAM_ID_BYTES), true),
    field('sha256', bin(32), true),
  ],
  OPEN_OK: [field('offset', uint())],
  ACK: [field('offset', uint())],
  END: [field('sha256', bin(32)), field('size', uint(), true)],
  END_DETACHED: [field('sha256', bin(32)), field('size', uint(), true)],
  DONE: [field('size', uint()), field('sha256', bin(32))],
  PROGRESS: [field('done', uint()), field('total', uint())],
  MKDIR: [field('name', str(1, MAX_NAME_BYTES)), field('mtime', int), field('mode', uint(MAX_MODE))],
  SYMLINK: [field('name', str(1, MAX_NAME_BYTES)), field('target', str(1, MAX_NAME_BYTES)), field('mtime', int)],
  MADE: [],
  PUT: [field('name', str(1, MAX_NAME_BYTES)), field('size', uint(MAX_PUT_BYTES)), field('mtime', int), field('mode', uint(MAX_MODE))],
  PUT_DONE: [field('size', uint()), field('sha256', bin(32))],
  PUT_FAILED: [field('code', uint()), field('message', str(0, MAX_MESSAGE_BYTES))],
  // The data is bounded by the payload's limit (§2), which the whole frame must keep.
  PUT_INLINE: [
    field('name', str(1, MAX_NAME_BYTES)),
    field('mtime', int),
    field('mode', uint(MAX_MODE)),
    field('sha256', bin(32)),
    field('data', bin(0, MAX_CONTROL_PAYLOAD_BYTES)),
  ],
  // A multiple of 32 bytes (checked by the decoder, codec.ts).
  PUTS_DONE: [field('sha256s', bin(32, 32 * MAX_PUTS_PER_DONE))],
  // Columns of n files (1 ≤ n ≤ MAX_PACK_FILES); their agreement is checked by the decoder (pack.ts).
  PUT_PACK: [
    field('names', str(1, MAX_CONTROL_PAYLOAD_BYTES)),
    field('sizes', bin(4, 4 * MAX_PACK_FILES)),
    field('mtimes', bin(8, 8 * MAX_PACK_FILES)),
    field('modes', bin(2, 2 * MAX_PACK_FILES)),
    field('sha256s', bin(32, 32 * MAX_PACK_FILES)),
  ],
  ERROR: [field('code', uint()), field('message', str(0, MAX_MESSAGE_BYTES))],
  PING: [field('seq', uint())],
  PONG: [field('seq', uint())],
  GOAWAY: [field('code', uint()), field('message', str(0, MAX_MESSAGE_BYTES))],
  NEW_TICKET: [field('ticket', bin(1, MAX_TICKET_BYTES)), field('lifetime', uint(MAX_TICKET_LIFETIME_S))],
  LIST: [field('prefix', str(0, MAX_NAME_BYTES)), field('after', str(1, MAX_NAME_BYTES), true)],
  LIST_ENTRY: [
    field('name', str(1, MAX_NAME_BYTES)),
    field('size', uint()),
    field('mtime', int),
    field('mode', uint(MAX_MODE)),
    field('sha256', bin(32), true),
  ],
  LIST_END: [field('count', uint()), field('next', str(1, MAX_NAME_BYTES), true)],
  GET: [field('name', str(1, MAX_NAME_BYTES)), field('offset', uint()), field('size', uint(), true), field('mtime', int, true)],
  GET_OK: [
    field('offset', uint()),
    field('size', uint()),
    field('mtime', int),
    field('mode', uint(MAX_MODE)),
    field('sha256', bin(32), true),
  ],
  GET_END: [field('size', uint()), field('sha256', bin(32))],
  LIST_DIR: [field('name', str(1, MAX_NAME_BYTES)), field('mtime', int), field('mode', uint(MAX_MODE))],
  RANGE: [
    field('name', str(1, MAX_NAME_BYTES)),
    field('size', uint()),
    field('mtime', int),
    field('mode', uint(MAX_MODE)),
    field('start', uint()),
    field('end', uint()),
  ],
  RANGE_OK: [field('offset', uint())],
  RANGE_END: [field('end', uint())],
  RANGE_DONE: [field('end', uint())],
} as const satisfies Record<string, readonly FieldSpec[]>;

type SchemaFrameName = keyof typeof SCHEMAS;

function malformed(frame: string, detail: string): ProtocolError {
  return new ProtocolError('MALFORMED_FRAME', `${frame}: ${detail}`);
}

/** Narrows one decoded MessagePack value to its field type, or throws MALFORMED_FRAME. */
function checkValue(frame: string, spec: FieldSpec, value: unknown): Buffer | string | number {
  const t = spec.type;
  switch (t.kind) {
    case 'bin': {
      if (!(value instanceof Uint8Array)) throw malformed(frame, `field ${spec.name} must be bin`);
      if (value.length < t.min || value.length > t.max) {
        throw malformed(frame, `field ${spec.name} must be ${t.min}..${t.max} bytes, got ${value.length}`);
      }
      return Buffer.from(value.buffer, value.byteOffset, value.length);
    }
    case 'str': {
      if (typeof value !== 'string') throw malformed(frame, `field ${spec.name} must be str`);
      const n = Buffer.byteLength(value, 'utf8');
      if (n < t.min || n > t.max) throw malformed(frame, `field ${spec.name} must be ${t.min}..${t.max} bytes`);
      return value;
    }
    case 'uint':
    case 'int': {
      const n = toSafeInteger(value);
      if (n === undefined) throw malformed(frame, `field ${spec.name} must be an integer`);
      const min = t.kind === 'uint' ? 0 : -MAX_SAFE_UINT;
      const max = t.kind === 'uint' ? t.max : MAX_SAFE_UINT;
      if (n < min || n > max) throw malformed(frame, `field ${spec.name} out of range`);
      return n;
    }
  }
}

function toSafeInteger(value: unknown): number | undefined {
  // An integral float may stand for an integer (§2.1); -0.0 is 0, which is what encoders write back.
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value + 0 : undefined;
  if (typeof value === 'bigint') {
    return value >= -BigInt(MAX_SAFE_UINT) && value <= BigInt(MAX_SAFE_UINT) ? Number(value) : undefined;
  }
  return undefined;
}

/**
 * Checks a decoded payload map against the frame's schema (§2.1): no unknown keys, every
 * required key present, every value of its type.
 */
export function checkFields(frame: SchemaFrameName, fields: ReadonlyMap<string, unknown>): Fields {
  const specs: readonly FieldSpec[] = SCHEMAS[frame];
  const known = new Set(specs.map((s) => s.name));
  for (const key of fields.keys()) {
    if (!known.has(key)) throw malformed(frame, `unknown field ${JSON.stringify(key).slice(0, 64)}`);
  }
  const out = new Fields(frame);
  for (const spec of specs) {
    if (!fields.has(spec.name)) {
      if (spec.optional === true) continue;
      throw malformed(frame, `missing field ${spec.name}`);
    }
    out.set(spec.name, checkValue(frame, spec, fields.get(spec.name)));
  }
  return out;
}

/** Checked fields of one payload, read back with their types (a missing required one is a bug). */
class Fields {
  private readonly values = new Map<string, Buffer | string | number>();
  constructor(private readonly frame: string) {}
  set(name: string, value: Buffer | string | number): void {
    this.values.set(name, value);
  }
  bin(name: string): Buffer {
    const v = this.values.get(name);
    if (!Buffer.isBuffer(v)) throw malformed(this.frame, `field ${name} must be bin`);
    return v;
  }
  optionalBin(name: string): Buffer | undefined {
    return this.values.has(name) ? this.bin(name) : undefined;
  }
  optionalStr(name: string): string | undefined {
    return this.values.has(name) ? this.str(name) : undefined;
  }
  optionalNum(name: string): number | undefined {
    return this.values.has(name) ? this.num(name) : undefined;
  }
  str(name: string): string {
    const v = this.values.get(name);
    if (typeof v !== 'string') throw malformed(this.frame, `field ${name} must be str`);
    return v;
  }
  num(name: string): number {
    const v = this.values.get(name);
    if (typeof v !== 'number') throw malformed(this.frame, `field ${name} must be an integer`);
    return v;
  }
}
