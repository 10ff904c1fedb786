// What a fuzz target is, and the checks every target applies to what it gets back.
import { isDeepStrictEqual } from 'node:util';
import type fc from 'fast-check';
import {
  decodeBody,
  encodeBody,
  LENGTH_PREFIX_BYTES,
  MAX_CONTROL_PAYLOAD_BYTES,
  MAX_DATA_CHUNK_BYTES,
  type Frame,
} from '../../src/proto/index.js';
import { fail, typedCode } from './oracle.js';

/** A vector that pins the spec's answer for a failing input (spec/vectors, §12). */
export type Regression =
  | {
      readonly file: 'frames-invalid-fuzz.json';
      readonly vector: { readonly name: string; readonly phase: 'stream' | 'body'; readonly hex: string; readonly error: string };
    }
  | {
      readonly file: 'states-fuzz.json';
      readonly vector: {
        readonly name: string;
        readonly machine: 'server' | 'client';
        readonly steps: readonly (readonly [string, string])[];
        readonly error?: string;
        readonly final?: string;
      };
    };

export interface Target<I> {
  readonly name: string;
  /** One line: what is fed to what. */
  readonly about: string;
  /** Inputs built from spec/vectors; run unchanged first, then mutated. */
  seeds(): I[];
  /** Structure-aware inputs and byte-level mutations of the seeds. */
  arbitrary(seeds: readonly I[]): fc.Arbitrary<I>;
  /** One execution: returns when every oracle holds, throws (FuzzFailure or anything) otherwise. */
  run(input: I): void;
  /** A readable form of an input, for a counterexample. */
  show(input: I): string;
  /** The regression vector for a failing input, when one fits spec/vectors. */
  regression?(input: I): Regression | null;
}

/** A target of some input type, usable without knowing it. */
export interface AnyTarget {
  readonly name: string;
  readonly about: string;
  use<R>(f: <I>(t: Target<I>) => R): R;
}

export function erase<I>(t: Target<I>): AnyTarget {
  return { name: t.name, about: t.about, use: (f) => f(t) };
}

/**
 * Checks on every frame a decoder hands out: within the limits of §2, and a fixed point of the
 * codec (re-encoding it and decoding that gives the same frame, so nothing unencodable or out of
 * range slipped through).
 */
export function checkFrame(frame: Frame): void {
  if (frame.type === 'DATA') {
    if (frame.data.length < 1 || frame.data.length > MAX_DATA_CHUNK_BYTES) fail(`DATA with ${frame.data.length} data bytes`);
  }
  let body: Buffer | undefined;
  const code = typedCode(() => {
    body = encodeBody(frame);
  });
  if (code !== null || body === undefined) fail(`a decoded ${frame.type} frame does not encode (${code ?? 'no body'})`);
  if (frame.type !== 'DATA' && body.length - 1 > MAX_CONTROL_PAYLOAD_BYTES) fail(`a decoded ${frame.type} re-encodes to ${body.length - 1} payload bytes`);
  let again: Frame | undefined;
  const back = typedCode(() => {
    again = decodeBody(body ?? Buffer.alloc(0));
  });
  if (back !== null || !isDeepStrictEqual(again, frame)) fail(`${frame.type}: decode(encode(frame)) differs from frame (${back ?? 'other values'})`);
}

/** A whole frame or record handed out by a reader must respect its bounds. */
export function checkUnit(raw: Buffer, min: number, max: number): void {
  const len = raw.length - LENGTH_PREFIX_BYTES;
  if (len < min || len > max || raw.readUInt32BE(0) !== len) fail(`a unit of ${len} bytes came out of a reader bounded to ${min}..${max}`);
}

/**
 * The reader's memory bound: after a push, what is buffered is less than one maximal unit plus
 * the chunk; after the reader was drained, less than one maximal unit.
 */
export function checkPending(pending: number, max: number, chunkLength: number): void {
  if (pending >= LENGTH_PREFIX_BYTES + max + chunkLength) fail(`${pending} bytes buffered, above one ${max}-byte unit + a ${chunkLength}-byte chunk`);
}

/** A value computed on first use (seed files are read once per process). */
export function once<T>(make: () => T): () => T {
  let value: { v: T } | null = null;
  return () => (value ??= { v: make() }).v;
}
