// Conformance: every frame and state vector in spec/vectors (spec §2, §4, §11).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clientMachine,
  NO_RESUMPTION,
  decodeBody,
  encodeBody,
  encodeBodyParts,
  encodeFrame,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  serverMachine,
  StreamReader,
  StxError,
  type Frame,
  type FrameName,
} from '../src/proto/index.js';
import { jsonToValue } from './support/json-frames.js';
import { field, str, vectorFiles } from './support/vectors.js';

const PLAINTEXT = { min: 1, max: MAX_PLAINTEXT_FRAME_LENGTH_BYTES };

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof StxError) return err.code;
    throw err;
  }
  return 'no error';
}

function readStream(bytes: Buffer): Frame[] {
  const reader = new StreamReader();
  reader.push(bytes);
  const frames: Frame[] = [];
  for (let raw = reader.next(PLAINTEXT); raw !== null; raw = reader.next(PLAINTEXT)) {
    frames.push(decodeBody(raw.subarray(4)));
  }
  reader.end();
  return frames;
}

const validFiles = vectorFiles('frames-valid');
const noncanonicalFiles = vectorFiles('frames-noncanonical');
const invalidFiles = vectorFiles('frames-invalid');
const stateFiles = vectorFiles('states');

it('vector files are present', () => {
  assert.ok(validFiles.length > 0 && noncanonicalFiles.length > 0 && invalidFiles.length > 0 && stateFiles.length > 0);
});

for (const { file, vectors } of noncanonicalFiles) {
  describe(file, () => {
    vectors.forEach((v, i) => {
      it(`#${i} ${str(v, 'name')}: decoded like the canonical form, re-encoded canonically`, () => {
        const decoded = decodeBody(Buffer.from(str(v, 'body_hex'), 'hex'));
        assert.deepEqual({ ...decoded }, jsonToValue(field(v, 'frame')));
        assert.equal(encodeBody(decoded).toString('hex'), str(v, 'canonical_body_hex'));
        assert.notEqual(str(v, 'canonical_body_hex'), str(v, 'body_hex'));
      });
    });
  });
}

for (const { file, vectors } of validFiles) {
  describe(file, () => {
    vectors.forEach((v, i) => {
      const expected = jsonToValue(field(v, 'frame'));
      const hex = str(v, 'hex');
      it(`#${i} ${str(field(v, 'frame'), 'type')}: decode and encode`, () => {
        const body = Buffer.from(str(v, 'body_hex'), 'hex');
        const decoded = decodeBody(body);
        assert.deepEqual({ ...decoded }, expected);
        assert.equal(encodeBody(decoded).toString('hex'), str(v, 'body_hex'));
        // What the record layer seals (a PUT_INLINE's data apart) is the same body.
        assert.equal(Buffer.concat(encodeBodyParts(decoded)).toString('hex'), str(v, 'body_hex'));
        assert.equal(encodeFrame(decoded).toString('hex'), hex);
        if (decoded.type !== 'DATA' && body.length <= MAX_PLAINTEXT_FRAME_LENGTH_BYTES) {
          assert.deepEqual(readStream(Buffer.from(hex, 'hex')).map((f) => ({ ...f })), [expected]);
        }
      });
    });
  });
}

for (const { file, vectors } of invalidFiles) {
  describe(file, () => {
    vectors.forEach((v, i) => {
      it(`#${i} ${str(v, 'name')} → ${str(v, 'error')}`, () => {
        const bytes = Buffer.from(str(v, 'hex'), 'hex');
        const code = str(v, 'phase') === 'stream' ? codeOf(() => readStream(bytes)) : codeOf(() => decodeBody(bytes));
        assert.equal(code, str(v, 'error'));
      });
    });
  });
}

function isFrameName(x: unknown): x is FrameName {
  return typeof x === 'string' && /^[A-Z_]+$/.test(x);
}

for (const { file, vectors } of stateFiles) {
  describe(file, () => {
    vectors.forEach((v, i) => {
      it(`#${i} ${str(v, 'name')}`, () => {
        const r = field(v, 'resumption');
        const resumption = r === undefined ? NO_RESUMPTION : { tickets: field(r, 'tickets') === true, resumed: field(r, 'resumed') === true };
        const m = str(v, 'machine') === 'server' ? serverMachine(resumption) : clientMachine(resumption);
        const steps = field(v, 'steps');
        assert.ok(Array.isArray(steps) && steps.length > 0);
        const expectedError = field(v, 'error');
        let code = 'no error';
        steps.forEach((step: unknown, k: number) => {
          assert.ok(Array.isArray(step));
          const [dir, frame] = step as unknown[];
          assert.ok(isFrameName(frame));
          const go = (): unknown => (dir === 'recv' ? m.receive(frame) : m.send(frame));
          if (k < steps.length - 1 || expectedError === undefined) go();
          else code = codeOf(go);
        });
        if (expectedError !== undefined) assert.equal(code, expectedError);
        else assert.equal(m.state, str(v, 'final'));
      });
    });
  });
}
