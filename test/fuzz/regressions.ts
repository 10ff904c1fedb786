// Writes a failure's regression vector into spec/vectors (§12), where the conformance tests load
// every frames-invalid*.json and states*.json file; a vector already there is not added twice.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { VECTORS_DIR } from '../support/paths.js';
import type { Regression } from './target.js';

const DESCRIPTIONS: Record<Regression['file'], string> = {
  'frames-invalid-fuzz.json':
    'Findings of the fuzzer (test/fuzz), same schema as frames-invalid.json: phase "stream" is a plaintext stream fed to a frame reader, then end of stream; phase "body" is a frame body as found inside a record. Each must fail with error (the reference model of spec §2 says so).',
  'states-fuzz.json':
    'Findings of the fuzzer (test/fuzz), same schema as states.json: steps are [recv|send, FRAME]; the sequence ends in final, or fails at its last step with error (spec §11 says so).',
};

/** The vector without its name, which is only a label. */
function key(vector: object): unknown {
  return Object.fromEntries(Object.entries(vector).filter(([k]) => k !== 'name'));
}

/** Adds the vector (named `name`, if given) to its file; returns false if an equal one is there already. */
export function appendRegression(r: Regression, name?: string, dir = VECTORS_DIR): boolean {
  const file = path.join(dir, r.file);
  let vectors: unknown[] = [];
  if (existsSync(file)) {
    const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
    const list = typeof parsed === 'object' && parsed !== null && 'vectors' in parsed ? parsed.vectors : undefined;
    if (!Array.isArray(list)) throw new Error(`${file}: no "vectors" array`);
    vectors = list;
  }
  if (vectors.some((v) => typeof v === 'object' && v !== null && isDeepStrictEqual(key(v), key(r.vector)))) return false;
  const vector = name === undefined ? r.vector : { ...r.vector, name };
  writeFileSync(file, JSON.stringify({ description: DESCRIPTIONS[r.file], vectors: [...vectors, vector] }, null, 1) + '\n');
  return true;
}
