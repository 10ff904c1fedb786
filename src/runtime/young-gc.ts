// Bounds the garbage buffers the data path leaves behind, on both sides (DESIGN.md, "Where the
// CPU goes per GiB").
//
// node:crypto returns a new buffer from every cipher update (it takes no output buffer), and Node
// reads every socket chunk into a new buffer: the sender drops one garbage byte per byte sent, the
// receiver two per byte received. V8 frees such ArrayBuffers when it collects the young
// generation, and it does that on their account only once they add up to 32 MiB (twice its
// default maximum semi-space, whatever --max-semi-space-size says): 32 MiB of resident memory
// holding nothing. Each side reports the bytes it drops and collects the young generation itself
// every `intervalBytes`; with a heap this small a scavenge takes a fraction of a millisecond.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { tuned } from './tuning.js';

/** gc(): a full collection; gc({type: 'minor'}): the young generation only. */
type Collect = (options?: { type: 'minor' }) => void;

let collect: Collect | null | undefined;

/**
 * V8's gc(), exposed once for this process; null where that fails. The flag that exposes it is
 * set only while a context is made to take it from, and unset again: V8 takes a code cache only
 * if its flags are those the cache was made with (send/code-cache.ts), and a cache written at the end
 * of a run with --expose-gc set was refused by every next start (NODE_DEBUG=stx-code-cache:
 * rejected, then written again).
 */
export function exposedGc(): Collect | null {
  if (collect === undefined) {
    try {
      // Node run with --expose-gc: the flag stays as it is.
      let gc: unknown = Reflect.get(globalThis, 'gc');
      if (typeof gc !== 'function') {
        setFlagsFromString('--expose-gc');
        try {
          gc = runInNewContext('gc');
        } finally {
          setFlagsFromString('--no-expose-gc');
        }
      }
      const found = gc;
      collect = typeof found === 'function' ? (options) => void Reflect.apply(found, undefined, options === undefined ? [] : [options]) : null;
    } catch {
      collect = null;
    }
  }
  return collect;
}

/**
 * glibc's malloc gives the top of its heap back to the kernel as soon as more than its trim
 * threshold (128 KiB by default) is free there, and a collection frees a few MiB at once: those
 * pages are then faulted in and zeroed again by the next allocations (measured on the sender:
 * +0.8 CPU s/GiB, mostly page faults). glibc raises the threshold to twice the largest mmap'd
 * chunk it has freed, up to 32 MiB; one dropped 16 MiB buffer (never touched, so never resident)
 * raises it to 32 MiB at the next collection. The price is up to `upToBytes` of freed memory kept
 * resident; other allocators ignore it.
 */
export function keepFreedMemory(upToBytes = 32 * 1024 * 1024): void {
  if (tuned('keep-freed-memory')) Buffer.allocUnsafeSlow(Math.ceil(upToBytes / 2));
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
    if (tuned('young-gc')) exposedGc()?.({ type: 'minor' });
  }
}
