// Positional file I/O that finishes the job: fs may write or read fewer bytes than asked.
import type { FileHandle } from 'node:fs/promises';

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
