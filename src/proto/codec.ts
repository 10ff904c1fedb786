// Frame encoding and decoding (spec/PROTOCOL.md §2, §4). Pure: bytes in, typed frames out.
// Payloads are written in the canonical encoding of §2.1 and read by our own strict reader
// (msgpack.ts), which accepts every integer format.
import { ProtocolError } from './errors.js';
import { FRAME_TYPES, type Frame, type FrameName } from './frames.js';
import {
  DATA_HEADER_BYTES,
  LENGTH_PREFIX_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  MAX_DATA_CHUNK_BYTES,
  MAX_SAFE_UINT,
} from './limits.js';
import { encodePayloadMapAfter, readPayloadMap, type EncodableValue } from './msgpack.js';
import { checkFields, SCHEMAS } from './schema.js';
import { checkPack } from './pack.js';

const NAME_BY_TYPE = new Map<number, FrameName>(
  (Object.keys(FRAME_TYPES) as FrameName[]).map((name) => [FRAME_TYPES[name], name]),
);

/** The frame name for a type byte, or UNKNOWN_FRAME_TYPE (§2). */
function frameName(typeByte: number): FrameName {
  const name = NAME_BY_TYPE.get(typeByte);
  if (name === undefined) {
    throw new ProtocolError('UNKNOWN_FRAME_TYPE', `unknown frame type 0x${typeByte.toString(16).padStart(2, '0')}`);
  }
  return name;
}

/** The frame's fields in the order of §4 (the schema's), optional ones only when present. */
function payloadFields(frame: Exclude<Frame, { type: 'DATA' }>): [string, EncodableValue][] {
  const specs = SCHEMAS[frame.type];
  const fields: [string, EncodableValue][] = [];
  const source = frame as unknown as Readonly<Record<string, unknown>>;
  for (const spec of specs) {
    // The frame's own fields only, as Object.entries gave them (nothing inherited).
    const v = Object.hasOwn(source, spec.name) ? source[spec.name] : undefined;
    if (v === undefined) continue;
    if (!(Buffer.isBuffer(v) || typeof v === 'string' || typeof v === 'number')) {
      throw new TypeError(`${frame.type}.${spec.name} has an unencodable value`);
    }
    fields.push([spec.name, v]);
  }
  return fields;
}

/** The 9-byte body head of a DATA frame (type ‖ offset), for senders that keep the data apart. */
export function encodeDataHead(offset: number): Buffer {
  const head = Buffer.allocUnsafe(1 + DATA_HEADER_BYTES);
  head[0] = FRAME_TYPES.DATA;
  head.writeBigUInt64BE(BigInt(offset), 1);
  return head;
}

/** Frame body: type ‖ payload (§2). */
export function encodeBody(frame: Frame): Buffer {
  if (frame.type === 'DATA') return Buffer.concat([encodeDataHead(frame.offset), frame.data]);
  const body = encodePayloadMapAfter(payloadFields(frame), 1, false);
  body[0] = FRAME_TYPES[frame.type];
  return body;
}

/**
 * A frame body in parts whose concatenation is encodeBody(frame): PUT_INLINE's data (its last
 * field, §4) apart, so a small file's bytes go to the record layer without being copied into a
 * frame first (stx-send sends thousands of them a second).
 */
export function encodeBodyParts(frame: Frame): Buffer[] {
  if (frame.type !== 'PUT_INLINE' || frame.data.length === 0) return [encodeBody(frame)];
  // data is the last field (§4): the head ends with its bin header.
  const head = encodePayloadMapAfter(payloadFields(frame), 1, true);
  head[0] = FRAME_TYPES.PUT_INLINE;
  return [head, frame.data];
}

/** Whole plaintext frame: length ‖ type ‖ payload (§2). */
export function encodeFrame(frame: Frame): Buffer {
  return withLength(encodeBody(frame));
}

/** Prefixes a body with its u32 length. */
export function withLength(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, LENGTH_PREFIX_BYTES);
  return out;
}

