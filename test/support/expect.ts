// Small assertions and waits the tests share.
import assert from 'node:assert/strict';
import { StxError } from '../../src/proto/errors.js';

/** For assert.throws/rejects: the error is an StxError with this stable code. */
export const hasCode = (code: string) => (err: unknown): boolean => {
  assert.ok(err instanceof StxError, `expected StxError ${code}, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  return true;
};

/** Waits (bounded: at most 1000 looks, `timeoutMs` in all) until `probe` holds; returns whether it did. */
export async function eventually(probe: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  for (let i = 0; i < 1000 && Date.now() < until; i++) {
    if (probe()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return probe();
}
