// Random access and integrity of src/transfer/age.ts: an age file sealed range by range, in any
// order and by a sealer rebuilt from the kept state (as a resumed upload does), is byte for byte
// the one sealed in one pass; and every tampering or cut fails with its typed error.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { prng } from './support/prng.js';
import {
  AGE_CHUNK_BYTES,
  AGE_MAX_HEADER_BYTES,
  AGE_PAYLOAD_NONCE_BYTES,
  AGE_SEALED_CHUNK_BYTES,
  AgeIntegrityError,
  AgeKeyError,
  AgeSealer,
  agePayloadSize,
  createAgeSealer,
  generateAgeIdentity,
  newFileKey,
  newPayloadNonce,
  openAge,
  openAgeBytes,
  parseAgeIdentity,
  parseAgeRecipient,
  sealHeader,
  type AgeIdentity,
  type AgeIntegrityStage,
} from '../src/transfer/age.js';

const SIZES = [0, 1, AGE_CHUNK_BYTES - 1, AGE_CHUNK_BYTES, AGE_CHUNK_BYTES + 1, 3 * AGE_CHUNK_BYTES + 5, 1024 * 1024 + 3];
/** Longest range asked for at once: several chunks. */
const MAX_RANGE_BYTES = 200_000;

/** [offset, length) ranges that cover [0, size) exactly, of random lengths, in random order. */
function shuffledRanges(size: number, random: () => number): [number, number][] {
  const ranges: [number, number][] = [];
  for (let at = 0; at < size; ) {
    const length = Math.min(size - at, 1 + Math.floor(random() * MAX_RANGE_BYTES));
    ranges.push([at, length]);
    at += length;
  }
  for (let i = ranges.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = ranges[i];
    const b = ranges[j];
    if (a !== undefined && b !== undefined) [ranges[i], ranges[j]] = [b, a];
  }
  return ranges;
}

async function readAt(file: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const { bytesRead } = await file.read(buf, 0, length, offset);
  assert.equal(bytesRead, length);
  return buf;
}

async function expectIntegrity(promise: Promise<unknown>, stage: AgeIntegrityStage): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AgeIntegrityError, String(err));
    assert.equal(err.code, 'INTEGRITY_FAILED');
    assert.equal(err.stage, stage, err.message);
    return true;
  });
}

function* pieces(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

let dir = '';
let id: AgeIdentity;
let recipient = '';

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'stx-age-stream-'));
  const generated = generateAgeIdentity();
  id = parseAgeIdentity(generated.identity);
  recipient = generated.recipient;
});

