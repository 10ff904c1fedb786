// Reference model of the byte stream (spec/PROTOCOL.md §2, §3, §8): walks a whole input at once,
// with no chunking, and says what a receiver must yield: frame verdicts in order, then a
// stream-level error or a clean end. Records are opened as §8 describes them, straight on
// node:crypto's AES-256-GCM, sharing no code with src/crypto/record.ts.
import { createDecipheriv } from 'node:crypto';
import type { ErrorCode } from '../../src/proto/index.js';
import type { RefItem } from './oracle.js';
import { referenceBody, SPEC } from './reference-body.js';

/**
 * §8: record = length:u32 ‖ ciphertext ‖ tag:16, AES-256-GCM under key with
 * nonce = iv XOR (0^4 ‖ seq:u64) and aad = the length header. The body, or null if it fails.
 */
export function referenceOpen(key: Buffer, iv: Buffer, seq: number, record: Buffer): Buffer | null {
  if (record.length < 4 + 16) return null;
  const nonce = Buffer.from(iv);
  const s = Buffer.alloc(8);
  s.writeBigUInt64BE(BigInt(seq));
  for (let i = 0; i < 8; i++) nonce[4 + i] = (nonce[4 + i] ?? 0) ^ (s[i] ?? 0);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  decipher.setAAD(record.subarray(0, 4));
  decipher.setAuthTag(record.subarray(record.length - 16));
  try {
    return Buffer.concat([decipher.update(record.subarray(4, record.length - 16)), decipher.final()]);
  } catch {
    return null;
  }
}

export interface RefOpenerOptions {
  readonly startSeq?: number;
  readonly startBytes?: number;
  /** The code a failure to open the first record gives (§6: HANDSHAKE_FAILED). */
  readonly firstRecordError?: ErrorCode;
}

const MAX_RECORDS_PER_KEY = 2 ** 32;
const MAX_BYTES_PER_KEY = 2 ** 38;

/** The receiving side of §8 as a model: own counter, key limits, first-record error. */
export class RefOpener {
  private seq: number;
  private bytes = 0;
  private opened = 0;
  constructor(
    private readonly key: Buffer,
    private readonly iv: Buffer,
    private readonly options: RefOpenerOptions = {},
  ) {
    this.seq = options.startSeq ?? 0;
    this.bytes = options.startBytes ?? 0;
  }

  open(record: Buffer): RefItem {
    const bodyLen = record.length - 4 - 16;
    if (this.seq + 1 > MAX_RECORDS_PER_KEY || this.bytes + bodyLen > MAX_BYTES_PER_KEY) return { kind: 'error', code: 'KEY_LIMIT' };
    const body = referenceOpen(this.key, this.iv, this.seq, record);
    if (body === null) {
      const first = this.opened === 0 ? this.options.firstRecordError : undefined;
      return { kind: 'error', code: first ?? 'DECRYPT_FAILED' };
    }
    this.seq += 1;
    this.bytes += bodyLen;
    this.opened += 1;
    return { kind: 'body', verdict: referenceBody(body) };
  }
}

/** A cursor over the whole input. Each read returns an item, or null at a clean end. */
export class RefWire {
  private pos = 0;
  constructor(private readonly bytes: Buffer) {}

  private get left(): number {
    return this.bytes.length - this.pos;
  }

  /** The 8-byte preamble (§3), TRUNCATED for part of one, or null for an empty stream. */
  preamble(): Buffer | RefItem | null {
    if (this.left === 0) return null;
    if (this.left < 8) return { kind: 'error', code: 'TRUNCATED' };
    this.pos += 8;
    return this.bytes.subarray(this.pos - 8, this.pos);
  }

  /** length ‖ rest, with the phase's length bounds checked first (§2, §8). */
  private unit(min: number, max: number): Buffer | RefItem | null {
    if (this.left === 0) return null;
    if (this.left < 4) return { kind: 'error', code: 'TRUNCATED' };
    const length = this.bytes.readUInt32BE(this.pos);
    if (length > max) return { kind: 'error', code: 'FRAME_TOO_LARGE' };
    if (length < min) return { kind: 'error', code: 'MALFORMED_FRAME' };
    if (this.left < 4 + length) return { kind: 'error', code: 'TRUNCATED' };
    this.pos += 4 + length;
    return this.bytes.subarray(this.pos - 4 - length, this.pos);
  }

  plaintext(): RefItem | null {
    const u = this.unit(1, SPEC.MAX_PLAINTEXT_FRAME_LENGTH);
    return u === null || !Buffer.isBuffer(u) ? u : { kind: 'body', verdict: referenceBody(u.subarray(4)) };
  }

  record(opener: RefOpener): RefItem | null {
    const u = this.unit(SPEC.MIN_RECORD_LENGTH, SPEC.MAX_RECORD_LENGTH);
    return u === null || !Buffer.isBuffer(u) ? u : opener.open(u);
  }
}

/** Items of a stream read by `next` until a clean end or the first error (a rejected body included). */
export function collect(next: () => RefItem | null, limit = 100_000): RefItem[] {
  const items: RefItem[] = [];
  for (let i = 0; i < limit; i++) {
    const item = next();
    if (item === null) return items;
    items.push(item);
    if (item.kind === 'error' || item.verdict.kind === 'reject') return items;
  }
  throw new Error(`reference stream longer than ${limit} items`);
}

/** §3: BAD_PREAMBLE for a wrong magic or reserved bits; the version each side accepts. */
export function referencePreamble(side: 'server' | 'client', p: Buffer): ErrorCode | null {
  if (!p.subarray(0, 4).equals(Buffer.from('STX\0', 'latin1')) || p.readUInt16BE(6) !== 0) return 'BAD_PREAMBLE';
  const version = p.readUInt16BE(4);
  // The server needs a common version (the client's is at least 1); the client offered 1 and
  // must get exactly that back.
  if (side === 'server' ? version < 1 : version !== 1) return 'VERSION_UNSUPPORTED';
  return null;
}
