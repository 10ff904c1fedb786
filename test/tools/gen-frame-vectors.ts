// Writes spec/vectors/frames-valid.json, frames-invalid.json and states.json.
// Run: npm run build && node dist/test/tools/gen-frame-vectors.js
// The output is committed; the conformance tests only read it.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Packr } from 'msgpackr';
import { encodeBody, encodeFrame, FRAME_TYPES, type Frame } from '../../src/proto/index.js';
import { VECTORS_DIR } from '../support/paths.js';
import { frameToJson, type Json } from '../support/json-frames.js';

const b = (hex: string): Buffer => Buffer.from(hex, 'hex');
const fill = (n: number, byte: number): Buffer => Buffer.alloc(n, byte);

const valid: Frame[] = [
  { type: 'CLIENT_HELLO', random: fill(32, 0x11), x25519: fill(32, 0x22) },
  { type: 'SERVER_HELLO', random: fill(32, 0x33), x25519: fill(32, 0x44), server_key: b('30820122300d06092a864886f70d01010105000382010f00') },
  { type: 'KEY_EXCHANGE', encrypted_secret: fill(384, 0x55) },
  { type: 'CLIENT_FINISHED', verify: fill(32, 0x66) },
  { type: 'CLIENT_FINISHED', verify: fill(32, 0x66), identity: fill(32, 0x77), signature: fill(64, 0x88) },
  { type: 'SERVER_FINISHED', verify: fill(32, 0x99) },
  { type: 'OPEN', name: 'dir/file.bin', size: 0, mtime: 1_700_000_000_000, mode: 0o644 },
  { type: 'OPEN', name: 'ünïcødé/файл', size: 5 * 2 ** 30, mtime: -1, mode: 0o7777 },
  { type: 'OPEN', name: 'x', size: Number.MAX_SAFE_INTEGER, mtime: -(2 ** 40), mode: 0 },
  { type: 'OPEN', name: 'dump.sql', size: 0, mtime: 1_700_000_000_000, mode: 0o600, stream: fill(16, 0xab) },
  { type: 'OPEN_OK', offset: 0 },
  { type: 'OPEN_OK', offset: 2 ** 32 + 1 },
  { type: 'DATA', offset: 0, data: b('00') },
  { type: 'DATA', offset: 3 * 2 ** 31, data: b('68656c6c6f') },
  { type: 'ACK', offset: 16_777_216 },
  { type: 'END', sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'END', sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'), size: 0 },
  { type: 'END', sha256: fill(32, 0x12), size: 50 * 2 ** 20 },
  { type: 'END_DETACHED', sha256: fill(32, 0x13) },
  { type: 'END_DETACHED', sha256: fill(32, 0x14), size: 3 * 2 ** 20 },
  { type: 'DONE', size: 0, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'PROGRESS', done: 0, total: 0 },
  { type: 'PROGRESS', done: 41 * 2 ** 30, total: 80 * 2 ** 30 },
  { type: 'MKDIR', name: 'conformance/vectors/empty dir', mtime: 1_700_000_000_000, mode: 0o755 },
  { type: 'MKDIR', name: 'conformance/vectors/ünïcødé', mtime: -1, mode: 0o7777 },
  { type: 'SYMLINK', name: 'conformance/vectors/link', target: '../vectors/ünïcødé', mtime: 1_700_000_000_000 },
  { type: 'MADE' },
  { type: 'PUT', name: 'conformance/vectors/put.txt', size: 5, mtime: 1_700_000_000_000, mode: 0o644 },
  { type: 'PUT', name: 'conformance/vectors/empty put', size: 0, mtime: -1, mode: 0 },
  { type: 'PUT', name: 'conformance/vectors/largest put.bin', size: 1_048_576, mtime: 1_700_000_000_000, mode: 0o7777 },
  { type: 'PUT_DONE', size: 0, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'PUT_FAILED', code: 32, message: 'exists: conformance/vectors/put.txt' },
  { type: 'PUT_INLINE', name: 'conformance/vectors/inline.txt', mtime: 1_700_000_000_000, mode: 0o644, sha256: b('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'), data: b('68656c6c6f') },
  { type: 'PUT_INLINE', name: 'conformance/vectors/empty inline', mtime: -1, mode: 0, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'), data: Buffer.alloc(0) },
  { type: 'PUTS_DONE', sha256s: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'PUTS_DONE', sha256s: Buffer.concat([b('2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824'), fill(32, 0x21), b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')]) },
  { type: 'PUTS_DONE', sha256s: fill(32 * 511, 0x5d) },
  { type: 'ERROR', code: 31, message: 'busy: dir/file.bin is being uploaded by another connection' },
  { type: 'ERROR', code: 999, message: '' },
  { type: 'PING', seq: 7 },
  { type: 'PONG', seq: 7 },
  { type: 'GOAWAY', code: 52, message: 'shutting down' },
  { type: 'LIST', prefix: '' },
  { type: 'LIST', prefix: 'photos/2024', after: 'photos/2024/b/c.jpg' },
  { type: 'LIST_ENTRY', name: 'photos/2024/a.jpg', size: 5 * 2 ** 30, mtime: 1_700_000_000_123, mode: 0o640 },
  { type: 'LIST_ENTRY', name: 'ünïcødé/файл', size: 0, mtime: -1, mode: 0o644, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'LIST_END', count: 0 },
  { type: 'LIST_END', count: 10_000, next: 'photos/2024/b/c.jpg' },
  { type: 'GET', name: 'dir/file.bin', offset: 0 },
  { type: 'GET', name: 'dir/file.bin', offset: 2 ** 32 + 1, size: 5 * 2 ** 30, mtime: 1_700_000_000_123 },
  { type: 'GET_OK', offset: 0, size: 0, mtime: 1_700_000_000_000, mode: 0o644 },
  { type: 'GET_OK', offset: 16_777_216, size: 5 * 2 ** 30, mtime: -(2 ** 40), mode: 0o7777, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'GET_END', size: 0, sha256: b('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855') },
  { type: 'OPEN', name: 'photos/a.jpg', size: 3, mtime: 1_700_000_000_123, mode: 0o640, sha256: b('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad') },
  { type: 'LIST_DIR', name: 'photos/2024', mtime: 1_700_000_000_123, mode: 0o755 },
  { type: 'LIST_DIR', name: 'ünïcødé', mtime: -1, mode: 0o7777 },
  { type: 'RANGE', name: 'big/disk.img', size: 5 * 2 ** 30, mtime: 1_700_000_000_123, mode: 0o640, start: 2 ** 30, end: 2 * 2 ** 30 },
  { type: 'RANGE', name: 'a', size: 10, mtime: -1, mode: 0, start: 0, end: 10 },
  { type: 'RANGE_OK', offset: 2 ** 30 + 16_777_216 },
  { type: 'RANGE_END', end: 2 * 2 ** 30 },
  { type: 'RANGE_DONE', end: 2 * 2 ** 30 },
];

/**
 * Valid but not canonical encodings (§2.1): a decoder MUST accept each and yield `frame`; an
 * encoder writes `frame` as its canonical hex instead.
 */
const key = (k: string): string => Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k)]).toString('hex');
const noncanonical: { name: string; body_hex: string; frame: Frame }[] = [
  { name: 'uint8 for a fixint', body_hex: '21' + '81' + key('seq') + 'cc07', frame: { type: 'PING', seq: 7 } },
  { name: 'int8 for a non-negative value', body_hex: '21' + '81' + key('seq') + 'd007', frame: { type: 'PING', seq: 7 } },
  { name: 'uint64 for a small value', body_hex: '21' + '81' + key('seq') + 'cf0000000000000007', frame: { type: 'PING', seq: 7 } },
  { name: 'int64 for a value of 2^32 and above', body_hex: '11' + '81' + key('offset') + 'd30000000100000001', frame: { type: 'OPEN_OK', offset: 2 ** 32 + 1 } },
  { name: 'int32 for a negative value that fits int8', body_hex: '10' + '84' + key('name') + 'a178' + key('size') + '01' + key('mtime') + 'd2ffffff9c' + key('mode') + '00', frame: { type: 'OPEN', name: 'x', size: 1, mtime: -100, mode: 0 } },
  { name: 'fields in another order', body_hex: '10' + '84' + key('mode') + 'cd01a4' + key('mtime') + '00' + key('size') + '01' + key('name') + 'a178', frame: { type: 'OPEN', name: 'x', size: 1, mtime: 0, mode: 0o644 } },
  { name: 'str8 for a short string', body_hex: '10' + '84' + key('name') + 'd90178' + key('size') + '01' + key('mtime') + '00' + key('mode') + '00', frame: { type: 'OPEN', name: 'x', size: 1, mtime: 0, mode: 0 } },
  { name: 'bin16 for 32 bytes', body_hex: '14' + '81' + key('sha256') + 'c50020' + '11'.repeat(32), frame: { type: 'END', sha256: fill(32, 0x11) } },
  { name: 'map16 for one field', body_hex: '21' + 'de0001' + key('seq') + '07', frame: { type: 'PING', seq: 7 } },
];

const packr = new Packr({ useRecords: false, variableMapSize: true });
const body = (type: number, payload: Buffer): string => Buffer.concat([Buffer.from([type]), payload]).toString('hex');
const mp = (type: number, value: unknown): string => body(type, packr.pack(value));
const T = FRAME_TYPES;
const r32 = fill(32, 1);

interface Invalid {
  name: string;
  phase: 'stream' | 'body';
  hex: string;
  error: string;
}
const invalid: Invalid[] = [
  { name: 'zero length', phase: 'stream', hex: '00000000', error: 'MALFORMED_FRAME' },
  { name: 'length 2^32-1', phase: 'stream', hex: 'ffffffff', error: 'FRAME_TOO_LARGE' },
  { name: 'plaintext length one over the limit', phase: 'stream', hex: '00004002', error: 'FRAME_TOO_LARGE' },
  { name: 'truncated length prefix', phase: 'stream', hex: '0000', error: 'TRUNCATED' },
  { name: 'truncated body', phase: 'stream', hex: '0000000a0101', error: 'TRUNCATED' },
  { name: 'type 0x00', phase: 'body', hex: '0080', error: 'UNKNOWN_FRAME_TYPE' },
  { name: 'type 0x06', phase: 'body', hex: '0680', error: 'UNKNOWN_FRAME_TYPE' },
  { name: 'type 0x24', phase: 'body', hex: '2480', error: 'UNKNOWN_FRAME_TYPE' },
  { name: 'type 0xff', phase: 'body', hex: 'ff80', error: 'UNKNOWN_FRAME_TYPE' },
  { name: 'empty body', phase: 'body', hex: '', error: 'MALFORMED_FRAME' },
  { name: 'invalid MessagePack byte 0xc1', phase: 'body', hex: body(T.PING, b('c1')), error: 'MALFORMED_FRAME' },
  { name: 'empty payload', phase: 'body', hex: body(T.PING, b('')), error: 'MALFORMED_FRAME' },
  { name: 'trailing byte after the map', phase: 'body', hex: mp(T.PING, { seq: 1 }) + 'c0', error: 'MALFORMED_FRAME' },
  { name: 'payload is an array', phase: 'body', hex: mp(T.PING, [1]), error: 'MALFORMED_FRAME' },
  { name: 'payload is nil', phase: 'body', hex: body(T.PING, b('c0')), error: 'MALFORMED_FRAME' },
  { name: 'truncated map', phase: 'body', hex: body(T.PING, b('81a3736571')), error: 'MALFORMED_FRAME' },
  { name: 'integer map key', phase: 'body', hex: body(T.PING, b('810101')), error: 'MALFORMED_FRAME' },
  { name: 'unknown field', phase: 'body', hex: mp(T.PING, { seq: 1, extra: 2 }), error: 'MALFORMED_FRAME' },
  { name: 'missing field', phase: 'body', hex: mp(T.CLIENT_HELLO, { random: r32 }), error: 'MALFORMED_FRAME' },
  { name: 'bin of 31 bytes where 32 are required', phase: 'body', hex: mp(T.CLIENT_HELLO, { random: fill(31, 1), x25519: r32 }), error: 'MALFORMED_FRAME' },
  { name: 'str where bin is required', phase: 'body', hex: mp(T.END, { sha256: 'x'.repeat(32) }), error: 'MALFORMED_FRAME' },
  { name: 'bin where str is required', phase: 'body', hex: mp(T.OPEN, { name: b('41'), size: 1, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'negative size', phase: 'body', hex: mp(T.OPEN, { name: 'a', size: -1, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'fractional size', phase: 'body', hex: mp(T.OPEN, { name: 'a', size: 1.5, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'uint64 above 2^53-1', phase: 'body', hex: body(T.ACK, b('81a66f6666736574cf0020000000000000')), error: 'MALFORMED_FRAME' },
  { name: 'uint64 max', phase: 'body', hex: body(T.ACK, b('81a66f6666736574cfffffffffffffffff')), error: 'MALFORMED_FRAME' },
  { name: 'mode above 0o7777', phase: 'body', hex: mp(T.OPEN, { name: 'a', size: 1, mtime: 0, mode: 0o10000 }), error: 'MALFORMED_FRAME' },
  { name: 'empty name', phase: 'body', hex: mp(T.OPEN, { name: '', size: 1, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'name over 4096 bytes', phase: 'body', hex: mp(T.OPEN, { name: 'a'.repeat(4097), size: 1, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'message over 1024 bytes', phase: 'body', hex: mp(T.ERROR, { code: 1, message: 'm'.repeat(1025) }), error: 'MALFORMED_FRAME' },
  { name: 'str that is not valid UTF-8', phase: 'body', hex: body(T.OPEN, b('84a46e616d65a3ff6161a473697a6501a56d74696d6500a46d6f646500')), error: 'MALFORMED_FRAME' },
  { name: 'boolean where uint is required', phase: 'body', hex: mp(T.PING, { seq: true }), error: 'MALFORMED_FRAME' },
  { name: 'extension type', phase: 'body', hex: body(T.PING, b('81a3736571d40105')), error: 'MALFORMED_FRAME' },
  { name: 'stream id of 15 bytes', phase: 'body', hex: mp(T.OPEN, { name: 'a', size: 0, mtime: 0, mode: 0, stream: fill(15, 1) }), error: 'MALFORMED_FRAME' },
  { name: 'negative size in END', phase: 'body', hex: mp(T.END, { sha256: r32, size: -1 }), error: 'MALFORMED_FRAME' },
  { name: 'MKDIR without mode', phase: 'body', hex: mp(T.MKDIR, { name: 'd', mtime: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'MKDIR mode above 0o7777', phase: 'body', hex: mp(T.MKDIR, { name: 'd', mtime: 0, mode: 0o10000 }), error: 'MALFORMED_FRAME' },
  { name: 'SYMLINK with an empty target', phase: 'body', hex: mp(T.SYMLINK, { name: 'l', target: '', mtime: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'SYMLINK with a mode', phase: 'body', hex: mp(T.SYMLINK, { name: 'l', target: 'x', mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'PUT size above MAX_PUT_SIZE (§9.11)', phase: 'body', hex: mp(T.PUT, { name: 'p', size: 1_048_577, mtime: 0, mode: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'PUT without mode', phase: 'body', hex: mp(T.PUT, { name: 'p', size: 1, mtime: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'PUT_DONE with a short sha256', phase: 'body', hex: mp(T.PUT_DONE, { size: 0, sha256: Buffer.alloc(31) }), error: 'MALFORMED_FRAME' },
  { name: 'PUT_FAILED without message', phase: 'body', hex: mp(T.PUT_FAILED, { code: 32 }), error: 'MALFORMED_FRAME' },
  { name: 'PUT_INLINE without sha256 (§9.11)', phase: 'body', hex: mp(T.PUT_INLINE, { name: 'p', mtime: 0, mode: 0, data: b('00') }), error: 'MALFORMED_FRAME' },
  { name: 'PUT_INLINE with a size', phase: 'body', hex: mp(T.PUT_INLINE, { name: 'p', size: 1, mtime: 0, mode: 0, sha256: r32, data: b('00') }), error: 'MALFORMED_FRAME' },
  { name: 'PUT_INLINE whose payload is over 16384 bytes', phase: 'body', hex: mp(T.PUT_INLINE, { name: 'p', mtime: 0, mode: 0, sha256: r32, data: fill(16_380, 1) }), error: 'FRAME_TOO_LARGE' },
  { name: 'PUTS_DONE with no sha256', phase: 'body', hex: mp(T.PUTS_DONE, { sha256s: Buffer.alloc(0) }), error: 'MALFORMED_FRAME' },
  { name: 'PUTS_DONE of 33 bytes, no multiple of 32', phase: 'body', hex: mp(T.PUTS_DONE, { sha256s: fill(33, 2) }), error: 'MALFORMED_FRAME' },
  { name: 'PUTS_DONE for 512 PUTs, above MAX_PUTS_PER_DONE', phase: 'body', hex: mp(T.PUTS_DONE, { sha256s: fill(32 * 512, 2) }), error: 'FRAME_TOO_LARGE' },
  { name: 'PUTS_DONE with a size', phase: 'body', hex: mp(T.PUTS_DONE, { size: 1, sha256s: r32 }), error: 'MALFORMED_FRAME' },
  { name: 'END_DETACHED with a 31-byte sha256', phase: 'body', hex: mp(T.END_DETACHED, { sha256: fill(31, 3) }), error: 'MALFORMED_FRAME' },
  { name: 'END_DETACHED without sha256', phase: 'body', hex: mp(T.END_DETACHED, { size: 1 }), error: 'MALFORMED_FRAME' },
  { name: 'MADE with a field', phase: 'body', hex: mp(T.MADE, { name: 'd' }), error: 'MALFORMED_FRAME' },
  { name: 'identity without signature', phase: 'body', hex: mp(T.CLIENT_FINISHED, { verify: r32, identity: r32 }), error: 'MALFORMED_FRAME' },
  { name: 'control payload over 16384 bytes', phase: 'body', hex: body(T.PING, fill(16385, 0xc0)), error: 'FRAME_TOO_LARGE' },
  { name: 'DATA without data bytes', phase: 'body', hex: body(T.DATA, fill(8, 0)), error: 'MALFORMED_FRAME' },
  { name: 'DATA shorter than its offset', phase: 'body', hex: body(T.DATA, fill(4, 0)), error: 'MALFORMED_FRAME' },
  { name: 'DATA offset 2^53', phase: 'body', hex: body(T.DATA, b('002000000000000041')), error: 'MALFORMED_FRAME' },
  { name: 'DATA offset 2^64-1', phase: 'body', hex: body(T.DATA, b('ffffffffffffffff41')), error: 'MALFORMED_FRAME' },
  { name: 'GET with size but no mtime', phase: 'body', hex: mp(T.GET, { name: 'a', offset: 1, size: 2 }), error: 'MALFORMED_FRAME' },
  { name: 'GET with mtime but no size', phase: 'body', hex: mp(T.GET, { name: 'a', offset: 1, mtime: 2 }), error: 'MALFORMED_FRAME' },
  { name: 'GET with an empty name', phase: 'body', hex: mp(T.GET, { name: '', offset: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'GET with a negative offset', phase: 'body', hex: mp(T.GET, { name: 'a', offset: -1 }), error: 'MALFORMED_FRAME' },
  { name: 'LIST without prefix', phase: 'body', hex: mp(T.LIST, {}), error: 'MALFORMED_FRAME' },
  { name: 'LIST with an empty after', phase: 'body', hex: mp(T.LIST, { prefix: '', after: '' }), error: 'MALFORMED_FRAME' },
  { name: 'LIST_ENTRY with a 31-byte sha256', phase: 'body', hex: mp(T.LIST_ENTRY, { name: 'a', size: 1, mtime: 0, mode: 0, sha256: fill(31, 1) }), error: 'MALFORMED_FRAME' },
  { name: 'GET_OK with mode above 0o7777', phase: 'body', hex: mp(T.GET_OK, { offset: 0, size: 1, mtime: 0, mode: 0o10000 }), error: 'MALFORMED_FRAME' },
  { name: 'GET_END without sha256', phase: 'body', hex: mp(T.GET_END, { size: 1 }), error: 'MALFORMED_FRAME' },
  { name: 'LIST_DIR with a size', phase: 'body', hex: mp(T.LIST_DIR, { name: 'a', size: 0, mtime: 0, mode: 0o755 }), error: 'MALFORMED_FRAME' },
  { name: 'LIST_DIR with mode above 0o7777', phase: 'body', hex: mp(T.LIST_DIR, { name: 'a', mtime: 0, mode: 0o10000 }), error: 'MALFORMED_FRAME' },
  { name: 'OPEN with a 31-byte sha256', phase: 'body', hex: mp(T.OPEN, { name: 'a', size: 1, mtime: 0, mode: 0, sha256: fill(31, 1) }), error: 'MALFORMED_FRAME' },
  { name: 'LIST_END with a name over 4096 bytes', phase: 'body', hex: mp(T.LIST_END, { count: 1, next: 'a'.repeat(4097) }), error: 'MALFORMED_FRAME' },
  { name: 'RANGE without end', phase: 'body', hex: mp(T.RANGE, { name: 'a', size: 10, mtime: 0, mode: 0, start: 0 }), error: 'MALFORMED_FRAME' },
  { name: 'RANGE with a negative start', phase: 'body', hex: mp(T.RANGE, { name: 'a', size: 10, mtime: 0, mode: 0, start: -1, end: 10 }), error: 'MALFORMED_FRAME' },
  { name: 'RANGE with a stream id', phase: 'body', hex: mp(T.RANGE, { name: 'a', size: 10, mtime: 0, mode: 0, start: 0, end: 10, stream: fill(16, 1) }), error: 'MALFORMED_FRAME' },
  { name: 'RANGE_OK without offset', phase: 'body', hex: mp(T.RANGE_OK, {}), error: 'MALFORMED_FRAME' },
  { name: 'RANGE_END with a string end', phase: 'body', hex: mp(T.RANGE_END, { end: '10' }), error: 'MALFORMED_FRAME' },
  { name: 'RANGE_DONE with an offset', phase: 'body', hex: mp(T.RANGE_DONE, { end: 10, offset: 10 }), error: 'MALFORMED_FRAME' },
];

type Step = ['recv' | 'send', string];
interface Sequence {
  name: string;
  machine: 'server' | 'client';
  steps: Step[];
  final?: string;
  error?: string;
}
const serverHappy: Step[] = [
  ['recv', 'CLIENT_HELLO'], ['send', 'SERVER_HELLO'], ['recv', 'KEY_EXCHANGE'], ['recv', 'CLIENT_FINISHED'],
  ['send', 'SERVER_FINISHED'], ['recv', 'OPEN'], ['send', 'OPEN_OK'], ['recv', 'DATA'], ['send', 'ACK'],
  ['recv', 'PING'], ['send', 'PONG'], ['recv', 'DATA'], ['recv', 'END'], ['send', 'DONE'],
];
const clientHappy: Step[] = [
  ['send', 'CLIENT_HELLO'], ['recv', 'SERVER_HELLO'], ['send', 'KEY_EXCHANGE'], ['send', 'CLIENT_FINISHED'],
  ['recv', 'SERVER_FINISHED'], ['send', 'OPEN'], ['recv', 'OPEN_OK'], ['send', 'DATA'], ['recv', 'ACK'],
  ['send', 'PING'], ['recv', 'PONG'], ['send', 'END'], ['recv', 'ACK'], ['recv', 'DONE'],
];
const states: Sequence[] = [
  { name: 'server: one upload', machine: 'server', steps: serverHappy, final: 'Ready' },
  { name: 'server: two uploads on one connection', machine: 'server', steps: [...serverHappy, ['recv', 'OPEN'], ['send', 'OPEN_OK'], ['recv', 'END'], ['send', 'DONE']], final: 'Ready' },
  { name: 'server: OPEN before CLIENT_FINISHED', machine: 'server', steps: [['recv', 'CLIENT_HELLO'], ['send', 'SERVER_HELLO'], ['recv', 'KEY_EXCHANGE'], ['recv', 'OPEN']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DATA before OPEN_OK', machine: 'server', steps: [...serverHappy.slice(0, 6), ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DATA after END', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'END'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: second CLIENT_HELLO', machine: 'server', steps: [['recv', 'CLIENT_HELLO'], ['recv', 'CLIENT_HELLO']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PING before the handshake', machine: 'server', steps: [['recv', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY from a client', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GOAWAY']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: ACK from a client', machine: 'server', steps: [...serverHappy.slice(0, 7), ['recv', 'ACK']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: ERROR closes', machine: 'server', steps: [['recv', 'CLIENT_HELLO'], ['recv', 'ERROR']], final: 'Closed' },
  { name: 'server: nothing after Closed', machine: 'server', steps: [['recv', 'ERROR'], ['recv', 'CLIENT_HELLO']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY sent closes', machine: 'server', steps: [...serverHappy.slice(0, 8), ['send', 'GOAWAY']], final: 'Closed' },
  { name: 'server: PROGRESS while re-reading before OPEN_OK (§9.7)', machine: 'server', steps: [...serverHappy.slice(0, 6), ['send', 'PROGRESS'], ['recv', 'PING'], ['send', 'PONG'], ['send', 'PROGRESS'], ['send', 'OPEN_OK']], final: 'Receiving' },
  { name: 'server: PROGRESS while checking a stored copy after END (§9.7)', machine: 'server', steps: [...serverHappy.slice(0, 7), ['recv', 'END'], ['send', 'PROGRESS'], ['send', 'DONE']], final: 'Ready' },
  { name: 'server: PROGRESS while receiving', machine: 'server', steps: [...serverHappy.slice(0, 8), ['send', 'PROGRESS']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PROGRESS from a client', machine: 'server', steps: [...serverHappy.slice(0, 6), ['recv', 'PROGRESS']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DONE before END', machine: 'server', steps: [...serverHappy.slice(0, 7), ['send', 'DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: one upload', machine: 'client', steps: clientHappy, final: 'Ready' },
  { name: 'client: OPEN_OK without OPEN', machine: 'client', steps: [...clientHappy.slice(0, 5), ['recv', 'OPEN_OK']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: DONE before END', machine: 'client', steps: [...clientHappy.slice(0, 7), ['recv', 'DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: PROGRESS before OPEN_OK (§9.7)', machine: 'client', steps: [...clientHappy.slice(0, 6), ['recv', 'PROGRESS'], ['recv', 'PROGRESS'], ['recv', 'OPEN_OK']], final: 'Sending' },
  { name: 'client: PROGRESS before DONE (§9.7)', machine: 'client', steps: [...clientHappy.slice(0, 7), ['send', 'END'], ['recv', 'PROGRESS'], ['recv', 'DONE']], final: 'Ready' },
  { name: 'client: PROGRESS while sending', machine: 'client', steps: [...clientHappy.slice(0, 8), ['recv', 'PROGRESS']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: DATA from the server', machine: 'client', steps: [...clientHappy.slice(0, 7), ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: SERVER_FINISHED before SERVER_HELLO', machine: 'client', steps: [['send', 'CLIENT_HELLO'], ['recv', 'SERVER_FINISHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY in the handshake', machine: 'client', steps: [['send', 'CLIENT_HELLO'], ['recv', 'GOAWAY']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY while sending', machine: 'client', steps: [...clientHappy.slice(0, 8), ['recv', 'GOAWAY']], final: 'Closed' },
  { name: 'server: SERVER_FINISHED only right after CLIENT_FINISHED', machine: 'server', steps: [...serverHappy.slice(0, 5), ['send', 'SERVER_FINISHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: SERVER_FINISHED after DONE', machine: 'server', steps: [...serverHappy, ['send', 'SERVER_FINISHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: nothing is read between CLIENT_FINISHED and SERVER_FINISHED', machine: 'server', steps: [...serverHappy.slice(0, 4), ['recv', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PING in AwaitClientFinished', machine: 'server', steps: [...serverHappy.slice(0, 3), ['recv', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: sends PING in Ready', machine: 'server', steps: [...serverHappy.slice(0, 5), ['send', 'PING'], ['recv', 'PONG']], final: 'Ready' },
  { name: 'server: sends no PING before SERVER_FINISHED', machine: 'server', steps: [...serverHappy.slice(0, 3), ['send', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY instead of SERVER_FINISHED (shutdown mid-handshake)', machine: 'client', steps: [...clientHappy.slice(0, 4), ['recv', 'GOAWAY']], final: 'Closed' },
  { name: 'client: PING before SERVER_FINISHED', machine: 'client', steps: [...clientHappy.slice(0, 4), ['recv', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: sends no PING before SERVER_FINISHED', machine: 'client', steps: [...clientHappy.slice(0, 4), ['send', 'PING']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: sends PING in Ready', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'PING'], ['recv', 'PONG']], final: 'Ready' },
  { name: 'server: MKDIR, then an upload (§9.8)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'MKDIR'], ['recv', 'PING'], ['send', 'PONG'], ['send', 'MADE'], ...serverHappy.slice(5)], final: 'Ready' },
  { name: 'server: SYMLINK after DONE (§9.8)', machine: 'server', steps: [...serverHappy, ['recv', 'SYMLINK'], ['send', 'MADE']], final: 'Ready' },
  { name: 'server: OPEN before MADE (§9.8)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'MKDIR'], ['recv', 'OPEN']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: MKDIR while receiving', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'MKDIR']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: MADE without MKDIR', machine: 'server', steps: [...serverHappy.slice(0, 5), ['send', 'MADE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: MADE from a client', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'MADE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY sent in Making', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'SYMLINK'], ['send', 'GOAWAY']], final: 'Closed' },
  { name: 'client: MKDIR, SYMLINK, then an upload (§9.8)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'MKDIR'], ['recv', 'MADE'], ['send', 'SYMLINK'], ['recv', 'PING'], ['send', 'PONG'], ['recv', 'MADE'], ...clientHappy.slice(5)], final: 'Ready' },
  { name: 'client: MADE while awaiting OPEN_OK', machine: 'client', steps: [...clientHappy.slice(0, 6), ['recv', 'MADE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: MKDIR while sending', machine: 'client', steps: [...clientHappy.slice(0, 8), ['send', 'MKDIR']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY while awaiting MADE', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'MKDIR'], ['recv', 'GOAWAY']], final: 'Closed' },
  { name: 'client: OPEN before SERVER_FINISHED', machine: 'client', steps: [['send', 'CLIENT_HELLO'], ['recv', 'SERVER_HELLO'], ['send', 'KEY_EXCHANGE'], ['send', 'CLIENT_FINISHED'], ['send', 'OPEN']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: a listing (§9.10)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'LIST'], ['send', 'LIST_ENTRY'], ['recv', 'PING'], ['send', 'PONG'], ['send', 'LIST_ENTRY'], ['send', 'LIST_END']], final: 'Ready' },
  { name: 'server: a download, then an upload (§9.9)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'GET_OK'], ['send', 'DATA'], ['recv', 'PING'], ['send', 'PONG'], ['send', 'DATA'], ['send', 'GET_END'], ['recv', 'OPEN'], ['send', 'OPEN_OK']], final: 'Receiving' },
  { name: 'server: an empty download (§9.9)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'GET_OK'], ['send', 'GET_END']], final: 'Ready' },
  { name: 'server: DATA from a client while serving', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'GET_OK'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: LIST while listing', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'LIST'], ['recv', 'LIST']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GET while serving', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'GET_OK'], ['recv', 'GET']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DATA before GET_OK', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GET before CLIENT_FINISHED', machine: 'server', steps: [...serverHappy.slice(0, 3), ['recv', 'GET']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY while serving', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'GET'], ['send', 'GET_OK'], ['send', 'GOAWAY']], final: 'Closed' },
  { name: 'client: a listing in two slices (§9.10)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'LIST'], ['recv', 'LIST_ENTRY'], ['recv', 'LIST_END'], ['send', 'LIST'], ['recv', 'LIST_ENTRY'], ['recv', 'LIST_END']], final: 'Ready' },
  { name: 'client: a download (§9.9)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'GET'], ['recv', 'GET_OK'], ['recv', 'DATA'], ['send', 'PING'], ['recv', 'PONG'], ['recv', 'DATA'], ['recv', 'GET_END']], final: 'Ready' },
  { name: 'client: DATA before GET_OK', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'GET'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: LIST_ENTRY outside a listing', machine: 'client', steps: [...clientHappy.slice(0, 5), ['recv', 'LIST_ENTRY']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GET_END while listing', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'LIST'], ['recv', 'GET_END']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY while fetching', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'GET'], ['recv', 'GET_OK'], ['recv', 'GOAWAY']], final: 'Closed' },
  { name: 'server: an OPEN with sha256 answered DONE at once (§9.1)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'OPEN'], ['send', 'DONE'], ['recv', 'OPEN'], ['send', 'OPEN_OK']], final: 'Receiving' },
  { name: 'client: DONE instead of OPEN_OK (§9.1)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'OPEN'], ['recv', 'DONE'], ['send', 'LIST']], final: 'Listing' },
  { name: 'client: DONE while sending', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'OPEN'], ['recv', 'OPEN_OK'], ['recv', 'DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: a listing with directories (§9.10)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'LIST'], ['send', 'LIST_DIR'], ['send', 'LIST_ENTRY'], ['send', 'LIST_DIR'], ['send', 'LIST_END']], final: 'Ready' },
  { name: 'client: LIST_DIR outside a listing', machine: 'client', steps: [...clientHappy.slice(0, 5), ['recv', 'LIST_DIR']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: LIST_DIR from a client', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'LIST_DIR']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: three PUTs pipelined, answered in order while the next arrive (§9.11)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['recv', 'DATA'], ['recv', 'END'], ['recv', 'PUT'], ['send', 'PUT_DONE'], ['recv', 'DATA'], ['recv', 'END'], ['recv', 'PUT'], ['recv', 'END'], ['send', 'PUT_FAILED'], ['send', 'PUT_DONE']], final: 'Ready' },
  { name: 'server: a PUT answer while an OPEN waits for it (§9.11)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['recv', 'END'], ['recv', 'OPEN'], ['send', 'PUT_DONE'], ['send', 'OPEN_OK']], final: 'Receiving' },
  { name: 'server: OPEN before a PUT\'s END', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['recv', 'DATA'], ['recv', 'OPEN']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUT while receiving an upload', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'PUT']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUT_DONE from a client', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT_DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY while putting', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['send', 'GOAWAY']], final: 'Closed' },
  { name: 'client: PUTs pipelined, answers arriving in any state (§9.11)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'PUT'], ['send', 'DATA'], ['send', 'END'], ['send', 'PUT'], ['recv', 'PUT_DONE'], ['send', 'END'], ['send', 'OPEN'], ['recv', 'PUT_FAILED'], ['recv', 'OPEN_OK']], final: 'Sending' },
  { name: 'client: OPEN before a PUT\'s END', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'PUT'], ['send', 'OPEN']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: PUT from the server', machine: 'client', steps: [...clientHappy.slice(0, 5), ['recv', 'PUT']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUT_INLINE and PUT interleaved, answered by PUTS_DONE and PUT_FAILED (§9.11)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT_INLINE'], ['recv', 'PUT_INLINE'], ['recv', 'PUT'], ['recv', 'DATA'], ['send', 'PUTS_DONE'], ['recv', 'END'], ['recv', 'PUT_INLINE'], ['send', 'PUT_FAILED'], ['send', 'PUT_DONE'], ['recv', 'OPEN']], final: 'Opening' },
  { name: 'server: PUTS_DONE while an upload runs (§9.11)', machine: 'server', steps: [...serverHappy.slice(0, 8), ['send', 'PUTS_DONE'], ['recv', 'DATA']], final: 'Receiving' },
  { name: 'server: PUT_INLINE between a PUT and its END', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['recv', 'PUT_INLINE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUT_INLINE while receiving an upload', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'PUT_INLINE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUTS_DONE from a client', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUTS_DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: PUT_INLINE before CLIENT_FINISHED', machine: 'server', steps: [...serverHappy.slice(0, 3), ['recv', 'PUT_INLINE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: PUT_INLINE, answered by PUTS_DONE while a directory is made (§9.11)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'PUT_INLINE'], ['send', 'PUT_INLINE'], ['send', 'MKDIR'], ['recv', 'PUTS_DONE'], ['recv', 'MADE']], final: 'Ready' },
  { name: 'client: PUT_INLINE between a PUT and its END', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'PUT'], ['send', 'PUT_INLINE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: PUT_INLINE from the server', machine: 'client', steps: [...clientHappy.slice(0, 5), ['recv', 'PUT_INLINE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: PUTS_DONE before SERVER_FINISHED', machine: 'client', steps: [...clientHappy.slice(0, 3), ['recv', 'PUTS_DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: a detached END, the next OPEN at once, the answer later (§9.1, §9.11)', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'END_DETACHED'], ['recv', 'OPEN'], ['send', 'OPEN_OK'], ['send', 'PUT_DONE'], ['recv', 'END_DETACHED'], ['recv', 'PUT_INLINE'], ['send', 'PUTS_DONE'], ['recv', 'MKDIR'], ['send', 'MADE']], final: 'Ready' },
  { name: 'server: END_DETACHED in Ready', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'END_DETACHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: END_DETACHED after a PUT', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'PUT'], ['recv', 'END_DETACHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DATA after END_DETACHED', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'END_DETACHED'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: END_DETACHED in a range', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['recv', 'END_DETACHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: END_DETACHED from the server', machine: 'server', steps: [...serverHappy.slice(0, 8), ['send', 'END_DETACHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: a detached END, ACKs sent before it read, then the next OPEN (§9.1, §11.2)', machine: 'client', steps: [...clientHappy.slice(0, 8), ['send', 'END_DETACHED'], ['recv', 'ACK'], ['send', 'OPEN'], ['recv', 'ACK'], ['recv', 'OPEN_OK'], ['recv', 'PUT_DONE'], ['send', 'END_DETACHED'], ['recv', 'PUT_FAILED']], final: 'Ready' },
  { name: 'client: DONE after END_DETACHED', machine: 'client', steps: [...clientHappy.slice(0, 8), ['send', 'END_DETACHED'], ['recv', 'DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: END_DETACHED before OPEN_OK', machine: 'client', steps: [...clientHappy.slice(0, 6), ['send', 'END_DETACHED']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: ACK while fetching', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'GET'], ['recv', 'GET_OK'], ['recv', 'ACK']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: sends DATA while fetching', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'GET'], ['recv', 'GET_OK'], ['send', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: two ranges on one connection, then the OPEN that publishes (§9.13)', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['recv', 'DATA'], ['send', 'ACK'], ['recv', 'DATA'], ['recv', 'RANGE_END'], ['send', 'ACK'], ['send', 'RANGE_DONE'], ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['recv', 'RANGE_END'], ['send', 'RANGE_DONE'], ['recv', 'OPEN'], ['send', 'PROGRESS'], ['send', 'OPEN_OK'], ['recv', 'END'], ['send', 'DONE']], final: 'Ready' },
  { name: 'server: DATA before RANGE_OK', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: END in a range', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['recv', 'END']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: RANGE_END in an upload', machine: 'server', steps: [...serverHappy.slice(0, 8), ['recv', 'RANGE_END']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: DATA after RANGE_END', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['recv', 'RANGE_END'], ['recv', 'DATA']], error: 'UNEXPECTED_FRAME' },
  { name: 'server: GOAWAY while ranging', machine: 'server', steps: [...serverHappy.slice(0, 5), ['recv', 'RANGE'], ['send', 'RANGE_OK'], ['send', 'GOAWAY']], final: 'Closed' },
  { name: 'client: a range (§9.13)', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'RANGE'], ['recv', 'RANGE_OK'], ['send', 'DATA'], ['recv', 'ACK'], ['send', 'RANGE_END'], ['recv', 'ACK'], ['recv', 'RANGE_DONE'], ['send', 'OPEN']], final: 'AwaitOpenOk' },
  { name: 'client: RANGE_DONE while sending a range', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'RANGE'], ['recv', 'RANGE_OK'], ['recv', 'RANGE_DONE']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: RANGE_OK to an OPEN', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'OPEN'], ['recv', 'RANGE_OK']], error: 'UNEXPECTED_FRAME' },
  { name: 'client: GOAWAY while awaiting RANGE_DONE', machine: 'client', steps: [...clientHappy.slice(0, 5), ['send', 'RANGE'], ['recv', 'RANGE_OK'], ['send', 'RANGE_END'], ['recv', 'GOAWAY']], final: 'Closed' },
];

function write(name: string, value: Json | object): void {
  writeFileSync(path.join(VECTORS_DIR, name), JSON.stringify(value, null, 1) + '\n');
}

write('frames-valid.json', {
  description: 'Valid stx/1 frames (spec §2, §4): decoding hex gives frame; encoding frame gives hex. hex is the whole plaintext frame (length ‖ type ‖ payload); body_hex is type ‖ payload.',
  vectors: valid.map((f) => ({ hex: encodeFrame(f).toString('hex'), body_hex: encodeBody(f).toString('hex'), frame: frameToJson(f) })),
});
write('frames-noncanonical.json', {
  description: 'Valid frames in a non-canonical MessagePack encoding (spec §2.1): decoding body_hex MUST give frame; encoding frame gives canonical_body_hex (the canonical encoding), not body_hex.',
  vectors: noncanonical.map((v) => ({ name: v.name, body_hex: v.body_hex, frame: frameToJson(v.frame), canonical_body_hex: encodeBody(v.frame).toString('hex') })),
});
write('frames-invalid.json', {
  description: 'Invalid input (spec §2). phase "stream": the bytes of a plaintext stream fed to a frame reader, then end of stream. phase "body": a frame body (type ‖ payload) as found inside a record. Each must fail with error.',
  vectors: invalid,
});
write('states.json', {
  description: 'State-machine sequences (spec §11). Steps are [recv|send, FRAME]; the sequence ends in final, or fails at its last step with error.',
  vectors: states,
});
console.log(`wrote ${valid.length} valid, ${invalid.length} invalid, ${states.length} state vectors`);
