// Reusable buffers that long DATA records are opened into and written from (FrameChannel.nextData,
// WriteQueue). A transfer of any size cycles through a few of them instead of leaving one garbage
// buffer per MiB for V8 to find, and each is laid out so that a full chunk's data starts on an
// alignment boundary of aligned memory: the write queue can write it with O_DIRECT (direct-io.ts).
// See DESIGN.md, "Where the CPU goes per GiB".
import type { BodyBuffers } from '../crypto/channel.js';
import { alignedMemory, releaseAlignedMemory } from '../runtime/aligned-memory.js';
import { ResourceError } from '../proto/errors.js';
import { DATA_HEADER_BYTES, MAX_DATA_CHUNK_BYTES } from '../proto/limits.js';
import { BODY_POOL_ARENA_BUFFERS, BODY_POOL_RESERVE_WINDOW_MS, DIRECT_IO_ALIGN_BYTES, MAX_FREE_BODY_BUFFERS } from './config.js';

/** A DATA body: type ‖ offset ‖ data (§2.2). */
const HEAD_BYTES = 1 + DATA_HEADER_BYTES;
const BODY_BYTES = HEAD_BYTES + MAX_DATA_CHUNK_BYTES;
/** One buffer's slot in an arena: the head sits just before the boundary the data starts on. */
const SLOT_BYTES = DIRECT_IO_ALIGN_BYTES + MAX_DATA_CHUNK_BYTES;

/** One aligned memory and its buffers that are free, the last given back last. */
interface Arena {
  readonly size: number;
  readonly free: Buffer[];
}
/** Who is charged for a leased buffer while it is held (a connection's MemoryBudget account). */
export interface LeaseAccount {
  /** `bytes` more (positive) or fewer (negative) are held for this account. */
  held(bytes: number): void;
}

export class BodyPool implements BodyBuffers {
  /** Arenas with at least one buffer out or free, in the order they were made. */
  readonly #arenas = new Set<Arena>();
  readonly #arenaOf = new WeakMap<ArrayBufferLike, Arena>();
  /** Free pooled buffers that are not in aligned memory (where WebAssembly gives none). */
  readonly #plain: Buffer[] = [];
  #freeInArenas = 0;
  readonly #maxFree: number;
  readonly #arenaBuffers: number;
  /** False once aligned memory could not be had: plain buffers from then on. */
  #alignedMemory = true;
  /** Buffers from take() not given back yet (weak: a leaked exact-size one is still collected). */
  readonly #out = new WeakSet<Buffer>();
  #outstanding = 0;
  /** Of those, the pooled ones (whole body buffers, not exact-size ones). */
  #pooledOut = 0;
  /**
   * The reserve: the most buffers out at once in this window and the one before it. While
   * buffers are out, the pool keeps free arenas up to that many in all rather than let them go and
   * map new ones the next moment: with a hundred uploads the buffers out swing by tens of MiB,
   * and each new arena cost page faults on all of its memory and each dropped one a full
   * collection (issue 15). Two windows after the peak the rest goes, and so it does once nothing
   * has been out for two windows (a timer, so that an idle daemon lets go too). Not at once when
   * the last buffer comes back: with a hundred uploads that happens many times per run (all of
   * them between records, in handshakes or OPEN), and each time the reserve's arenas went and were
   * mapped and faulted in again a moment later (issue 15: 26 arenas mapped for a peak of 16).
   */
  #peakNow = 0;
  #peakBefore = 0;
  #windowEnds: number;
  readonly #windowMs: number;
  readonly #now: () => number;
  /** Runs two windows after the last buffer came back, to let go of the reserve while idle. */
  #idleTimer: NodeJS.Timeout | null = null;

  constructor(maxFree = MAX_FREE_BODY_BUFFERS, arenaBuffers = BODY_POOL_ARENA_BUFFERS, windowMs = BODY_POOL_RESERVE_WINDOW_MS, now: () => number = performance.now.bind(performance)) {
    this.#maxFree = maxFree;
    this.#arenaBuffers = arenaBuffers;
    this.#windowMs = windowMs;
    this.#now = now;
    this.#windowEnds = now() + windowMs;
  }