/**
 * The offset in a DATA payload's first 8 bytes (§2.2): MALFORMED_FRAME above 2^53 − 1. For
 * receivers that open a DATA record in pieces and never hold its payload in one buffer.
 */
export function decodeDataOffset(head: Buffer): number {
  if (head.length < DATA_HEADER_BYTES) throw new RangeError(`DATA head of ${head.length} bytes`);
  const offset = head.readBigUInt64BE(0);
  if (offset > BigInt(MAX_SAFE_UINT)) throw new ProtocolError('MALFORMED_FRAME', 'DATA: offset above 2^53-1');
  return Number(offset);
}

function decodeData(payload: Buffer): Frame {
  if (payload.length < DATA_HEADER_BYTES + 1) {
    throw new ProtocolError('MALFORMED_FRAME', `DATA: payload of ${payload.length} bytes is shorter than 9`);
  }
  if (payload.length > DATA_HEADER_BYTES + MAX_DATA_CHUNK_BYTES) {
    throw new ProtocolError('FRAME_TOO_LARGE', `DATA: ${payload.length - DATA_HEADER_BYTES} bytes exceed the chunk limit`);
  }
  return { type: 'DATA', offset: decodeDataOffset(payload), data: payload.subarray(DATA_HEADER_BYTES) };
}

