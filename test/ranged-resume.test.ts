// Which recorded ranges a ranged upload resumes with (storage/local/ranged.ts keptRanges, §9.13
// step 3): every range, unless the .part lacks bytes a range says are durable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RECORD_VERSION, type PartialRecord, type RangeRecord } from '../src/storage/backend.js';
import { keptRanges } from '../src/storage/local/ranged.js';

const MiB = 1024 * 1024;

function recordOf(ranges: RangeRecord[]): PartialRecord {
  return { version: RECORD_VERSION, principal: 'anonymous', name: 'f.bin', size: 64 * MiB, mtime: 1, mode: 0o600, durable: 0, created: 1, updated: 1, ranges };
}

describe('keptRanges: what a ranged resume keeps', () => {
  it('keeps a range claimed with nothing durable yet whose start lies past the end of the sparse file', () => {
    // Seen on a long link with every connection cut at once: the ranges at the file's top had just
    // been claimed. Before, all ranges were dropped and the .part truncated: the upload began again.
    const ranges = [
      { start: 0, end: 16 * MiB, durable: 12 * MiB },
      { start: 16 * MiB, end: 32 * MiB, durable: 32 * MiB },
      { start: 48 * MiB, end: 64 * MiB, durable: 48 * MiB },
    ];
    assert.deepEqual(keptRanges(recordOf(ranges), 32 * MiB), ranges);
  });

  it('drops them all when a range says bytes are durable that the file does not have (a truncated .part)', () => {
    const ranges = [
      { start: 0, end: 16 * MiB, durable: 16 * MiB },
      { start: 16 * MiB, end: 32 * MiB, durable: 20 * MiB },
    ];
    assert.deepEqual(keptRanges(recordOf(ranges), 18 * MiB), []);
  });

  it('resumes nothing without ranges in the record', () => {
    assert.deepEqual(keptRanges(undefined, 0), []);
    assert.deepEqual(keptRanges({ ...recordOf([]), ranges: undefined }, 0), []);
  });
});
