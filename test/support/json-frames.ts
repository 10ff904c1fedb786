// JSON form of frames in spec/vectors: byte strings are {"$bin": "<hex>"}.
import type { Frame } from '../../src/proto/index.js';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export function frameToJson(frame: Frame): Json {
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(frame)) {
    if (Buffer.isBuffer(v)) out[k] = { $bin: v.toString('hex') };
    else if (typeof v === 'string' || typeof v === 'number') out[k] = v;
  }
  return out;
}

/** Turns {"$bin": hex} back into Buffers; the result is checked by decode/encode round trips. */
export function jsonToValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(jsonToValue);
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    const bin = entries.find(([k]) => k === '$bin');
    if (bin !== undefined && entries.length === 1 && typeof bin[1] === 'string') return Buffer.from(bin[1], 'hex');
    return Object.fromEntries(entries.map(([k, v]) => [k, jsonToValue(v)]));
  }
  return value;
}
