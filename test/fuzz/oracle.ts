// The fuzz oracle's building blocks: what counts as a failure, and how an execution's outcome
// (frames and a typed error code, or nothing) is captured and compared with the reference model.
import { ERRORS, StxError, type ErrorCode, type Frame } from '../../src/proto/index.js';
import type { RefFrame, Verdict } from './reference-body.js';

/** A broken oracle property. Anything else thrown by a target is a failure too. */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
}

export function fail(message: string): never {
  throw new FuzzFailure(message);
}

/** Runs `fn`; returns the StxError code it threw, or null. Any other exception is a failure. */
export function typedCode(fn: () => void): ErrorCode | null {
  try {
    fn();
    return null;
  } catch (err) {
    if (err instanceof FuzzFailure) throw err;
    if (err instanceof StxError) {
      if (!Object.hasOwn(ERRORS, err.code)) fail(`StxError with unknown code ${err.code}`);
      return err.code;
    }
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    fail(`untyped exception escaped: ${what}`);
  }
}

/** Whether a decoded frame carries exactly the fields and values of the reference frame. */
export function sameFrame(frame: Frame, ref: RefFrame): boolean {
  return sameFields(new Map<string, unknown>(Object.entries(frame)), ref);
}

/** Same keys, equal values (Buffers by content, the rest by ===). */
export function sameFields(got: ReadonlyMap<string, unknown>, ref: RefFrame): boolean {
  if (got.size !== ref.size) return false;
  for (const [k, v] of ref) {
    const g = got.get(k);
    if (Buffer.isBuffer(v)) {
      if (!Buffer.isBuffer(g) || !g.equals(v)) return false;
    } else if (g !== v) {
      return false;
    }
  }
  return true;
}

export function showFrame(frame: Frame | RefFrame): string {
  const entries = frame instanceof Map ? [...frame] : Object.entries(frame);
  return entries
    .map(([k, v]) => {
      // JSON.stringify gives undefined for undefined and functions, whatever its type says.
      const text = (Buffer.isBuffer(v) ? `<${v.length}:${v.subarray(0, 8).toString('hex')}>` : JSON.stringify(v)) as string | undefined;
      return `${k}=${(text ?? String(v)).slice(0, 48)}`;
    })
    .join(' ');
}

/** What an execution produced: the frames accepted in order, then an error code or a clean end. */
export interface Outcome {
  readonly frames: Frame[];
  code: ErrorCode | null;
}

/** One step of the reference model: a frame body's verdict, or a stream-level error. */
export type RefItem = { readonly kind: 'body'; readonly verdict: Verdict } | { readonly kind: 'error'; readonly code: ErrorCode };

/**
 * Checks an outcome against the reference items (§2, §2.1, §8). Where the spec leaves a choice
 * (verdict 'either': accept with these values, or reject with this code), either is fine; the
 * reference's later items assume acceptance, so after a rejection there they no longer apply.
 */
export function compareOutcome(outcome: Outcome, items: readonly RefItem[]): void {
  const { frames, code } = outcome;
  for (let i = 0; ; i++) {
    const item = items[i];
    const frame = frames[i];
    if (item === undefined) {
      if (frame !== undefined) fail(`frame #${i} ${frame.type} accepted past the end of the reference`);
      if (code !== null) fail(`failed with ${code} where the reference ends cleanly after ${i} frames`);
      return;
    }
    if (item.kind === 'error') {
      if (frame !== undefined) fail(`frame #${i} ${frame.type} accepted where the reference fails with ${item.code}`);
      if (code !== item.code) fail(`after ${i} frames: ${code ?? 'no error'}, reference ${item.code}`);
      return;
    }
    const v = item.verdict;
    if (frame === undefined) {
      const expected = v.kind === 'accept' ? 'acceptance' : v.code;
      if (v.kind === 'accept' || code !== v.code) fail(`frame #${i}: ${code ?? 'nothing'}, reference ${expected}`);
      return;
    }
    if (v.kind === 'reject') fail(`frame #${i} accepted (${showFrame(frame)}), reference rejects it with ${v.code}`);
    if (!sameFrame(frame, v.frame)) fail(`frame #${i} decoded as ${showFrame(frame)}, reference ${showFrame(v.frame)}`);
  }
}
