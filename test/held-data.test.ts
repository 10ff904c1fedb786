// What a PUT or PUT_PACK holds of its DATA until its jobs are over (src/recv/commands/put.ts
// holdData): a file sent as many short DATA frames is held in a few copy buffers, not one per frame.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { COPY_BUFFER_BYTES, holdData, releaseData, type HeldData } from '../src/recv/commands/put.js';
import { StxError } from '../src/proto/errors.js';

describe('held DATA (§9.11)', () => {
  it('100,000 one-byte DATA frames make two copy buffers, held at their size, and all of it goes back', () => {
    const size = 100_000;
    const expected = Buffer.alloc(size);
    for (let i = 0; i < size; i++) expected[i] = (i * 31 + 7) & 0xff;
    const held: HeldData = { chunks: [], leases: [], received: 0, copied: 0 };
    let account = 0;
    const link = { held: (bytes: number) => void (account += bytes) };
    // Each frame's bytes in a buffer that is overwritten right after, as a record's body may be.
    const frame = Buffer.alloc(1);
    for (let at = 0; at < size; at++) {
      frame[0] = expected[at] ?? 0;
      holdData(held, size, 'PUT', at, frame, undefined, link);
      frame[0] = 0;
    }
    assert.equal(held.received, size);
    assert.equal(held.chunks.length, Math.ceil(size / COPY_BUFFER_BYTES));
    assert.ok(Buffer.concat(held.chunks).equals(expected), 'the bytes, in order');
    assert.equal(account, size, 'the connection holds the copy buffers, sized to what was to come');
    assert.throws(() => holdData(held, size, 'PUT', size, frame, undefined, link), (err: unknown) => err instanceof StxError && err.code === 'BAD_OFFSET');
    releaseData(held, link);
    assert.equal(account, 0);
    assert.equal(held.chunks.length, 0);
  });

  it('frames of several sizes, across copy buffers: the bytes in order', () => {
    const size = 3 * COPY_BUFFER_BYTES + 123;
    const expected = Buffer.alloc(size);
    for (let i = 0; i < size; i++) expected[i] = (i * 13) & 0xff;
    const held: HeldData = { chunks: [], leases: [], received: 0, copied: 0 };
    const link = { held: () => undefined };
    for (let at = 0, step = 1; at < size; step = (step * 7) % 40_000 + 1) {
      const n = Math.min(step, size - at);
      holdData(held, size, 'PUT_PACK', at, Buffer.from(expected.subarray(at, at + n)), undefined, link);
      at += n;
    }
    assert.ok(held.chunks.length <= 4, `${held.chunks.length} chunks`);
    assert.ok(Buffer.concat(held.chunks).equals(expected));
  });
});
