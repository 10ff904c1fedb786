// Target: one frame body as found inside a record (§2, §8: up to MAX_FRAME_LENGTH bytes)
// through decodeBody, compared with the reference decoder.
import fc from 'fast-check';
import { decodeBody, encodeBody, type Frame } from '../../../src/proto/index.js';
import { controlBodyArb, controlLimitArb, dataLimitArb } from '../bodies.js';
import { frameArb } from '../frames.js';
import { applyMutations, mutationsArb, showMutations, type Mutation } from '../mutate.js';
import { compareOutcome, typedCode } from '../oracle.js';
import { referenceBody } from '../reference-body.js';
import { invalidInputs, validFrames } from '../seeds.js';
import { checkFrame, once, type Target } from '../target.js';

export interface BodyInput {
  readonly base: Buffer;
  readonly mutations: readonly Mutation[];
}

const corpus = once((): Buffer[] => [...validFrames().map((v) => v.body), ...invalidInputs('body')]);

/** A body's first byte is its type; a "length unit" here is the DATA offset or a map head. */
const bodyBytes = (input: BodyInput): Buffer => applyMutations(input.base, input.mutations, { others: corpus(), units: () => [1] });

export const recordBody: Target<BodyInput> = {
  name: 'record-body',
  about: 'frame bodies (type ‖ payload, as inside a record) → decodeBody, vs the reference decoder',
  seeds() {
    return corpus().map((base) => ({ base, mutations: [] }));
  },
  arbitrary(seeds) {
    return fc.record({
      base: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...seeds.map((s) => s.base)) },
        { weight: 3, arbitrary: frameArb.map(encodeBody) },
        { weight: 4, arbitrary: controlBodyArb },
        { weight: 1, arbitrary: controlLimitArb },
        { weight: 1, arbitrary: dataLimitArb },
      ),
      mutations: fc.oneof(fc.constant([]), mutationsArb(3)),
    });
  },
  run(input) {
    const body = bodyBytes(input);
    const frames: Frame[] = [];
    const code = typedCode(() => {
      const frame = decodeBody(body);
      checkFrame(frame);
      frames.push(frame);
    });
    compareOutcome({ frames, code }, [{ kind: 'body', verdict: referenceBody(body) }]);
  },
  show(input) {
    const body = bodyBytes(input);
    return `body ${body.toString('hex').slice(0, 400)} (${body.length} bytes; mutations [${showMutations(input.mutations)}])`;
  },
  regression(input) {
    const body = bodyBytes(input);
    const v = referenceBody(body);
    if (v.kind !== 'reject' || body.length > 64 * 1024) return null;
    return { file: 'frames-invalid-fuzz.json', vector: { name: `fuzz: body → ${v.code}`, phase: 'body', hex: body.toString('hex'), error: v.code } };
  },
};
