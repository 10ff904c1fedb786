// Where an upload's bytes come from (spec/PROTOCOL.md §9.1, §9.2): a DataSource says what OPEN
// announces and hands out the bytes at an offset, a chunk at a time. FileSource reads a regular
// file; a sealed file or stdin will be other implementations of the same small interface.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { LocalError } from '../proto/errors.js';
import { MAX_DATA_CHUNK_BYTES } from '../proto/limits.js';
import { alignedMemory, PAGE_BYTES, releaseAlignedMemory } from '../runtime/aligned-memory.js';
import { SPARE_READ_SLOTS_KEEP_MS } from './config.js';
import type { ReadAt } from './file-hash.js';

/** A problem with what is being sent itself: LOCAL_FILE (§10, exit 1). */
export class LocalFileError extends LocalError {
  constructor(message: string, options?: ErrorOptions) {
    super('LOCAL_FILE', message, options);
  }
}

/** What OPEN announces (§9.1) and what identifies the upload for a resume (§9.2). */
export interface SourceIdentity {
  readonly size: number;
  /** Modification time in whole milliseconds. */
  readonly mtime: number;
  /** Permission bits (at most 0o7777). */
  readonly mode: number;
}

export interface DataSource {
  /** How messages name it: a path, or "stdin". */
  readonly label: string;
  /** Known before the first byte is sent: OPEN carries it. */
  readonly identity: SourceIdentity;
  /**
   * Whether read() takes any offset. A file does, so a resume may start anywhere (§9.2) and the
   * running hash may re-read from a snapshot. A source that is not seekable (stdin) only goes on
   * from where its last read ended: it cannot re-send bytes below that, so a reconnect whose
   * OPEN_OK offset lies below it cannot resume from this source alone.
   */
  readonly seekable: boolean;
  /**
   * Up to one DATA chunk (MAX_DATA_CHUNK_BYTES) of the bytes at `offset`: fewer only where the
   * source ends (or became shorter), none at or past its end. The view is the source's own
   * memory, placed where copying into it is cheapest, and stays valid until the read after next,
   * so that one chunk is sealed and sent while the next is read.
   */
  read(offset: number): Promise<Buffer>;
  /** Throws LOCAL_FILE if the source is no longer what `identity` describes (it was changed). */
  checkUnchanged(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The two alternating read buffers of a ChunkReader. Files sent one after another (a tree) share
 * one pair instead of mapping 2 MiB of fresh memory for each file.
 */
export class ReadSlots {
  readonly buffers: readonly Buffer[];
  readonly bytes: number;
  constructor() {
    const slot = MAX_DATA_CHUNK_BYTES + PAGE_BYTES;
    const memory = alignedMemory(2 * slot);
    this.buffers = [0, 1].map((i) => (memory === null ? Buffer.allocUnsafeSlow(slot) : Buffer.from(memory, i * slot, slot)));
    this.bytes = memory === null ? 2 * slot : memory.byteLength;
  }
}

/**
 * Read slots that readers of this process gave back, for the next ones. A new pair is page
 * faults on up to 2 MiB of fresh memory (512 faults, several ms of CPU on a paravirtual VM),
 * which a process running a hundred uploads at once, or a daemon serving a hundred downloads,
 * paid for each of them (issue 15: 100 uploads of 8 MiB took 68,000–89,000 faults, one of 800 MiB
 * 4,400). The spares are never more than were in use at once, and go once the process stops
 * reading for SPARE_READ_SLOTS_KEEP_MS.
 */
class SpareReadSlots {
  readonly #free: ReadSlots[] = [];
  #timer: NodeJS.Timeout | undefined;

  take(): ReadSlots {
    this.#touch();
    return this.#free.pop() ?? new ReadSlots();
  }

  give(slots: ReadSlots): void {
    this.#free.push(slots);
    this.#touch();
  }

  get spare(): number {
    return this.#free.length;
  }

  #touch(): void {
    if (this.#timer !== undefined) {
      this.#timer.refresh();
      return;
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      for (const slots of this.#free.splice(0)) releaseAlignedMemory(slots.bytes);
    }, SPARE_READ_SLOTS_KEEP_MS);
    this.#timer.unref();
  }
}

export const spareReadSlots = new SpareReadSlots();

/**
 * Reads a file a chunk at a time into two alternating buffers (one is sealed and sent while the
 * next is read). They come from page-aligned memory where WebAssembly provides it, and each read
 * lands at the same offset within a page as it has in the file: copies out of the page cache into
 * malloc'd buffers cost 4–5× more here (runtime/aligned-memory.ts). Without slots of its caller's,
 * it takes spare ones (spareReadSlots) and gives them back at release().
 */
export class ChunkReader {
  #slots: readonly Buffer[] | null;
  #next = 0;
  /** Slots this reader took from spareReadSlots, to give back once no read lands in them. */
  readonly #owned: ReadSlots | undefined;
  /** Settles once every read so far has landed (or failed). */
  #reading: Promise<unknown> = Promise.resolve();