after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('AgeSealer: random access', () => {
  for (const [n, size] of SIZES.entries()) {
    it(`${size} bytes: ranges in random order, from a rebuilt sealer, equal the one-pass file`, async () => {
      const plain = randomBytes(size);
      const source = path.join(dir, `plain-${size}`);
      await writeFile(source, plain);
      const { sealer, fileKey } = createAgeSealer([recipient], size);
      const whole = sealer.bytesAt(0, sealer.size, plain);
      assert.equal(whole.length, sealer.size);
      assert.equal(sealer.size, sealer.header.length + agePayloadSize(size));
      assert.equal(sealer.size, sealer.payloadStart + size + sealer.chunkCount * 16);
      assert.deepEqual(await openAgeBytes(id, whole), plain);

      // What a resumed upload has: the kept header, file key and nonce, and the file on disk.
      const resumed = new AgeSealer(Buffer.from(sealer.header), Buffer.from(fileKey), Buffer.from(sealer.nonce), size);
      const file = await open(source, 'r');
      try {
        const random = prng(0x5eed + n);
        const assembled = Buffer.alloc(resumed.size);
        for (const [offset, length] of shuffledRanges(resumed.size, random)) {
          const range = resumed.plaintextRangeFor(offset, length);
          assert.equal(range.offset % AGE_CHUNK_BYTES, 0);
          assert.ok(range.offset + range.length <= size);
          const bytes = await resumed.read(offset, length, (at, len) => readAt(file, at, len));
          assert.equal(bytes.length, length);
          bytes.copy(assembled, offset);
        }
        assert.deepEqual(assembled, whole);
      } finally {
        await file.close();
      }
    });
  }

  it('chunk i is plaintext [i × 64 KiB, …) and sits at payloadStart + i × 65552', () => {
    const size = 2 * AGE_CHUNK_BYTES + 10;
    const plain = randomBytes(size);
    const { sealer } = createAgeSealer([recipient], size);
    const whole = sealer.bytesAt(0, sealer.size, plain);
    assert.equal(sealer.chunkCount, 3);
    assert.deepEqual(sealer.chunkPlaintext(2), { offset: 2 * AGE_CHUNK_BYTES, length: 10 });
    for (let i = 0; i < sealer.chunkCount; i++) {
      const span = sealer.chunkPlaintext(i);
      const at = sealer.payloadStart + i * AGE_SEALED_CHUNK_BYTES;
      assert.deepEqual(sealer.seal(i, plain.subarray(span.offset, span.offset + span.length)), whole.subarray(at, at + span.length + 16));
    }
    assert.deepEqual(whole.subarray(sealer.header.length, sealer.payloadStart), sealer.nonce);
    // A range inside the header needs no plaintext.
    assert.deepEqual(sealer.plaintextRangeFor(0, sealer.header.length), { offset: 0, length: 0, firstChunk: 0, chunks: 0 });
    assert.deepEqual(sealer.bytesAt(3, 10, Buffer.alloc(0)), whole.subarray(3, 13));
    // Empty ranges anywhere, the end included, need nothing and give nothing.
    for (const at of [0, sealer.payloadStart, sealer.size]) assert.equal(sealer.bytesAt(at, 0, Buffer.alloc(0)).length, 0);
  });

  it('two files sealed for the same recipient share no key material', () => {
    const plain = randomBytes(1000);
    const a = createAgeSealer([recipient], plain.length);
    const b = createAgeSealer([recipient], plain.length);
    assert.notDeepEqual(a.fileKey, b.fileKey);
    assert.notDeepEqual(a.sealer.nonce, b.sealer.nonce);
    assert.notDeepEqual(a.sealer.bytesAt(0, a.sealer.size, plain), b.sealer.bytesAt(0, b.sealer.size, plain));
  });

  it('refuses kept state that does not belong together, and ranges outside the file', () => {
    const { sealer } = createAgeSealer([recipient], 100);
    assert.throws(
      () => new AgeSealer(sealer.header, newFileKey(), sealer.nonce, 100),
      (err: unknown) => err instanceof AgeKeyError && err.problem === 'key' && err.code === 'LOCAL_FILE',
    );
    assert.throws(() => sealer.bytesAt(0, sealer.size + 1, Buffer.alloc(100)), RangeError);
    assert.throws(() => sealer.bytesAt(0, sealer.size, Buffer.alloc(99)), RangeError);
    assert.throws(() => sealer.seal(1, Buffer.alloc(0)), RangeError);
  });

  it('a malformed or misplaced recipient string is AgeKeyError(key)', () => {
    const good = generateAgeIdentity();
    const flipped = good.recipient.slice(0, -1) + (good.recipient.endsWith('q') ? 'p' : 'q');
    for (const bad of [flipped, good.identity, 'age1', '', good.recipient.toUpperCase().slice(0, -1) + 'x']) {
      assert.throws(
        () => sealHeader(newFileKey(), [bad]),
        (err: unknown) => err instanceof AgeKeyError && err.problem === 'key',
        bad,
      );
    }
    assert.deepEqual(parseAgeRecipient(good.recipient.toUpperCase()), parseAgeRecipient(good.recipient));
  });
});

