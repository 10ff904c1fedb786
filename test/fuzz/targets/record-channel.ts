// Target: the record layer's open path (§8). Sealed streams (vectors, or frames sealed here with
// a real RecordSealer) are mutated at byte level and pushed in any chunking through a
// FrameChannel that opens records with a real RecordOpener. Oracles: every record it accepts opens
// at that very seq under the spec's reference and is one of the originals (no altered, replayed,
// reordered or dropped record gets through), the whole outcome equals the reference model's,
// and after the opener failed nothing more is accepted.
import fc from 'fast-check';
import { FrameChannel } from '../../../src/crypto/channel.js';
import { RecordOpener, type RecordCounters } from '../../../src/crypto/record.js';
import { encodeBody, MAX_RECORD_LENGTH_BYTES, MIN_RECORD_LENGTH_BYTES, type ErrorCode } from '../../../src/proto/index.js';
import { controlBodyArb, dataLimitArb } from '../bodies.js';
import { chunk, chunkingArb, showChunking, type Chunking } from '../chunks.js';
import { frameArb } from '../frames.js';
import { applyMutations, lengthUnits, mutationsArb, showMutations, type Mutation } from '../mutate.js';
import { compareOutcome, fail, typedCode, type Outcome } from '../oracle.js';
import { collect, RefOpener, referenceOpen, RefWire } from '../reference-wire.js';
import { sealBodies, sealedBody, vectorStreams, type SealedSet, type SealedStream } from '../sealed.js';
import { checkFrame, checkPending, checkUnit, type Target } from '../target.js';

/** Record counters to start from: the protocol's 0, and just below each key limit (§8). */
const STARTS: readonly RecordCounters[] = [{}, { seq: 2 ** 32 - 2 }, { bytes: 2 ** 38 - 40_000 }];
const KEY = Buffer.alloc(32, 0x4b);
const IV = Buffer.alloc(12, 0x49);

export type ChannelSource =
  | { readonly kind: 'vector'; readonly index: number }
  | { readonly kind: 'sealed'; readonly bodies: readonly Buffer[]; readonly partner: readonly Buffer[]; readonly start: number };

export interface ChannelInput {
  readonly source: ChannelSource;
  readonly mutations: readonly Mutation[];
  readonly chunking: Chunking;
}

/** The stream before mutation, and the streams a splice may take a tail from. */
function build(source: ChannelSource): { stream: SealedStream; others: Buffer[] } {
  const vectors = vectorStreams();
  if (source.kind === 'vector') {
    const stream = vectors[source.index % vectors.length];
    if (stream === undefined) throw new Error('no vector streams');
    return { stream, others: vectors.map((v) => v.bytes) };
  }
  const start = STARTS[source.start % STARTS.length] ?? {};
  const sealed: SealedSet = new Map();
  const bytes = Buffer.concat(sealBodies(KEY, IV, start, source.bodies, sealed));
  // The partner is sealed under the same key from the same counters: its records are genuine
  // too, so a splice at a record boundary may rightly be accepted (the sealed set allows it).
  const partner = Buffer.concat(sealBodies(KEY, IV, start, source.partner, sealed));
  const stream: SealedStream = { label: 'sealed', key: KEY, iv: IV, start, firstRecordError: null, bytes, sealed, complete: true };
  return { stream, others: [partner, ...vectors.map((v) => v.bytes)] };
}

/** What the authenticity oracle knows of a stream. */
export type Originals = Pick<SealedStream, 'key' | 'iv' | 'sealed' | 'complete'>;

/**
 * Authenticity (§8) of a record the channel accepted at `seq`: it opens under the spec's
 * reference (so it is exactly what an honest sealer makes of its body at that seq and key), and,
 * where every original is known, it is one of them: a mutated stream yields a prefix of the
 * originals (or of a splice of genuine streams), never an altered record.
 */
export function checkAuthentic(o: Originals, seq: number, raw: Buffer): void {
  if (referenceOpen(o.key, o.iv, seq, raw) === null) {
    fail(`FORGERY: a record that does not open at seq ${seq} was accepted: ${raw.toString('hex').slice(0, 80)}`);
  }
  if (o.complete && sealedBody(o.sealed, seq, raw) === undefined) {
    fail(`a record that is none of the originals at seq ${seq} was accepted: ${raw.toString('hex').slice(0, 80)}`);
  }
}

function opener(stream: SealedStream): RecordOpener {
  const first = stream.firstRecordError;
  return new RecordOpener(stream.key, stream.iv, {
    start: stream.start,
    ...(first === null ? {} : { firstRecordError: { code: first, message: 'first record failed to open' } }),
  });
}

