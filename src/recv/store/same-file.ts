// An append-only server's answer to a re-sent file (§9.5): when the stored file has OPEN's size,
// OPEN_OK says it is all there, the client sends END at once, and END is answered by reading the
// stored file back: DONE if it has END's SHA-256, EXISTS if not. Nothing is ever written.

import { timingSafeEqual } from 'node:crypto';
import { UploadError } from '../../proto/errors.js';
import type { PublishedFile, StorageBackend } from '../../storage/backend.js';
import type { Hasher } from '../../transfer/hasher.js';
import type { ReadBackGate } from './read-back.js';
import type { UploadLock } from './locks.js';
import type { FinishResult, OpenUpload } from './upload.js';

export class SameFileCheck implements OpenUpload {
  readonly offset: number;
  readonly received: number;
  readonly durable: number;
  readonly reread = 0;
  readonly stream = false;
  /** Stops a read-back in progress when the connection goes away (release). */
  readonly #abort = new AbortController();
  /** The read-back, while END is being answered: release waits for it before closing the file. */
  #finishing: Promise<unknown> | null = null;
  #closed = false;

  private constructor(
    readonly id: string,
    readonly name: string,
    readonly size: number,
    private readonly file: PublishedFile,
    private readonly lock: UploadLock,
    private readonly hasher: Hasher,
    private readonly shown: string,
    private readonly readBack: { readonly gate: ReadBackGate; readonly account: string },
  ) {
    this.offset = size;
    this.received = size;
    this.durable = size;
  }

  /**
   * The check for upload `id`'s `request` against the file published as `shown` in `backend`, or null when
   * there is none or the sizes differ (then the OPEN is EXISTS). Holds `lock` until finish or
   * release.
   */
  static async open(
    backend: StorageBackend,
    id: string,
    request: { readonly name: string; readonly size: number },
    lock: UploadLock,
    hasher: Hasher,
    shown: string,
    readBack: { readonly gate: ReadBackGate; readonly account: string },
  ): Promise<SameFileCheck | null> {
    const file = await backend.openFile(shown);
    if (file === null) return null;
    if (file.size === request.size) return new SameFileCheck(id, request.name, request.size, file, lock, hasher, shown, readBack);
    await file.close();
    return null;
  }

  write(offset: number, data: Buffer): boolean {
    throw new UploadError('BAD_OFFSET', `DATA ends at ${offset + data.length}, beyond the size ${this.size}`);
  }

  drained(): Promise<void> {
    return Promise.resolve();
  }

  checkpoint(): Promise<number> {
    return Promise.resolve(this.size);
  }

  /**
   * END: reads the stored file back on the hashing thread, like a partial's re-read (§9.7), and
   * compares its SHA-256 with END's.
   */
  finish(expected: Buffer, onProgress?: (done: number, total: number) => void, endSize?: number): Promise<FinishResult> {
    if (endSize !== undefined && endSize !== this.size) {
      return Promise.reject(new UploadError('BAD_OFFSET', `END says size ${endSize}, OPEN said ${this.size}`));
    }
    const run = (async (): Promise<FinishResult> => {
      try {
        // Charged to the client that asks, one at a time (§9.7): a re-send costs a whole read.
        let done = 0;
        const { hash } = await this.readBack.gate.run(this.readBack.account, this.#abort.signal, () => done, () =>
          this.hasher.open(this.file, this.size, this.shown, {
            key: null,
            onProgress: (bytes) => {
              done = bytes;
              onProgress?.(bytes, this.size);
            },
            signal: this.#abort.signal,
          }),
        );
        const digest = await hash.digest();
        if (expected.length !== digest.length || !timingSafeEqual(digest, expected)) {
          throw new UploadError('EXISTS', `"${this.shown}" already exists with different content`);
        }
        return { name: this.name, size: this.size, sha256: digest, unchanged: true };
      } finally {
        await this.#close();
      }
    })();
    this.#finishing = run;
    return run;
  }

  /** Stops a read-back in progress and waits for it (its reads use the file), then lets go. */
  async release(): Promise<number> {
    this.#abort.abort();
    await this.#finishing?.catch(() => undefined);
    await this.#close();
    return this.size;
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.file.close().catch(() => undefined);
    this.lock.release();
  }
}
