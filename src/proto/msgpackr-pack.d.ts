// Types for msgpackr's encoder-only entry point (codec.ts). Its own pack.d.ts re-exports from '.',
// which NodeNext resolution does not follow, so without this its exports were silently `any`.
declare module 'msgpackr/pack' {
  export { Packr } from 'msgpackr';
}
