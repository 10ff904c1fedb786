// Sealed record streams for the record-layer targets (§8): from spec/vectors (records*,
// handshake*) or sealed here with a real RecordSealer, each with the set of the records sealed
// for it, the originals an accepted record must be one of.
import { RecordSealer, type RecordCounters } from '../../src/crypto/record.js';
import { CryptoError, MAX_FRAME_LENGTH_BYTES, type ErrorCode } from '../../src/proto/index.js';
import { handshakeSeeds, recordSeeds, type DirectionSeed } from './seeds.js';
import { once } from './target.js';

/** Records sealed under one key: seq → the records sealed at that seq, with their bodies. */
export type SealedSet = Map<number, { readonly record: Buffer; readonly body: Buffer }[]>;

export function addSealed(set: SealedSet, seq: number, record: Buffer, body: Buffer): void {
  const at = set.get(seq) ?? [];
  if (!at.some((s) => s.record.equals(record))) at.push({ record, body });
  set.set(seq, at);
}

/** The body of `record` if it was sealed at `seq`, else undefined. */
export function sealedBody(set: SealedSet, seq: number, record: Buffer): Buffer | undefined {
  return set.get(seq)?.find((s) => s.record.equals(record))?.body;
}

export interface SealedStream {
  readonly label: string;
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly start: RecordCounters;
  readonly firstRecordError: ErrorCode | null;
  readonly bytes: Buffer;
  readonly sealed: SealedSet;
  /**
   * Whether `sealed` holds every original of this stream. Not for the records* vectors that
   * must fail: they are altered records whose originals the vector file does not hold.
   */
  readonly complete: boolean;
}

const keyId = (key: Buffer, iv: Buffer): string => `${key.toString('hex')}/${iv.toString('hex')}`;

/** Every record the vectors seal, by key: a record from one vector may turn up in another's stream. */
const vectorSealed = once((): Map<string, SealedSet> => {
  const byKey = new Map<string, SealedSet>();
  const add = (key: Buffer, iv: Buffer, seq: number, record: Buffer, body: Buffer): void => {
    const id = keyId(key, iv);
    let set = byKey.get(id);
    if (set === undefined) byKey.set(id, (set = new Map() as SealedSet));
    addSealed(set, seq, record, body);
  };
  for (const r of recordSeeds()) if (r.body !== null) add(r.key, r.iv, r.seq, r.record, r.body);
  for (const h of handshakeSeeds()) {
    for (const d of [h.c2s, h.s2c]) d.records.forEach((r, seq) => add(d.key, d.iv, seq, r.record, r.body));
  }
  return byKey;
});

export function sealedUnder(key: Buffer, iv: Buffer): SealedSet {
  const none: SealedSet = new Map();
  return vectorSealed().get(keyId(key, iv)) ?? none;
}

function directionStream(label: string, d: DirectionSeed): SealedStream {
  return {
    label,
    key: d.key,
    iv: d.iv,
    start: {},
    firstRecordError: 'HANDSHAKE_FAILED',
    bytes: Buffer.concat(d.records.map((r) => r.record)),
    sealed: sealedUnder(d.key, d.iv),
    complete: true,
  };
}

/** One stream per records* vector (a single record at its seq) and per handshake direction. */
export const vectorStreams = once((): SealedStream[] => [
  ...recordSeeds().map((r, i) => ({
    label: `records #${i}`,
    key: r.key,
    iv: r.iv,
    start: { seq: r.seq },
    firstRecordError: null,
    bytes: r.record,
    sealed: sealedUnder(r.key, r.iv),
    complete: r.body !== null,
  })),
  ...handshakeSeeds().flatMap((h) => [directionStream(`${h.name} c2s`, h.c2s), directionStream(`${h.name} s2c`, h.s2c)]),
]);

/**
 * Seals `bodies` in order from `start`, adding each record to `sealed`; stops where the sealer
 * refuses (KEY_LIMIT) and skips bodies the record layer cannot carry (over MAX_FRAME_LENGTH).
 */
export function sealBodies(key: Buffer, iv: Buffer, start: RecordCounters, bodies: readonly Buffer[], sealed: SealedSet): Buffer[] {
  const sealer = new RecordSealer(key, iv, start);
  const records: Buffer[] = [];
  for (const body of bodies) {
    if (body.length < 1 || body.length > MAX_FRAME_LENGTH_BYTES) continue;
    const seq = sealer.seq;
    let record: Buffer;
    try {
      record = Buffer.concat(sealer.seal(body));
    } catch (err) {
      if (err instanceof CryptoError && err.code === 'KEY_LIMIT') break;
      throw err;
    }
    addSealed(sealed, seq, record, body);
    records.push(record);
  }
  return records;
}

/** A copy of a sealed set, so that adding to it leaves the original alone. */
export function copySealed(set: SealedSet): SealedSet {
  return new Map([...set].map(([seq, list]) => [seq, [...list]]));
}
