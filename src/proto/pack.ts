// PUT_PACK (spec/PROTOCOL.md §9.11 step 8, revision 1.9): the columns of a pack's header, checked
// against each other once by the decoder, and read back as one entry per file. Pure.
import { ProtocolError } from './errors.js';
import type { Frame } from './frames.js';
import { MAX_MODE, MAX_NAME_BYTES, MAX_PACK_BYTES, MAX_PACK_FILES, MAX_PUT_BYTES, MAX_SAFE_UINT } from './limits.js';

export type PutPack = Extract<Frame, { type: 'PUT_PACK' }>;

/** One file of a pack: a PUT's fields, its SHA-256 (a view into the header), and where its bytes start in the pack's data. */
export interface PackFile {
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly sha256: Buffer;
  readonly start: number;
}

/** Joins the names of a pack (§4: NUL, which no valid name holds, §9.3). */
export const PACK_NAME_SEPARATOR = '\0';

function malformed(detail: string): ProtocolError {
  return new ProtocolError('MALFORMED_FRAME', `PUT_PACK: ${detail}`);
}

/** Files in the pack: n of §9.11 step 8 (the columns agree once checkPack passed). */
export function packCount(pack: PutPack): number {
  return pack.sizes.length / 4;
}

/** Sum of the sizes: the bytes of DATA that follow the header. */
export function packTotal(pack: PutPack): number {
  let total = 0;
  for (let i = 0; i < pack.sizes.length; i += 4) total += pack.sizes.readUInt32BE(i);
  return total;
}

/**
 * The decoder's checks of §9.11 step 8, each MALFORMED_FRAME: n = len(sizes)/4 within
 * 1..MAX_PACK_FILES, the other columns of n entries, every name 1..4096 bytes, every size at most
 * MAX_PUT_SIZE, the total 1..MAX_PACK_BYTES, every mtime an `int` and every mode at most 0o7777.
 */
export function checkPack(pack: PutPack): PutPack {
  if (pack.sizes.length % 4 !== 0) throw malformed(`sizes of ${pack.sizes.length} bytes is no multiple of 4`);
  const n = pack.sizes.length / 4;
  if (n < 1 || n > MAX_PACK_FILES) throw malformed(`${n} files (1..${MAX_PACK_FILES})`);
  if (pack.mtimes.length !== 8 * n || pack.modes.length !== 2 * n || pack.sha256s.length !== 32 * n) throw malformed(`columns of unequal length for ${n} files`);
  const names = pack.names.split(PACK_NAME_SEPARATOR);
  if (names.length !== n) throw malformed(`${names.length} names for ${n} files`);
  for (const name of names) {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes < 1 || bytes > MAX_NAME_BYTES) throw malformed(`a name of ${bytes} bytes`);
  }
  let total = 0;
  for (let i = 0; i < n; i++) {
    const size = pack.sizes.readUInt32BE(4 * i);
    if (size > MAX_PUT_BYTES) throw malformed(`size ${size} above ${MAX_PUT_BYTES}`);
    total += size;
    const mtime = pack.mtimes.readBigInt64BE(8 * i);
    if (mtime > BigInt(MAX_SAFE_UINT) || mtime < -BigInt(MAX_SAFE_UINT)) throw malformed('mtime out of range');
    if (pack.modes.readUInt16BE(2 * i) > MAX_MODE) throw malformed('mode out of range');
  }
  if (total < 1 || total > MAX_PACK_BYTES) throw malformed(`total of ${total} bytes (1..${MAX_PACK_BYTES})`);
  return pack;
}

/** The files of a checked pack, in order. */
export function packFiles(pack: PutPack): PackFile[] {
  const names = pack.names.split(PACK_NAME_SEPARATOR);
  const files: PackFile[] = [];
  let start = 0;
  for (let i = 0; i < names.length; i++) {
    const size = pack.sizes.readUInt32BE(4 * i);
    files.push({
      name: names[i] ?? '',
      size,
      mtime: Number(pack.mtimes.readBigInt64BE(8 * i)),
      mode: pack.modes.readUInt16BE(2 * i),
      sha256: pack.sha256s.subarray(32 * i, 32 * i + 32),
      start,
    });
    start += size;
  }
  return files;
}

/** The header of a pack of `files` (the sender's side of packFiles; `start` is not sent). */
export function packFrame(files: readonly Omit<PackFile, 'start'>[]): PutPack {
  const n = files.length;
  const sizes = Buffer.allocUnsafe(4 * n);
  const mtimes = Buffer.allocUnsafe(8 * n);
  const modes = Buffer.allocUnsafe(2 * n);
  const sha256s = Buffer.allocUnsafe(32 * n);
  files.forEach((f, i) => {
    sizes.writeUInt32BE(f.size, 4 * i);
    mtimes.writeBigInt64BE(BigInt(f.mtime), 8 * i);
    modes.writeUInt16BE(f.mode, 2 * i);
    f.sha256.copy(sha256s, 32 * i);
  });
  return { type: 'PUT_PACK', names: files.map((f) => f.name).join(PACK_NAME_SEPARATOR), sizes, mtimes, modes, sha256s };
}

/**
 * What a PUT_PACK's payload spends at most besides its files (map, keys, str and bin headers),
 * and per file besides its name's bytes (separator, 4 + 8 + 2 + 32 bytes of columns): a pack
 * whose estimate is within MAX_CONTROL_PAYLOAD_BYTES fits in one control frame.
 */
export const PACK_HEADER_BASE_BYTES = 64;
export const PACK_HEADER_FILE_BYTES = 47;
