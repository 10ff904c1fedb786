// Positional file I/O that finishes the job: fs may write or read fewer bytes than asked.
import { readdir, truncate, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';

/**
 * Frees the disk space of every regular file under `dir` (truncated to 0) but keeps the files,
 * for a bench that must not delete between measurements: on ext4 without a journal, creating
 * files within minutes of deleting many costs several times as much (the inode allocator skips
 * and re-reads each recently deleted inode), so a measurement right after another's clean-up
 * would measure that instead. Remove the directory once every measurement is done.
 */
export async function emptyFilesUnder(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await emptyFilesUnder(path);
    else if (entry.isFile()) await truncate(path, 0);
  }
}

/** Write all of `data` at `position`. */
export async function writeFully(fh: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress at offset ${position + done}`);
    done += bytesWritten;
  }
}

/** Read exactly `length` bytes at `position` into a new buffer; fails at end of file. */
export async function readFully(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buffer, done, length - done, position + done);
    if (bytesRead <= 0) throw new Error(`unexpected end of file at offset ${position + done}`);
    done += bytesRead;
  }
  return buffer;
}

/**
 * What a socket brings, written into `fh` at consecutive positions from `offset` (up to `end`):
 * chunks are joined into blocks of `blockBytes`, written while more arrive, and the socket is
 * paused while `highWater` bytes wait for the disk (resumed at `lowWater`). The raw baselines'
 * receiving side.
 */
export class SocketToFile {
  offset: number;
  /** Bytes written so far. */
  written = 0;
  #queued = 0;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #failure: Error | undefined;
  readonly #inflight = new Set<Promise<void>>();

  constructor(
    private readonly socket: Socket,
    private readonly fh: FileHandle,
    offset: number,
    private readonly limits: { readonly blockBytes: number; readonly highWater: number; readonly lowWater: number; readonly end?: number },
  ) {
    this.offset = offset;
  }

  push(chunk: Buffer): void {
    this.#queued += chunk.length;
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes >= this.limits.blockBytes) this.#flush();
    if (this.#queued >= this.limits.highWater) this.socket.pause();
  }

  /** Writes what is left, waits for every write; throws the first failure. */
  async finish(): Promise<void> {
    this.#flush();
    await Promise.all(this.#inflight);
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The first write failure (or overrun), if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.socket.destroy();
  }

  #flush(): void {
    if (this.#pendingBytes === 0) return;
    const data = Buffer.concat(this.#pending, this.#pendingBytes);
    const at = this.offset;
    this.offset += data.length;
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.limits.end !== undefined && this.offset > this.limits.end) {
      this.#fail(new Error('more bytes than the header announced'));
      return;
    }
    const write = writeFully(this.fh, data, at).then(
      () => {
        this.#queued -= data.length;
        this.written += data.length;
        if (this.socket.isPaused() && this.#queued <= this.limits.lowWater) this.socket.resume();
      },
      (err: unknown) => this.#fail(err instanceof Error ? err : new Error(String(err))),
    );
    this.#inflight.add(write);
    void write.finally(() => this.#inflight.delete(write));
  }
}