/** Decodes a frame body (type ‖ payload) into a typed, range-checked frame (§2, §4). */
export function decodeBody(body: Buffer): Frame {
  if (body.length === 0) throw new ProtocolError('MALFORMED_FRAME', 'empty frame');
  const name = frameName(body[0] ?? 0);
  const payload = body.subarray(1);
  if (name === 'DATA') return decodeData(payload);
  if (payload.length > MAX_CONTROL_PAYLOAD_BYTES) {
    throw new ProtocolError('FRAME_TOO_LARGE', `${name}: payload of ${payload.length} bytes exceeds ${MAX_CONTROL_PAYLOAD_BYTES}`);
  }
  const f = checkFields(name, readPayloadMap(name, payload));
  switch (name) {
    case 'CLIENT_HELLO': {
      // Optional fields of revision 1.13 (§7.5), present only when sent.
      const ticket = f.optionalBin('ticket');
      const tickets = f.optionalNum('tickets');
      return { type: name, random: f.bin('random'), x25519: f.bin('x25519'), ...(ticket === undefined ? {} : { ticket }), ...(tickets === undefined ? {} : { tickets }) };
    }
    case 'SERVER_HELLO': {
      const resumed = f.optionalNum('resumed');
      return { type: name, random: f.bin('random'), x25519: f.bin('x25519'), server_key: f.bin('server_key'), ...(resumed === undefined ? {} : { resumed }) };
    }
    case 'KEY_EXCHANGE':
      return { type: name, encrypted_secret: f.bin('encrypted_secret') };
    case 'CLIENT_FINISHED': {
      const identity = f.optionalBin('identity');
      const signature = f.optionalBin('signature');
      if (identity === undefined && signature === undefined) return { type: name, verify: f.bin('verify') };
      if (identity === undefined || signature === undefined) {
        throw new ProtocolError('MALFORMED_FRAME', 'CLIENT_FINISHED: identity and signature go together');
      }
      return { type: name, verify: f.bin('verify'), identity, signature };
    }
    case 'SERVER_FINISHED':
      return { type: name, verify: f.bin('verify') };
    case 'OPEN': {
      const open = { type: name, name: f.str('name'), size: f.num('size'), mtime: f.num('mtime'), mode: f.num('mode') } as const;
      const stream = f.optionalBin('stream');
      const sha256 = f.optionalBin('sha256');
      return { ...open, ...(stream === undefined ? {} : { stream }), ...(sha256 === undefined ? {} : { sha256 }) };
    }
    case 'OPEN_OK':
    case 'ACK':
      return { type: name, offset: f.num('offset') };
    case 'END':
    case 'END_DETACHED': {
      const size = f.optionalNum('size');
      return size === undefined ? { type: name, sha256: f.bin('sha256') } : { type: name, sha256: f.bin('sha256'), size };
    }
    case 'MKDIR':
      return { type: name, name: f.str('name'), mtime: f.num('mtime'), mode: f.num('mode') };
    case 'SYMLINK':
      return { type: name, name: f.str('name'), target: f.str('target'), mtime: f.num('mtime') };
    case 'MADE':
      return { type: name };
    case 'PUT':
      return { type: name, name: f.str('name'), size: f.num('size'), mtime: f.num('mtime'), mode: f.num('mode') };
    case 'PUT_DONE':
      return { type: name, size: f.num('size'), sha256: f.bin('sha256') };
    case 'PUT_FAILED':
      return { type: name, code: f.num('code'), message: f.str('message') };
    case 'PUT_INLINE':
      return { type: name, name: f.str('name'), mtime: f.num('mtime'), mode: f.num('mode'), sha256: f.bin('sha256'), data: f.bin('data') };
    case 'PUTS_DONE': {
      const sha256s = f.bin('sha256s');
      if (sha256s.length % 32 !== 0) throw new ProtocolError('MALFORMED_FRAME', `PUTS_DONE: sha256s of ${sha256s.length} bytes is no multiple of 32`);
      return { type: name, sha256s };
    }
    case 'PUT_PACK':
      return checkPack({ type: name, names: f.str('names'), sizes: f.bin('sizes'), mtimes: f.bin('mtimes'), modes: f.bin('modes'), sha256s: f.bin('sha256s') });
    case 'DONE':
      return { type: name, size: f.num('size'), sha256: f.bin('sha256') };
    case 'PROGRESS':
      return { type: name, done: f.num('done'), total: f.num('total') };
    case 'ERROR':
    case 'GOAWAY':
      return { type: name, code: f.num('code'), message: f.str('message') };
    case 'NEW_TICKET':
      return { type: name, ticket: f.bin('ticket'), lifetime: f.num('lifetime') };
    case 'PING':
    case 'PONG':
      return { type: name, seq: f.num('seq') };
    case 'LIST': {
      const after = f.optionalStr('after');
      return after === undefined ? { type: name, prefix: f.str('prefix') } : { type: name, prefix: f.str('prefix'), after };
    }
    case 'LIST_ENTRY': {
      const entry = { type: name, name: f.str('name'), size: f.num('size'), mtime: f.num('mtime'), mode: f.num('mode') } as const;
      const sha256 = f.optionalBin('sha256');
      return sha256 === undefined ? entry : { ...entry, sha256 };
    }
    case 'LIST_END': {
      const next = f.optionalStr('next');
      return next === undefined ? { type: name, count: f.num('count') } : { type: name, count: f.num('count'), next };
    }
    case 'GET': {
      const size = f.optionalNum('size');
      const mtime = f.optionalNum('mtime');
      const get = { type: name, name: f.str('name'), offset: f.num('offset') } as const;
      if (size === undefined && mtime === undefined) return get;
      if (size === undefined || mtime === undefined) throw new ProtocolError('MALFORMED_FRAME', 'GET: size and mtime go together');
      return { ...get, size, mtime };
    }
    case 'GET_OK': {
      const ok = { type: name, offset: f.num('offset'), size: f.num('size'), mtime: f.num('mtime'), mode: f.num('mode') } as const;
      const sha256 = f.optionalBin('sha256');
      return sha256 === undefined ? ok : { ...ok, sha256 };
    }
    case 'GET_END':
      return { type: name, size: f.num('size'), sha256: f.bin('sha256') };
    case 'LIST_DIR':
      return { type: name, name: f.str('name'), mtime: f.num('mtime'), mode: f.num('mode') };
    case 'RANGE':
      return { type: name, name: f.str('name'), size: f.num('size'), mtime: f.num('mtime'), mode: f.num('mode'), start: f.num('start'), end: f.num('end') };
    case 'RANGE_OK':
      return { type: name, offset: f.num('offset') };
    case 'RANGE_END':
    case 'RANGE_DONE':
      return { type: name, end: f.num('end') };
  }
}
