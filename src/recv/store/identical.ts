// An OPEN that carries the file's SHA-256 (stx-send --checksum, spec/PROTOCOL.md §9.1 "Identical
// files") for a name the server already holds with those very bytes, mtime and mode: it is
// answered DONE at once, with no data and nothing written. The server knows the stored file's
// SHA-256 only from the record made when it was published (storage/backend.ts
// PublishOptions.sha256), for that version of the file: it never reads the file to find out, so
// an unknown hash just means the upload goes on as usual.
import { timingSafeEqual } from 'node:crypto';
import { ResourceError, UploadError } from '../../proto/errors.js';
import type { StorageBackend } from '../../storage/backend.js';
import type { FinishResult, OpenUpload } from './upload.js';

export interface IdenticalRequest {
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly sha256: Buffer;
}

/**
 * The answer for `request` when the file published as `shown` is identical to it (same size,
 * recorded SHA-256, mtime, and the permission bits a publish would give it: `mode` less `umask`),
 * else null.
 */
export async function identicalFile(backend: StorageBackend, shown: string, request: IdenticalRequest, umask: number): Promise<IdenticalFile | null> {
  const file = await backend.openFile(shown);
  if (file === null) return null;
  await file.close();
  const known = file.sha256;
  const same =
    known !== undefined &&
    known.length === request.sha256.length &&
    file.size === request.size &&
    file.mtime === request.mtime &&
    file.mode === (request.mode & 0o777 & ~umask) &&
    timingSafeEqual(known, request.sha256);
  return same ? new IdenticalFile(request.name, file.size, known) : null;
}

/** An upload that is already complete: the connection answers DONE with `done` (§9.1). */
export class IdenticalFile implements OpenUpload {
  readonly id = '';
  readonly stream = false;
  readonly reread = 0;
  readonly offset: number;
  readonly received: number;
  readonly durable: number;
  readonly done: FinishResult;

  constructor(
    readonly name: string,
    readonly size: number,
    sha256: Buffer,
  ) {
    this.offset = size;
    this.received = size;
    this.durable = size;
    this.done = { name, size, sha256: Buffer.from(sha256), unchanged: true };
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

  finish(): Promise<FinishResult> {
    return Promise.reject(new ResourceError('INTERNAL', 'an identical file was answered DONE at OPEN'));
  }

  release(): Promise<number> {
    return Promise.resolve(this.size);
  }
}
