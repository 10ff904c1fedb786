// Typed access to JSON test vectors for the crypto tests. Paths come from test/support/paths.ts
// (the repository root, found from the compiled file), never from the compiled file's location.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}

export function readJson(...parts: string[]): unknown {
  return JSON.parse(readFileSync(repoPath(...parts), 'utf8'));
}

/** Typed reads of JSON vectors: each throws naming the missing or mistyped key. */
export function get(o: unknown, key: string): unknown {
  if (typeof o !== 'object' || o === null || !Object.hasOwn(o, key)) throw new Error(`vector lacks "${key}"`);
  const v: unknown = Reflect.get(o, key);
  return v;
}
export function str(o: unknown, key: string): string {
  const v = get(o, key);
  if (typeof v !== 'string') throw new Error(`vector "${key}" is not a string`);
  return v;
}
export function num(o: unknown, key: string): number {
  const v = get(o, key);
  if (typeof v !== 'number') throw new Error(`vector "${key}" is not a number`);
  return v;
}
export function hex(o: unknown, key: string): Buffer {
  const s = str(o, key);
  if (!/^([0-9a-f]{2})*$/.test(s)) throw new Error(`vector "${key}" is not lowercase hex`);
  return Buffer.from(s, 'hex');
}
export function has(o: unknown, key: string): boolean {
  return typeof o === 'object' && o !== null && Object.hasOwn(o, key);
}
export function hexOrNull(o: unknown, key: string): Buffer | null {
  return get(o, key) === null ? null : hex(o, key);
}
export function strOrNull(o: unknown, key: string): string | null {
  return get(o, key) === null ? null : str(o, key);
}
export function list(o: unknown, key: string): readonly unknown[] {
  const v = get(o, key);
  if (!Array.isArray(v)) throw new Error(`vector "${key}" is not an array`);
  const out: readonly unknown[] = v;
  return out;
}
