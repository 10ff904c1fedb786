// Sealed uploads (issue 17, README "Sealed backups"): a file, or stdin, encrypted on the client
// into the age format (age-encryption.org/v1) as it is sent. SealedSource is a DataSource whose
// bytes are the age file: any offset is produced from the plaintext chunks under it (AgeSealer),
// so a resumed upload sends exactly the bytes an earlier attempt would have, as long as the
// sealer is rebuilt from the same kept file key, header and nonce (send/seal.ts keeps them).
// sealedStream seals a stream of unknown length (stdin) in order.
import { stat, open, type FileHandle } from 'node:fs/promises';
import { pipeline, Transform, type Readable } from 'node:stream';
import { MAX_DATA_CHUNK_BYTES } from '../proto/limits.js';
import { alignedMemory } from '../runtime/aligned-memory.js';
import { AGE_CHUNK_BYTES, AgeSealer, createAgeStreamSealer } from './age.js';
import { LocalFileError, type DataSource, type SourceIdentity } from './source.js';

/** What identifies the plaintext file a sealer was made for. */
export interface PlainFile {
  readonly path: string;
  /** Size, mtime and mode of the plaintext; OPEN announces its mtime and mode (§9.1). */
  readonly identity: SourceIdentity;
  /**
   * Device, inode and ctime (ns): any write to the file, and any chmod, changes it even when size
   * and mtime are put back, so kept sealing state is never reused for other plaintext.
   */
  readonly change: string;
}

function slot(bytes: number): Buffer {
  const memory = alignedMemory(bytes);
  return memory === null ? Buffer.allocUnsafeSlow(bytes) : Buffer.from(memory, 0, bytes);
}

/** Reads up to `into.length` bytes at `at`, as many reads as it takes; fewer only at the end of the file. */
async function readFully(fh: FileHandle, into: Buffer, at: number): Promise<number> {
  let got = 0;
  while (got < into.length) {
    const { bytesRead } = await fh.read(into, got, into.length - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A regular file sent as the age file sealing it; see the file comment. */
export class SealedSource implements DataSource {
  readonly seekable = true;
  readonly identity: SourceIdentity;
  /**
   * Plaintext under one read: a DATA chunk's worth, plus the chunk a mid-chunk offset starts in.
   * Page-aligned where it can be: reads land at multiples of 64 KiB of the file, and copies out of
   * the page cache into a buffer 16 bytes into a page are 4–5× slower here (aligned-memory.ts).
   */
  readonly #plain = slot(MAX_DATA_CHUNK_BYTES + AGE_CHUNK_BYTES);
  /** What reads return, alternately (valid until the read after next, as DataSource promises). */
  readonly #out = [0, 1].map(() => Buffer.allocUnsafeSlow(AgeSealer.intoBytesFor(MAX_DATA_CHUNK_BYTES)));
  #next = 0;
  /** Reads share #plain: each waits for the one before. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    readonly plain: PlainFile,
    readonly sealer: AgeSealer,
    private readonly fh: FileHandle,
  ) {
    // The server stores the age file: its size; the plaintext's mtime and mode, which a restore gives back.
    this.identity = { size: sealer.size, mtime: plain.identity.mtime, mode: plain.identity.mode };
  }

  get label(): string {
    return this.plain.path;
  }

  /** Opens `path` (LOCAL_FILE if it cannot be read or is not a regular file) and seals it with `sealerFor`'s sealer. */
  static async open(path: string, sealerFor: (plain: PlainFile) => Promise<AgeSealer>): Promise<SealedSource> {
    const st = await stat(path, { bigint: true }).catch((err: unknown) => {
      throw new LocalFileError(`cannot read ${path}: ${messageOf(err)}`);
    });
    if (!st.isFile()) throw new LocalFileError(`${path} is not a regular file`);
    const fh = await open(path, 'r').catch((err: unknown) => {
      throw new LocalFileError(`cannot open ${path}: ${messageOf(err)}`);
    });
    try {
      // mtime as FileSource has it (and checkUnchanged compares): the float milliseconds, rounded.
      const ms = await fh.stat();
      const plain: PlainFile = {
        path,
        identity: { size: Number(st.size), mtime: Math.round(ms.mtimeMs), mode: Number(st.mode) & 0o7777 },
        change: `${st.dev}:${st.ino}:${st.ctimeNs}`,
      };
      const sealer = await sealerFor(plain);
      if (sealer.plaintextSize !== plain.identity.size) throw new RangeError('the sealer was made for another size');
      return new SealedSource(plain, sealer, fh);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  read(offset: number): Promise<Buffer> {
    const next = this.#queue.then(() => this.#read(offset));
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Up to one DATA chunk of the age file at `offset`, ending on the next multiple of a DATA chunk
   * (1 MiB), as a plain file's reads do: the server writes chunks at page-aligned offsets with
   * O_DIRECT and anything else through the page cache. Reads ending on sealed-chunk boundaries
   * instead (65,552 bytes) cost the daemon +1.3–2.4 CPU s/GiB of system time in the bench; ending
   * mid-chunk seals that chunk twice (once for each read), +1/16 of the sealing.
   */
  async #read(offset: number): Promise<Buffer> {
    const s = this.sealer;
    if (offset >= s.size) return Buffer.alloc(0);
    const end = Math.min(s.size, (Math.floor(offset / MAX_DATA_CHUNK_BYTES) + 1) * MAX_DATA_CHUNK_BYTES);
    const range = s.plaintextRangeFor(offset, end - offset);
    const plain = this.#plain.subarray(0, range.length);
    // A file that became shorter yields nothing here: the sender says so (LOCAL_FILE).
    if ((await readFully(this.fh, plain, range.offset)) < range.length) return Buffer.alloc(0);
    const into = this.#out[this.#next];
    this.#next ^= 1;
    return s.bytesAt(offset, end - offset, plain, into);
  }

  /** By path, as FileSource: another size or mtime of the plaintext means it was changed (§9.2). */
  async checkUnchanged(): Promise<void> {
    const now = await stat(this.plain.path);
    if (now.size !== this.plain.identity.size || Math.round(now.mtimeMs) !== this.plain.identity.mtime) {
      throw new LocalFileError(`${this.plain.path} changed while it was being uploaded; run stx-send again to send the new version`);
    }
  }

  async close(): Promise<void> {
    await this.#queue;
    await this.fh.close();
  }
}

/**
 * `input` sealed for `recipients` as it is read: the age file's bytes, in order, in pieces of up
 * to a DATA chunk. An error of `input` becomes an error of the result.
 */
export function sealedStream(input: Readable, recipients: readonly string[]): Readable {
  const { prefix, sealer } = createAgeStreamSealer(recipients);
  let started = false;
  const seal = new Transform({
    readableHighWaterMark: MAX_DATA_CHUNK_BYTES,
    transform(chunk: Buffer, _encoding, done) {
      if (!started) this.push(prefix);
      started = true;
      for (const sealed of sealer.push(chunk)) this.push(sealed);
      done();
    },
    flush(done) {
      if (!started) this.push(prefix);
      started = true;
      this.push(sealer.end());
      done();
    },
  });
  // pipeline forwards input's errors to `seal` (destroying it with them); the callback is required.
  return pipeline(input, seal, () => undefined);
}