function refOpener(stream: SealedStream): RefOpener {
  const first: ErrorCode | null = stream.firstRecordError;
  return new RefOpener(stream.key, stream.iv, {
    ...(stream.start.seq === undefined ? {} : { startSeq: stream.start.seq }),
    ...(stream.start.bytes === undefined ? {} : { startBytes: stream.start.bytes }),
    ...(first === null ? {} : { firstRecordError: first }),
  });
}

/** Errors of the opener itself, after which it refuses everything (record.ts, RecordOpener). */
const OPENER_ERRORS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['DECRYPT_FAILED', 'HANDSHAKE_FAILED', 'KEY_LIMIT']);

/** Once a record failed to open, no later record may be accepted, whatever else arrives. */
function checkLatched(channel: FrameChannel, rest: readonly Buffer[]): void {
  for (const c of rest) channel.push(c);
  for (let i = 0; i < 8 && channel.pending > 0; i++) {
    typedCode(() => {
      const r = channel.next();
      if (r !== null) fail(`${r.frame.type} accepted after the record layer failed`);
    });
  }
}

function mutated(input: ChannelInput): { stream: SealedStream; bytes: Buffer } {
  const { stream, others } = build(input.source);
  return { stream, bytes: applyMutations(stream.bytes, input.mutations, { others, units: (b) => lengthUnits(b) }) };
}

const bodyArb = fc.oneof(
  { weight: 6, arbitrary: frameArb.map(encodeBody) },
  { weight: 2, arbitrary: controlBodyArb },
  { weight: 1, arbitrary: dataLimitArb },
);

export const recordChannel: Target<ChannelInput> = {
  name: 'record-channel',
  about: 'sealed record streams, mutated, in any chunking → FrameChannel + RecordOpener; authenticity + reference model',
  seeds() {
    return vectorStreams().map((_, index) => ({ source: { kind: 'vector', index }, mutations: [], chunking: { cuts: [], bytewise: false } }));
  },
  arbitrary() {
    const source: fc.Arbitrary<ChannelSource> = fc.oneof(
      fc.record({ kind: fc.constant('vector' as const), index: fc.nat() }),
      fc.record({
        kind: fc.constant('sealed' as const),
        bodies: fc.array(bodyArb, { minLength: 1, maxLength: 5 }),
        partner: fc.array(bodyArb, { maxLength: 3 }),
        start: fc.nat(STARTS.length - 1),
      }),
    );
    return fc.record({ source, mutations: fc.oneof(fc.constant([]), mutationsArb()), chunking: chunkingArb });
  },
  run(input) {
    const { stream, bytes } = mutated(input);
    const channel = new FrameChannel();
    channel.startOpening(opener(stream));
    const startSeq = stream.start.seq ?? 0;
    const chunks = chunk(bytes, input.chunking);
    let pushed = 0;
    const outcome: Outcome = { frames: [], code: null };
    outcome.code = typedCode(() => {
      for (const c of chunks) {
        pushed += 1;
        channel.push(c);
        checkPending(channel.pending, MAX_RECORD_LENGTH_BYTES, c.length);
        for (let r = channel.next(); r !== null; r = channel.next()) {
          checkUnit(r.raw, MIN_RECORD_LENGTH_BYTES, MAX_RECORD_LENGTH_BYTES);
          checkAuthentic(stream, startSeq + outcome.frames.length, r.raw);
          checkFrame(r.frame);
          outcome.frames.push(r.frame);
        }
        checkPending(channel.pending, MAX_RECORD_LENGTH_BYTES, 0);
      }
      channel.end();
    });
    const wire = new RefWire(bytes);
    const ref = refOpener(stream);
    compareOutcome(outcome, collect(() => wire.record(ref)));
    if (outcome.code !== null && OPENER_ERRORS.has(outcome.code)) checkLatched(channel, chunks.slice(pushed));
  },
  show(input) {
    const { stream, bytes } = mutated(input);
    const hexes = (bodies: readonly Buffer[]): string => bodies.map((b) => b.toString('hex').slice(0, 120)).join(' ');
    const src = input.source.kind === 'vector' ? stream.label : `bodies [${hexes(input.source.bodies)}] partner [${hexes(input.source.partner)}] sealed from ${JSON.stringify(stream.start)}`;
    return `${src}; mutations [${showMutations(input.mutations)}]; ${showChunking(input.chunking)}; stream ${bytes.toString('hex').slice(0, 300)} (${bytes.length} bytes)`;
  },
};