  /** Buffers kept for reuse right now. */
  get freeBuffers(): number {
    return this.#freeInArenas + this.#plain.length;
  }

  /** Buffers taken and not given back yet: 0 once every connection let go of its bodies. */
  get outstanding(): number {
    return this.#outstanding;
  }

  /** Bytes in pooled buffers out now: what records being opened, written and hashed hold of the pool. */
  get pooledBytesOut(): number {
    return this.#pooledOut * BODY_BYTES;
  }

  /** Free pooled buffers the pool keeps now rather than let their arenas go (the reserve). */
  get #keepFree(): number {
    return Math.max(this.#maxFree, Math.max(this.#peakNow, this.#peakBefore) - this.#outstanding);
  }

  /** Aligned memory the pool keeps (its arenas, whether their buffers are out or free). */
  get arenaBytes(): number {
    return this.#arenas.size * this.#arenaBuffers * SLOT_BYTES;
  }

  /**
   * A buffer for a body of `bodyBytes`: a pooled one when the body fills at least half of it, else
   * one of the exact size, so that memory held stays within twice the bytes queued (small records
   * cannot pin whole pooled buffers each). A pooled one comes from the arena with the fewest free
   * buffers: with many connections, buffers out gather in as few arenas as they fill, and the
   * others empty and are let go (one buffer out pins its whole arena).
   */
  take(bodyBytes: number): Buffer {
    if (bodyBytes > BODY_BYTES) throw new RangeError(`body of ${bodyBytes} bytes over ${BODY_BYTES}`);
    if (bodyBytes * 2 < BODY_BYTES) return this.#lend(Buffer.allocUnsafeSlow(bodyBytes));
    let fullest: Arena | undefined;
    for (const arena of this.#arenas) {
      if (arena.free.length > 0 && (fullest === undefined || arena.free.length < fullest.free.length)) fullest = arena;
    }
    if (fullest === undefined && this.#plain.length === 0 && this.#alignedMemory) fullest = this.#addArena();
    const buffer = fullest?.free.pop();
    if (buffer !== undefined) {
      this.#freeInArenas--;
      return this.#lend(buffer);
    }
    return this.#lend(this.#plain.pop() ?? Buffer.allocUnsafeSlow(BODY_BYTES));
  }

  /** Counts the peak of buffers out; at the end of a window, lets go of what the reserve no longer covers. */
  #window(): void {
    const now = this.#now();
    if (now >= this.#windowEnds) {
      // A window with nothing out in between leaves no peak behind.
      this.#peakBefore = now - this.#windowEnds >= this.#windowMs ? 0 : this.#peakNow;
      this.#peakNow = this.#outstanding;
      this.#windowEnds = now + this.#windowMs;
      this.#trim();
    }
    if (this.#outstanding > this.#peakNow) this.#peakNow = this.#outstanding;
  }

  /** Lets go of whole free arenas beyond the reserve. */
  #trim(): void {
    for (const arena of this.#arenas) {
      if (arena.free.length === arena.size && this.freeBuffers - arena.size >= this.#keepFree) this.#drop(arena);
    }
  }

  #drop(arena: Arena): void {
    this.#arenas.delete(arena);
    this.#freeInArenas -= arena.size;
    // Nothing refers to the arena's memory any more; only a full collection unmaps it.
    releaseAlignedMemory(this.#arenaBuffers * SLOT_BYTES);
  }

  /**
   * The one holder of `buffer` (from take()) as an object: whoever else needs the buffer retains
   * the lease, and the last release gives it back. Throws if `buffer` is not out.
   */
  lease(buffer: Buffer, account?: LeaseAccount): BodyLease {
    if (!this.#out.has(buffer)) throw notOut();
    return new BodyLease(this, buffer, account);
  }

  /**
   * Takes back a buffer from take() once nothing refers to it any more. An arena whose buffers are
   * all back is let go while more than the reserve would still be free without it: `maxFree`
   * buffers, and up to the recent peak of buffers out in all. Once nothing has been out for two
   * windows, every arena beyond `maxFree` free buffers goes (#whenIdle).
   */
  give(buffer: Buffer): void {
    // Given back twice, the buffer would be handed out to two bodies at once: fail loudly instead.
    if (!this.#out.delete(buffer)) throw notOut();
    this.#outstanding--;
    if (buffer.length === BODY_BYTES) this.#pooledOut--;
    this.#window();
    if (this.#outstanding === 0) this.#whenIdle();
    if (buffer.length !== BODY_BYTES) return; // an exact-size one: left to GC
    const arena = this.#arenaOf.get(buffer.buffer);
    if (arena === undefined) {
      if (this.#plain.length < this.#maxFree) this.#plain.push(buffer);
      return;
    }
    arena.free.push(buffer);
    this.#freeInArenas++;
    if (arena.free.length === arena.size && this.freeBuffers - arena.size >= this.#keepFree) this.#drop(arena);
  }

  /** Nothing is out: unless buffers go out again, the reserve goes two windows from now. */
  #whenIdle(): void {
    if (this.#idleTimer !== null || this.#arenas.size === 0) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      this.#window();
      // Buffers went out and back meanwhile, so a peak is still recent: look again later.
      if (this.#outstanding === 0 && Math.max(this.#peakNow, this.#peakBefore) > 0) this.#whenIdle();
    }, 2 * this.#windowMs);
    this.#idleTimer.unref();
  }

  #lend(buffer: Buffer): Buffer {
    this.#out.add(buffer);
    this.#outstanding++;
    if (buffer.length === BODY_BYTES) this.#pooledOut++;
    this.#window();
    return buffer;
  }

  #addArena(): Arena | undefined {
    // Shared, so that the hashing thread reads the bodies in place (transfer/hasher.ts).
    const memory = alignedMemory(this.#arenaBuffers * SLOT_BYTES, true);
    if (memory === null) {
      this.#alignedMemory = false;
      return undefined;
    }
    const buffers = Array.from({ length: this.#arenaBuffers }, (_, i) =>
      Buffer.from(memory, i * SLOT_BYTES + DIRECT_IO_ALIGN_BYTES - HEAD_BYTES, BODY_BYTES),
    );
    // Popped from the end: the lowest addresses go out first.
    const arena: Arena = { size: buffers.length, free: buffers.reverse() };
    this.#arenaOf.set(memory, arena);
    this.#arenas.add(arena);
    this.#freeInArenas += arena.size;
    return arena;
  }
}

function notOut(): ResourceError {
  return new ResourceError('INTERNAL', 'a body buffer was given back that is not out (given back twice, or never taken)');
}

/**
 * A body buffer's holders, counted (STYLE.md: buffer ownership as an object). It starts with one
 * holder; retain() adds one, release() drops one, and the last release gives the buffer back to
 * the pool. A release with no holder left throws: a buffer must never be reused while read.
 */
export class BodyLease {
  #holders = 1;

  constructor(
    private readonly pool: BodyPool,
    readonly buffer: Buffer,
    private readonly account?: LeaseAccount,
  ) {
    account?.held(buffer.length);
  }

  /** Holders right now; 0 once the buffer went back. */
  get holders(): number {
    return this.#holders;
  }

  retain(): this {
    if (this.#holders === 0) throw new ResourceError('INTERNAL', 'a body lease was retained after its buffer went back');
    this.#holders++;
    return this;
  }

  release(): void {
    if (this.#holders === 0) throw new ResourceError('INTERNAL', 'a body lease was released more often than held');
    if (--this.#holders === 0) {
      this.pool.give(this.buffer);
      this.account?.held(-this.buffer.length);
    }
  }
}