describe('openAge: tampering and cuts', () => {
  const SIZE = 3 * AGE_CHUNK_BYTES + 100;
  let plain: Buffer;
  let whole: Buffer;
  let sealer: AgeSealer;

  before(() => {
    plain = randomBytes(SIZE);
    ({ sealer } = createAgeSealer([recipient], SIZE));
    whole = sealer.bytesAt(0, sealer.size, plain);
  });

  const flip = (at: number): Buffer => {
    const copy = Buffer.from(whole);
    copy[at] = (copy[at] ?? 0) ^ 0x01;
    return copy;
  };

  /** The plaintext released before the failure must be whole, verified chunks only. */
  async function released(bytes: Buffer): Promise<{ out: Buffer; error: unknown }> {
    const parts: Buffer[] = [];
    try {
      const opened = await openAge(id, pieces(bytes, 10_007));
      for await (const chunk of opened.plaintext) parts.push(chunk);
      return { out: Buffer.concat(parts), error: null };
    } catch (error) {
      return { out: Buffer.concat(parts), error };
    }
  }

  it('the untouched file opens, in pieces of any size', async () => {
    for (const size of [1, 16, 65552, 1 << 20]) {
      const opened = await openAge(id, pieces(whole, size));
      const parts: Buffer[] = [];
      for await (const chunk of opened.plaintext) parts.push(chunk);
      assert.deepEqual(Buffer.concat(parts), plain);
      assert.equal(opened.headerLength, sealer.header.length);
    }
  });

  it('a flipped bit in chunk 2 fails the payload after chunks 0 and 1 were released', async () => {
    const { out, error } = await released(flip(sealer.payloadStart + 2 * AGE_SEALED_CHUNK_BYTES + 7));
    assert.ok(error instanceof AgeIntegrityError && error.stage === 'payload', String(error));
    assert.deepEqual(out, plain.subarray(0, 2 * AGE_CHUNK_BYTES));
  });

  it('a flipped bit in a tag, in the nonce, or in the last chunk fails the payload', async () => {
    await expectIntegrity(openAgeBytes(id, flip(sealer.payloadStart + AGE_SEALED_CHUNK_BYTES - 1)), 'payload');
    await expectIntegrity(openAgeBytes(id, flip(sealer.header.length + 3)), 'payload');
    await expectIntegrity(openAgeBytes(id, flip(whole.length - 1)), 'payload');
  });

  it('cut, extended, reordered or shortened-by-a-chunk files fail the payload', async () => {
    const p = sealer.payloadStart;
    const c = AGE_SEALED_CHUNK_BYTES;
    await expectIntegrity(openAgeBytes(id, whole.subarray(0, whole.length - 1)), 'payload');
    await expectIntegrity(openAgeBytes(id, whole.subarray(0, p + c)), 'payload');
    await expectIntegrity(openAgeBytes(id, Buffer.concat([whole, Buffer.from([0])])), 'payload');
    const swapped = Buffer.concat([whole.subarray(0, p), whole.subarray(p + c, p + 2 * c), whole.subarray(p, p + c), whole.subarray(p + 2 * c)]);
    await expectIntegrity(openAgeBytes(id, swapped), 'payload');
    const dropped = Buffer.concat([whole.subarray(0, p + c), whole.subarray(p + 2 * c)]);
    await expectIntegrity(openAgeBytes(id, dropped), 'payload');
  });

  it('a changed header MAC is an hmac failure; a changed stanza body no longer opens (no-match)', async () => {
    const text = sealer.header.toString('latin1');
    const macAt = text.lastIndexOf('--- ') + 4;
    const withMac = Buffer.from(whole);
    withMac[macAt] = withMac[macAt] === 0x41 ? 0x42 : 0x41; // 'A'/'B': still base64, another MAC
    await expectIntegrity(openAgeBytes(id, withMac), 'hmac');
    const bodyAt = text.indexOf('\n', text.indexOf('-> X25519')) + 1;
    const withBody = Buffer.from(whole);
    withBody[bodyAt] = withBody[bodyAt] === 0x41 ? 0x42 : 0x41;
    await assert.rejects(openAgeBytes(id, withBody), (err: unknown) => err instanceof AgeKeyError && err.problem === 'no-match');
  });

  it('a broken header or a missing nonce is a header failure', async () => {
    await expectIntegrity(openAgeBytes(id, flip(3)), 'header'); // the version line
    await expectIntegrity(openAgeBytes(id, whole.subarray(0, sealer.header.length - 1)), 'header');
    await expectIntegrity(openAgeBytes(id, whole.subarray(0, sealer.header.length + AGE_PAYLOAD_NONCE_BYTES - 1)), 'header');
    await expectIntegrity(openAgeBytes(id, Buffer.alloc(0)), 'header');
  });

  it('another identity gets AgeKeyError(no-match), code LOCAL_FILE', async () => {
    const other = parseAgeIdentity(generateAgeIdentity().identity);
    await assert.rejects(openAgeBytes(other, whole), (err: unknown) => {
      assert.ok(err instanceof AgeKeyError);
      assert.equal(err.problem, 'no-match');
      assert.equal(err.code, 'LOCAL_FILE');
      return true;
    });
    assert.deepEqual(await openAgeBytes([other, id], whole), plain);
  });

  it('a header without an end is refused after AGE_MAX_HEADER_BYTES, without reading the rest', async () => {
    let pulled = 0;
    const PIECE = 4096;
    function* endless(): Generator<Buffer> {
      yield Buffer.from('age-encryption.org/v1\n-> X25519 abc\n');
      for (let i = 0; i < 10_000; i++) {
        pulled++;
        yield Buffer.alloc(PIECE, 0x41);
      }
    }
    await expectIntegrity(openAge(id, endless()), 'header');
    assert.ok(pulled * PIECE <= AGE_MAX_HEADER_BYTES + PIECE, `pulled ${pulled} pieces`);
  });

  it('a fresh nonce and file key make a new file: the same header with another nonce still opens', async () => {
    // The nonce is not covered by the header MAC; a sealer with another nonce is another valid file.
    const fileKey = newFileKey();
    const header = sealHeader(fileKey, [recipient]);
    const a = new AgeSealer(header, fileKey, newPayloadNonce(), 10);
    const b = new AgeSealer(header, fileKey, newPayloadNonce(), 10);
    const data = randomBytes(10);
    const fa = a.bytesAt(0, a.size, data);
    const fb = b.bytesAt(0, b.size, data);
    assert.notDeepEqual(fa, fb);
    assert.deepEqual(await openAgeBytes(id, fa), data);
    assert.deepEqual(await openAgeBytes(id, fb), data);
  });
});
