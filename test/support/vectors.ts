// Loading spec/vectors files: every vector file is read, and each test names its file.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { VECTORS_DIR } from './paths.js';

export interface VectorFile {
  readonly file: string;
  readonly vectors: readonly unknown[];
}

/** Every spec/vectors/<prefix>*.json file's vector list. */
export function vectorFiles(prefix: string): VectorFile[] {
  return readdirSync(VECTORS_DIR)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.json'))
    .sort()
    .map((file) => {
      const parsed: unknown = JSON.parse(readFileSync(path.join(VECTORS_DIR, file), 'utf8'));
      const vectors = typeof parsed === 'object' && parsed !== null && 'vectors' in parsed ? parsed.vectors : undefined;
      if (!Array.isArray(vectors)) throw new Error(`${file}: no "vectors" array`);
      return { file, vectors };
    });
}

export function str(v: unknown, key: string): string {
  if (typeof v === 'object' && v !== null && key in v) {
    const x: unknown = Reflect.get(v, key);
    if (typeof x === 'string') return x;
  }
  throw new Error(`vector field ${key} is not a string`);
}

export function field(v: unknown, key: string): unknown {
  if (typeof v === 'object' && v !== null && key in v) return Reflect.get(v, key);
  return undefined;
}
