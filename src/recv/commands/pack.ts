// PUT_PACK (spec/PROTOCOL.md §9.11 step 8, revision 1.9): many small files in two records, a
// header naming them and one DATA of their bytes concatenated. Once all the bytes are in, the
// connection is Ready again and each file goes on as a PUT of its own (runPut): checked, published
// and answered in the one order of the PUTs. The files' bytes are views into the DATA record's
// body (no copy), which is held until the last of their jobs is over.
import { ResourceError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { packFiles, packTotal, type PackFile } from '../../proto/pack.js';
import type { BodyLease } from '../../transfer/body-pool.js';
import type { CommandLink } from './command.js';
import { holdData, releaseData, runPut, runPuts, type HeldData } from './put.js';
import type { PutItem } from '../store.js';
import type { UploadState } from './upload.js';

/** A pack whose DATA is arriving: what came so far, each chunk held until every file's job is over. */
export interface IncomingPack extends HeldData {
  readonly files: readonly PackFile[];
  readonly total: number;
}

type Link = CommandLink<UploadState>;

/** PUT_PACK received in Ready (§9.11 step 8): its DATA may be as long as any (§2) until the last byte. */
export function startPack(frame: Extract<Frame, { type: 'PUT_PACK' }>, link: Link): void {
  // A client that packs reads PUTS_DONE (it is of revision 1.9, §9.11 step 7).
  link.puts.allowBatches();
  link.channel.longRecords = true;
  link.enter({ kind: 'Packing', pack: { files: packFiles(frame), total: packTotal(frame), chunks: [], leases: [], received: 0, copied: 0 } });
}

/** DATA of a pack: at the next offset and within the total (else BAD_OFFSET); the last byte starts the files' jobs. */
export function packData(pack: IncomingPack, offset: number, data: Buffer, lease: BodyLease | undefined, link: Link): void {
  holdData(pack, pack.total, 'PUT_PACK', offset, data, lease, link);
  if (pack.received < pack.total) return;
  link.channel.longRecords = false;
  link.enter({ kind: 'Ready' });
  const slices = new Slicer(pack.chunks);
  // The files go as one job up to the first whose name is that of an earlier one still waiting
  // for its answer (in this pack or before it): that one and those after it go one by one, each
  // waiting as §9.11 step 4 says (runPut).
  const items: PutItem[] = [];
  const names = new Set<string>();
  let i = 0;
  for (; i < pack.files.length; i++) {
    const file = pack.files[i];
    if (file === undefined || names.has(file.name) || !link.puts.isFree(file.name)) break;
    names.add(file.name);
    items.push({ name: file.name, size: file.size, mtime: file.mtime, mode: file.mode, chunks: slices.next(file.size), sha256: file.sha256 });
  }
  let running = (items.length > 0 ? 1 : 0) + pack.files.length - i;
  const release = (): void => {
    if (--running === 0) dropPack(pack, link);
  };
  if (items.length > 0) runPuts(link, items, release);
  for (; i < pack.files.length; i++) {
    const file = pack.files[i];
    if (file !== undefined) runPut(link, file, slices.next(file.size), file.sha256, release);
  }
}

/**
 * Cuts the concatenation of `chunks` into consecutive slices (views, no copy), in one pass over
 * the chunks: a pack sent as many small DATA frames costs work linear in frames plus files.
 */
class Slicer {
  #chunk = 0;
  #at = 0;
  constructor(private readonly chunks: readonly Buffer[]) {}

  /** The views holding the next `size` bytes. */
  next(size: number): Buffer[] {
    const out: Buffer[] = [];
    let left = size;
    while (left > 0) {
      const chunk = this.chunks[this.#chunk];
      // packData starts the files only once `total`, the sum of their sizes, is in.
      if (chunk === undefined) throw new ResourceError('INTERNAL', `a pack's data ended ${left} bytes early`);
      const take = Math.min(left, chunk.length - this.#at);
      out.push(chunk.subarray(this.#at, this.#at + take));
      left -= take;
      this.#at += take;
      if (this.#at === chunk.length) {
        this.#chunk++;
        this.#at = 0;
      }
    }
    return out;
  }
}

/** Gives back what a pack held: its chunks' leases, and the count of copied bytes. */
export function dropPack(pack: IncomingPack, link: Link): void {
  releaseData(pack, link);
}
