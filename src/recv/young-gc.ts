// Bounds the garbage buffers the daemon's data path leaves behind (DESIGN.md, "Where the CPU goes
// per GiB").
//
// Node reads every socket chunk into a new buffer, and node:crypto returns a new buffer from every
// decipher update (it takes no output buffer): receiving drops two garbage bytes for every byte.
// V8 frees such ArrayBuffers when it collects the young generation, and it does that on their
// account only once they add up to 32 MiB (twice its default maximum semi-space, whatever
// --max-semi-space-size says): 32 MiB of resident memory holding nothing. The daemon reports the
// bytes it drops and collects the young generation itself every `intervalBytes`; with a heap this
// small a scavenge takes a fraction of a millisecond (measured: no change in CPU s/GiB).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Collect = (options: { type: 'minor' }) => void;

let collect: Collect | null | undefined;

/** V8's gc() with {type: 'minor'}, exposed once for this process; null where that fails. */
function minorGc(): Collect | null {
  if (collect === undefined) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      collect = typeof gc === 'function' ? (options) => void Reflect.apply(gc, undefined, [options]) : null;
    } catch {
      collect = null;
    }
  }
  return collect;
}

export class YoungGenerationCollector {
  readonly #intervalBytes: number;
  #dropped = 0;

  constructor(intervalBytes: number) {
    if (!Number.isSafeInteger(intervalBytes) || intervalBytes <= 0) throw new RangeError('intervalBytes must be a positive integer');
    this.#intervalBytes = intervalBytes;
  }

  /** Counts `bytes` of buffers the caller no longer refers to; collects once they reach the interval. */
  dropped(bytes: number): void {
    this.#dropped += bytes;
    if (this.#dropped < this.#intervalBytes) return;
    this.#dropped = 0;
    minorGc()?.({ type: 'minor' });
  }
}
