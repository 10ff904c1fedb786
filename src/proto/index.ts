export * from './errors.js';
export * from './frames.js';
export * from './limits.js';
export * from './codec.js';
export * from './reader.js';
export * from './preamble.js';
export * from './states.js';
export { SCHEMAS } from './schema.js';
export * from './pack.js';
