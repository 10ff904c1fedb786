// StreamReader.copyOutOf (src/proto/reader.ts), which the daemon's shared read buffer relies on
// (src/recv/reads.ts, Connection.receiveShared): after every read the bytes left for a frame not
// yet complete are copied out of the buffer the next read reuses. How many pieces a frame arrives
// in is the peer's choice (one byte per TCP segment), so the copy-out must cost per read what
// that read left, not what all earlier reads left.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_HELD_PIECES, StreamReader } from '../src/proto/reader.js';

/** Counts, while `fn` runs, how often any Buffer is asked for its `.buffer`. */
function bufferLooks(fn: () => void): number {
  let n = 0;
  // The getter of every typed array (%TypedArray%.prototype.buffer), shadowed on Buffer's prototype.
  const descriptor = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype) as object, 'buffer');
  const original = (descriptor === undefined ? undefined : Reflect.get(descriptor, 'get')) as ((this: Uint8Array) => unknown) | undefined;
  const proto = Buffer.prototype as unknown as object;
  Object.defineProperty(proto, 'buffer', {
    configurable: true,
    get(this: Uint8Array): unknown {
      n++;
      return original?.call(this);
    },
  });
  try {
    fn();
  } finally {
    Reflect.deleteProperty(proto, 'buffer');
  }
  return n;
}

describe('StreamReader.copyOutOf', () => {
  it('keeps the bytes of an incomplete frame whole while the read buffer is overwritten', () => {
    const shared = Buffer.alloc(64);
    const reader = new StreamReader();
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('hello')]);
    for (let at = 0; at < frame.length; at += 2) {
      const n = frame.copy(shared, 0, at, Math.min(at + 2, frame.length));
      reader.push(shared.subarray(0, n));
      const got = reader.next({ min: 0, max: 100 });
      if (at + 2 < frame.length) assert.equal(got, null);
      else assert.deepEqual(got, frame);
      reader.copyOutOf(shared.buffer);
      shared.fill(0xa5);
    }
  });

  it('looks at the last read only: 2,000 one-byte reads of one frame cost a few looks each, not 2,000²/2', () => {
    const shared = Buffer.alloc(16);
    const reader = new StreamReader();
    const pieces = 2000;
    const frame = Buffer.alloc(pieces);
    frame.writeUInt32BE(pieces - 4, 0);
    const looks = bufferLooks(() => {
      for (let i = 0; i < pieces; i++) {
        shared[0] = frame[i] ?? 0;
        reader.push(shared.subarray(0, 1));
        const got = reader.next({ min: 0, max: 1 << 20 });
        assert.equal(got === null, i < pieces - 1);
        reader.copyOutOf(shared.buffer);
      }
    });
    assert.ok(looks <= 10 * pieces, `copyOutOf looked at ${looks} chunks over ${pieces} reads`);
  });
});

describe('StreamReader pieces', () => {
  it('holds a frame sent one byte per read in at most MAX_HELD_PIECES buffers, and returns it whole', () => {
    // A control frame's worth (16 KiB) in 16,384 reads: each read a buffer of its own, as the
    // daemon's copy-out makes them; counted in bytes it is 16 KiB, in objects 16,384 of them.
    const shared = Buffer.alloc(16);
    const reader = new StreamReader();
    const frame = Buffer.alloc(16 * 1024);
    frame.writeUInt32BE(frame.length - 4, 0);
    for (let i = 4; i < frame.length; i++) frame[i] = i % 251;
    let most = 0;
    let got: Buffer | null = null;
    for (let i = 0; i < frame.length; i++) {
      shared[0] = frame[i] ?? 0;
      reader.push(shared.subarray(0, 1));
      most = Math.max(most, reader.pieces);
      got = reader.next({ min: 0, max: 1 << 20 });
      assert.equal(got === null, i < frame.length - 1);
      reader.copyOutOf(shared.buffer);
      shared.fill(0xa5);
    }
    assert.ok(most <= MAX_HELD_PIECES, `held ${most} pieces at once`);
    assert.deepEqual(got, frame);
    assert.equal(reader.pending, 0);
    assert.equal(reader.pieces, 0);
  });
});
