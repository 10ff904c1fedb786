// Target: a plaintext byte stream (§2) in arbitrary chunks through StreamReader + decodeBody,
// compared with the reference stream walk.
import fc from 'fast-check';
import { decodeBody, encodeBody, MAX_PLAINTEXT_FRAME_LENGTH_BYTES, StreamReader, withLength } from '../../../src/proto/index.js';
import { controlBodyArb, controlLimitArb } from '../bodies.js';
import { chunk, chunkingArb, showChunking, type Chunking } from '../chunks.js';
import { frameArb } from '../frames.js';
import { applyMutations, lengthUnits, mutationsArb, showMutations, type Mutation } from '../mutate.js';
import { compareOutcome, typedCode, type Outcome, type RefItem } from '../oracle.js';
import { collect, RefWire } from '../reference-wire.js';
import { invalidInputs, validFrames } from '../seeds.js';
import { checkFrame, checkPending, checkUnit, once, type Target } from '../target.js';

const BOUNDS = { min: 1, max: MAX_PLAINTEXT_FRAME_LENGTH_BYTES };

export interface StreamInput {
  readonly base: Buffer;
  readonly mutations: readonly Mutation[];
  readonly chunking: Chunking;
}

const NO_CUTS: Chunking = { cuts: [], bytewise: false };

function plaintextStreamBytes(input: StreamInput, others: readonly Buffer[]): Buffer {
  return applyMutations(input.base, input.mutations, { others, units: (b) => lengthUnits(b) });
}

/** Feeds the chunks to a StreamReader and decodes every frame, checking bounds as it goes. */
function readPlaintext(chunks: readonly Buffer[]): Outcome {
  const reader = new StreamReader();
  const outcome: Outcome = { frames: [], code: null };
  outcome.code = typedCode(() => {
    for (const c of chunks) {
      reader.push(c);
      checkPending(reader.pending, BOUNDS.max, c.length);
      for (let raw = reader.next(BOUNDS); raw !== null; raw = reader.next(BOUNDS)) {
        checkUnit(raw, BOUNDS.min, BOUNDS.max);
        const frame = decodeBody(raw.subarray(4));
        checkFrame(frame);
        outcome.frames.push(frame);
      }
      checkPending(reader.pending, BOUNDS.max, 0);
    }
    reader.end();
  });
  return outcome;
}

export function referencePlaintext(stream: Buffer): RefItem[] {
  const wire = new RefWire(stream);
  return collect(() => wire.plaintext());
}

/** Seed streams from spec/vectors; also what a splice takes its tail from. */
const corpus = once((): Buffer[] => {
  const valid = validFrames().map((v) => v.frame);
  return [...valid, Buffer.concat(valid.filter((f) => f.length <= 4 + BOUNDS.max)), ...invalidInputs('stream')];
});

export const plaintextStream: Target<StreamInput> = {
  name: 'plaintext-stream',
  about: 'plaintext frames (§2) in any chunking → StreamReader + decodeBody, vs the reference stream walk',
  seeds() {
    return corpus().map((base) => ({ base, mutations: [], chunking: NO_CUTS }));
  },
  arbitrary(seeds) {
    const body = fc.oneof({ weight: 4, arbitrary: frameArb.map(encodeBody) }, { weight: 3, arbitrary: controlBodyArb }, { weight: 1, arbitrary: controlLimitArb });
    const generated = fc.array(body, { minLength: 1, maxLength: 6 }).map((bodies) => Buffer.concat(bodies.map(withLength)));
    return fc.record({
      base: fc.oneof(fc.constantFrom(...seeds.map((s) => s.base)), generated),
      mutations: fc.oneof(fc.constant([]), mutationsArb()),
      chunking: chunkingArb,
    });
  },
  run(input) {
    const stream = plaintextStreamBytes(input, corpus());
    compareOutcome(readPlaintext(chunk(stream, input.chunking)), referencePlaintext(stream));
  },
  show(input) {
    const stream = plaintextStreamBytes(input, corpus());
    return `stream ${stream.toString('hex').slice(0, 400)} (${stream.length} bytes; base ${input.base.length} bytes, mutations [${showMutations(input.mutations)}], ${showChunking(input.chunking)})`;
  },
  regression(input) {
    const stream = plaintextStreamBytes(input, corpus());
    const items = referencePlaintext(stream);
    const last = items[items.length - 1];
    if (items.some((i) => i.kind === 'body' && i.verdict.kind === 'either') || last === undefined) return null;
    const error = last.kind === 'error' ? last.code : last.verdict.kind === 'reject' ? last.verdict.code : null;
    if (error === null || stream.length > 64 * 1024) return null;
    return { file: 'frames-invalid-fuzz.json', vector: { name: `fuzz: plaintext stream → ${error}`, phase: 'stream', hex: stream.toString('hex'), error } };
  },
};