  readonly #readAt: ReadAt;

  /** Reads an open file, or anything with positional reads (a published file on the daemon). */
  constructor(
    from: FileHandle | ReadAt,
    private readonly size: number,
    slots?: ReadSlots,
  ) {
    this.#readAt = typeof from === 'function' ? from : async (into, at) => (await from.read(into, 0, into.length, at)).bytesRead;
    if (slots === undefined) this.#owned = spareReadSlots.take();
    this.#slots = (slots ?? this.#owned)?.buffers ?? null;
  }

  /**
   * The bytes at `at`: up to one chunk, fewer where the file ends (empty past its end, or where it
   * became shorter). Valid until the next-but-one read().
   */
  async read(at: number): Promise<Buffer> {
    if (this.#slots === null) throw new Error('read after the reader was released');
    const slot = this.#slots[this.#next] ?? Buffer.alloc(0);
    this.#next ^= 1;
    if (at >= this.size) return slot.subarray(0, 0);
    const into = slot.subarray(at % PAGE_BYTES, (at % PAGE_BYTES) + Math.min(MAX_DATA_CHUNK_BYTES, this.size - at));
    const reading = this.#readAt(into, at);
    this.#reading = Promise.allSettled([this.#reading, reading]);
    return into.subarray(0, await reading);
  }

  /** No more reads: once the last one landed, slots it took go back to spareReadSlots. */
  async release(): Promise<void> {
    if (this.#slots === null) return;
    this.#slots = null;
    await this.#reading;
    if (this.#owned !== undefined) spareReadSlots.give(this.#owned);
  }
}

/** A regular file, opened once for all attempts of its upload. */
export class FileSource implements DataSource {
  readonly seekable = true;
  readonly #reader: ChunkReader;

  private constructor(
    readonly label: string,
    readonly identity: SourceIdentity,
    private readonly fh: FileHandle,
    slots: ReadSlots | undefined,
  ) {
    this.#reader = new ChunkReader(fh, identity.size, slots);
  }

  /**
   * Opens `path`; LOCAL_FILE if it cannot be read or is not a regular file. `slots`, when given,
   * are read into (they must not serve another open source at the same time).
   */
  static async open(path: string, slots?: ReadSlots): Promise<FileSource> {
    const st = await stat(path).catch((err: unknown) => {
      throw new LocalFileError(`cannot read ${path}: ${messageOf(err)}`);
    });
    if (!st.isFile()) throw new LocalFileError(`${path} is not a regular file`);
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw new LocalFileError(`cannot open ${path}: ${messageOf(err)}`);
    });
    return new FileSource(path, { size: st.size, mtime: Math.round(st.mtimeMs), mode: st.mode & 0o7777 }, fh, slots);
  }

  read(offset: number): Promise<Buffer> {
    return this.#reader.read(offset);
  }

  /** By path, as the user sees it: another size or mtime means the file was changed (§9.2). */
  async checkUnchanged(): Promise<void> {
    const now = await stat(this.label);
    if (now.size !== this.identity.size || Math.round(now.mtimeMs) !== this.identity.mtime) {
      throw new LocalFileError(`${this.label} changed while it was being uploaded; run stx-send again to send the new version`);
    }
  }

  async close(): Promise<void> {
    await this.#reader.release();
    await this.fh.close();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
