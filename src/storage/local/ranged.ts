// A ranged upload's partial on local disk (§9.13): the same <id>.part and <id>.json as an upload
// sent in order (partial.ts), written at any offset by the connections that carry its ranges,
// made durable by fdatasync, and the record listing every range's durable end.

import { fdatasync, write } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { durablePrefix, RECORD_VERSION, type PartialMeta, type PartialRecord, type PositionalReader, type RangedPartial, type RangeRecord } from '../backend.js';
import { readAtFd } from '../../transfer/file-hash.js';
import { toStxError } from '../../transfer/io-error.js';
import { writeRecord } from './record.js';

const datasync = promisify(fdatasync);

export interface LocalRangedParts {
  readonly fh: FileHandle;
  readonly meta: PartialMeta;
  readonly resume: PartialRecord | undefined;
  readonly partialsDir: string;
  readonly recordFile: string;
  /** `.stx/partials/<id>`, for messages. */
  readonly shown: string;
  readonly onClose: () => void;
}

/**
 * What the resumed record's ranges still hold in a file of `fileBytes` (none if anything is
 * missing). A range with nothing durable yet (durable = start) holds no byte, so its start may lie
 * past the end of the (sparse) file: a range claimed just before every connection was cut is no
 * sign of a truncated file, and counting it as one threw away every other range's bytes.
 */
export function keptRanges(resume: PartialRecord | undefined, fileBytes: number): RangeRecord[] {
  const ranges = resume?.ranges;
  if (ranges === undefined || ranges.some((r) => r.durable > r.start && r.durable > fileBytes)) return [];
  return [...ranges];
}

export class LocalRanged implements RangedPartial {
  readonly shown: string;
  readonly ranges: readonly RangeRecord[];
  readonly prefix: PositionalReader;
  readonly #parts: LocalRangedParts;
  readonly #created: number;
  #updated: number;
  #durable: number;
  #closed = false;

  constructor(parts: LocalRangedParts, ranges: readonly RangeRecord[]) {
    this.#parts = parts;
    this.shown = `${parts.shown}.part`;
    this.ranges = ranges;
    this.prefix = { fd: parts.fh.fd, readAt: readAtFd(parts.fh.fd) };
    this.#created = parts.resume?.created ?? Date.now();
    this.#updated = parts.resume?.updated ?? this.#created;
    this.#durable = ranges.reduce((sum, r) => sum + r.durable - r.start, 0);
  }

  writeAt(offset: number, data: Buffer): Promise<void> {
    const fd = this.#parts.fh.fd;
    return new Promise((resolve, reject) => {
      const next = (at: number): void => {
        write(fd, data, at, data.length - at, offset + at, (err, n) => {
          if (err !== null) reject(toStxError(err, 'writing', this.shown));
          else if (at + n < data.length) next(at + n);
          else resolve();
        });
      };
      next(0);
    });
  }

  async record(ranges: readonly RangeRecord[], sync = true): Promise<void> {
    try {
      if (sync) await datasync(this.#parts.fh.fd);
    } catch (err) {
      throw toStxError(err, 'syncing', this.shown);
    }
    const durable = durablePrefix(ranges);
    // Only bytes made durable count as progress for the sweep (§9.2).
    const total = ranges.reduce((sum, r) => sum + r.durable - r.start, 0);
    if (total !== this.#durable) this.#updated = Date.now();
    this.#durable = total;
    const record: PartialRecord = { version: RECORD_VERSION, ...this.#parts.meta, durable, created: this.#created, updated: this.#updated, ranges };
    await writeRecord(this.#parts.recordFile, this.#parts.partialsDir, record, `${this.#parts.shown}.json`);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#parts.fh.close().catch(() => undefined);
    this.#parts.onClose();
  }
}
