// An append-only server's answer to a re-sent file (§9.5): when the stored file has OPEN's size,
// OPEN_OK says it is all there, the client sends END at once, and END is answered by reading the
// stored file back: DONE if it has END's SHA-256, EXISTS if not. Nothing is ever written.

import { createHash, timingSafeEqual } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { UploadError } from '../../proto/errors.js';
import { hashPrefix } from './file-hash.js';
import { toStxError } from './io-error.js';
import type { UploadLock } from './locks.js';
import type { FinishResult, OpenUpload } from './upload.js';

export class SameFileCheck implements OpenUpload {
  readonly offset: number;
  readonly received: number;
  readonly durable: number;
  readonly reread = 0;
  #released = false;

  private constructor(
    readonly name: string,
    readonly size: number,
    private readonly fh: FileHandle,
    private readonly lock: UploadLock,
    private readonly shown: string,
  ) {
    this.offset = size;
    this.received = size;
    this.durable = size;
  }

  /**
   * The check for `request` against the existing regular file `finalPath`, or null when the
   * sizes differ (then the OPEN is EXISTS). Holds `lock` until finish or release.
   */
  static async open(
    finalPath: string,
    request: { readonly name: string; readonly size: number },
    lock: UploadLock,
    shown: string,
  ): Promise<SameFileCheck | null> {
    let fh: FileHandle;
    try {
      fh = await open(finalPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw toStxError(err, 'opening', shown);
    }
    try {
      const st = await fh.stat();
      if (st.isFile() && st.size === request.size) return new SameFileCheck(request.name, request.size, fh, lock, shown);
    } catch (err) {
      await fh.close().catch(() => undefined);
      throw toStxError(err, 'checking', shown);
    }
    await fh.close().catch(() => undefined);
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

  onReleaseRequest(cb: () => void): void {
    this.lock.onReleaseRequest = cb;
  }

  async finish(expected: Buffer, onProgress?: (done: number, total: number) => void): Promise<FinishResult> {
    try {
      const hash = await hashPrefix(this.fh.fd, { hash: createHash('sha256'), length: 0 }, this.size, {
        onProgress: onProgress === undefined ? undefined : (done) => onProgress(done, this.size),
      }).catch((err: unknown) => {
        throw toStxError(err, 'reading', this.shown);
      });
      const digest = hash.digest();
      if (expected.length !== digest.length || !timingSafeEqual(digest, expected)) {
        throw new UploadError('EXISTS', `"${this.shown}" already exists with different content`);
      }
      return { name: this.name, size: this.size, sha256: digest, unchanged: true };
    } finally {
      await this.release();
    }
  }

  async release(): Promise<number> {
    if (!this.#released) {
      this.#released = true;
      await this.fh.close().catch(() => undefined);
      this.lock.release();
    }
    return this.size;
  }
}
