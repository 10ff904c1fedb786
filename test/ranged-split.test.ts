// How stx-send splits a file for --streams (§9.13) and how many connections --streams auto picks:
// the split is the same for the same size and count (a resumed run claims the same ranges), covers
// the file, keeps to the protocol's limits, and gives a large file more ranges than connections,
// largest first, so that a slow connection carries less. And --streams auto (the default) on a
// short link: the connection that measured the round trip carries the file, in order.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { MAX_DATA_CHUNK_BYTES, MAX_RANGES_PER_UPLOAD, MIN_RANGE_BYTES } from '../src/proto/limits.js';
import type { Frame } from '../src/proto/frames.js';
import { EAGER_MAX_BYTES, startRange } from '../src/send/commands/range.js';
import type { CommandFrames, Connection } from '../src/send/connection.js';
import { plainFiles } from '../src/send/file-opener.js';
import { AUTO_MAX_STREAMS, AUTO_MIN_BYTES, AUTO_ONE_STREAM_RTT_MS, autoStreams, isLoopback, rangesOf } from '../src/send/ranged.js';
import { logEvents } from './support/partials.js';
import { makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir } from './support/procs.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

describe('ranged split and --streams auto (§9.13)', () => {
  it('splits every size the same way each time, whole, within the limits; large files in shrinking turns', () => {
    const sizes = [2 * MiB, 4 * MiB + 12345, 64 * MiB, 256 * MiB, 300 * MiB + 7, GiB, 100 * GiB, 2 ** 53 - 1];
    for (const size of sizes) {
      for (const streams of [2, 3, 4, 8, 16]) {
        const ranges = rangesOf(size, streams);
        assert.deepEqual(rangesOf(size, streams), ranges, 'the same split for the same size and count');
        assert.ok(ranges.length >= 2 && ranges.length <= MAX_RANGES_PER_UPLOAD, `${size}/${streams}: ${ranges.length} ranges`);
        ranges.forEach((r, i) => {
          assert.equal(r.start, i === 0 ? 0 : ranges[i - 1]?.end, `${size}/${streams}: range ${i} starts where the one before ends`);
          assert.ok(r.end > r.start, 'not empty');
          assert.ok(r.end - r.start >= MIN_RANGE_BYTES || r.end === size, 'at least MIN_RANGE_BYTES unless it ends the file');
          assert.equal(r.start % MIN_RANGE_BYTES, 0, 'starts page-aligned');
        });
        assert.equal(ranges.at(-1)?.end, size, 'ends the file');
      }
    }
    // A small file: one range per stream, as before the guided split (the ranges a resumed run holds).
    assert.deepEqual(
      rangesOf(4 * MiB + 12345, 4).map((r) => [r.start, r.end]),
      [
        [0, 2 * MiB],
        [2 * MiB, 4 * MiB],
        [4 * MiB, 4 * MiB + 12345],
      ],
    );
    assert.deepEqual(rangesOf(64 * MiB, 8).length, 8);
    // A large file: more ranges than streams, the first turn the largest, none growing after it.
    const big = rangesOf(256 * MiB, 8).map((r) => r.end - r.start);
    assert.ok(big.length > 8, `${big.length} ranges for 256 MiB in 8 streams`);
    assert.ok(
      big.every((len, i) => i === big.length - 1 || i === 0 || len <= (big[i - 1] ?? 0)),
      `shrinking: ${big.map((b) => b / MiB).join(',')}`,
    );
    assert.ok((big[0] ?? 0) > (big.at(-2) ?? 0), 'the first turn is larger than the last');
    // Every turn has a range for each connection: a short last turn leaves the others idle.
    for (const [size, streams] of [[256 * MiB, 8], [GiB, 8], [300 * MiB + 7, 3], [100 * GiB, 16]] as const) {
      assert.equal(rangesOf(size, streams).length % streams, 0, `${size}/${streams}: whole turns`);
    }
    assert.deepEqual(rangesOf(GiB, 1), [], 'one stream: in order');
    assert.deepEqual(rangesOf(MiB, 8), [], 'a file under two ranges: in order');
  });

  it('--streams auto: one connection on a short round trip, more as it grows, at most AUTO_MAX_STREAMS', () => {
    assert.equal(autoStreams(0.2), 1);
    assert.equal(autoStreams(AUTO_ONE_STREAM_RTT_MS - 1), 1);
    assert.ok(autoStreams(AUTO_ONE_STREAM_RTT_MS) >= 2);
    assert.ok(autoStreams(100) >= 2 && autoStreams(100) <= autoStreams(150));
    assert.equal(autoStreams(150), AUTO_MAX_STREAMS);
    assert.equal(autoStreams(10_000), AUTO_MAX_STREAMS);
    assert.equal(autoStreams(Number.NaN), 1);
  });

  it('--streams auto counts no round trip on loopback, however long the connect took (a loaded machine)', () => {
    for (const a of ['127.0.0.1', '127.255.0.9', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a);
    for (const a of ['198.18.0.1', '10.0.0.1', '::2', '::ffff:10.0.0.1', 'localhost', '', undefined]) assert.equal(isLoopback(a), false, String(a));
  });

  it('--streams auto on loopback: the connection that timed the round trip carries the file in order', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        const src = path.join(tmp.dir, 'a.bin');
        const sha = await makeFile(src, AUTO_MIN_BYTES, 73);
        const r = await runSend(['127.0.0.1', String(d.port), src, '--json', '--quiet'], { STX_HOME: path.join(tmp.dir, 'home') });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readJsonLine(r.stdout)['sha256'], sha);
        assert.equal(await sha256File(path.join(out, 'a.bin')), sha);
        assert.deepEqual(logEvents(d.stdout(), 'range'), [], 'no ranges');
        assert.equal(logEvents(d.stdout(), 'authenticated').length, 1, 'one connection: the probe is not dialed twice');
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('DATA before RANGE_OK (revision 1.12) stops at EAGER_MAX_BYTES until RANGE_OK comes, then goes on from its offset', async () => {
    // At 150 ms and 1 Gbit/s, 1 GiB cut once: while the server settled the range before and claimed
    // this one (seconds, syncing the partial on a loaded machine), each connection had put ~19 MiB
    // of the next range into the server's socket buffer, all lost at the cut (wire 1.16× the file).
    const tmp = await tempDir();
    const file = path.join(tmp.dir, 'r.bin');
    await makeFile(file, 4 * EAGER_MAX_BYTES, 91);
    const source = await plainFiles.open(file, 'r.bin');
    try {
      let frames: CommandFrames | undefined;
      const sent: Frame['type'][] = [];
      const data: [number, number][] = [];
      const conn = {
        onFailure: () => () => true,
        begin: (first: Frame, f: CommandFrames) => {
          sent.push(first.type);
          frames = f;
        },
        progressed: () => undefined,
        nearKeyLimit: () => false,
        sendData: (offset: number, chunk: Buffer) => {
          data.push([offset, chunk.length]);
          return true;
        },
        drain: () => Promise.resolve(),
        send: (f: Frame) => {
          sent.push(f.type);
          return true;
        },
      } as unknown as Connection;
      const start = 0;
      const end = 3 * EAGER_MAX_BYTES;
      const started = startRange(conn, source, { name: 'r.bin', open: { size: 4 * EAGER_MAX_BYTES, mtime: 1, mode: 0o644 }, start, end }, {}, true);
      // No RANGE_OK yet: the DATA stops at EAGER_MAX_BYTES. Wait until that much went (at most 10 s),
      // then 0.3 s more in which none may follow.
      const sum = (): number => data.reduce((a, [, n]) => a + n, 0);
      for (let k = 0; k < 1000 && sum() < EAGER_MAX_BYTES; k++) await new Promise((r) => setTimeout(r, 10));
      for (let k = 0; k < 30; k++) await new Promise((r) => setTimeout(r, 10));
      const before = sum();
      assert.equal(data[0]?.[0], start, 'from the range start');
      assert.ok(before >= EAGER_MAX_BYTES && before <= EAGER_MAX_BYTES + MAX_DATA_CHUNK_BYTES, `DATA before RANGE_OK: ${before} bytes, at most EAGER_MAX_BYTES and a chunk`);
      assert.deepEqual(sent, ['RANGE'], 'no RANGE_END before RANGE_OK');
      // RANGE_OK says the server holds the range up to 2 × EAGER_MAX_BYTES: the DATA goes on from there.
      frames?.({ type: 'RANGE_OK', offset: 2 * EAGER_MAX_BYTES });
      await started;
      const after = data.slice(data.findIndex(([o]) => o >= 2 * EAGER_MAX_BYTES));
      assert.equal(after[0]?.[0], 2 * EAGER_MAX_BYTES, 'on from RANGE_OK\'s offset');
      assert.equal(after.reduce((a, [, n]) => a + n, 0), end - 2 * EAGER_MAX_BYTES, 'to the range end');
      assert.deepEqual(sent, ['RANGE', 'RANGE_END']);
    } finally {
      await source.close();
      await tmp.cleanup();
    }
  });
});
