// Hostile clients against a real stx-recv, part 4: the upload itself (§9.1, §9.5). DATA beyond
// the announced size, offsets beyond 2^53 − 1, overlapping or skipping offsets, END early or with
// the wrong hash, OPEN above the free space or the size limit, and running out of space in the
// middle of an upload on a small filesystem the test mounts.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_TYPES } from '../../src/proto/frames.js';
import { decodeRecordFile } from '../../src/storage/local/record.js';
import { caseTitle, itServesAfter, logLines, partials, runCase, startArena, waitUntil, type Arena, type HostileCase } from './harness.js';
import { dataBody, RawClient, sha256, type Outcome } from './raw-client.js';
import { makeFile, readJsonLine, runSend, sha256File } from '../support/procs.js';
import { startProxy } from '../support/proxy.js';

const MiB = 1024 * 1024;
const MAX_FILE = 8 * MiB;

let arena: Arena;
before(async () => {
  arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '10s', '--max-file-size', String(MAX_FILE)]);
});
after(() => arena.close('after the upload suite'));

/** Handshake and OPEN of `name` (`size` bytes), then `then` does the hostile part. */
const opened = (name: string, size: number, then: (c: RawClient) => Promise<void>) => async (c: RawClient): Promise<Outcome> => {
  assert.ok(await c.handshake());
  assert.equal(await c.open(name, size), 0);
  await then(c);
  return c.outcome();
};

/** No final file under `name`, and (for errors that keep it) the partial upload is still there. */
function noFinal(name: string): void {
  assert.ok(!arena.finalFiles().includes(name), `no final file ${name}`);
}

const key = (k: string): Buffer => Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k)]);
/** An OPEN body with raw MessagePack values for size and mode (to send what the codec refuses to build). */
const rawOpen = (name: string, size: Buffer, mode: Buffer): Buffer =>
  Buffer.concat([Buffer.from([FRAME_TYPES.OPEN, 0x84]), key('name'), Buffer.from([0xa0 | name.length]), Buffer.from(name), key('size'), size, key('mtime'), Buffer.from([1]), key('mode'), mode]);

describe('DATA and END against the announced size and offsets (§2.2, §9.1)', () => {
  const ten = Buffer.from('0123456789');
  const cases: HostileCase[] = [
    { name: 'DATA beyond the announced size (11 bytes for 10)', expect: 'BAD_OFFSET', run: opened('d/beyond.bin', 10, (c) => c.write(c.seal(dataBody(0, Buffer.concat([ten, Buffer.from('!')]))))) },
    {
      name: 'one byte more after all 10 arrived',
      expect: 'BAD_OFFSET',
      run: opened('d/one-more.bin', 10, (c) => c.write(c.seal(dataBody(0, ten)), c.seal(dataBody(10, Buffer.from('!'))))),
    },
    { name: 'DATA offset 2^53 (above 2^53 − 1)', expect: 'MALFORMED_FRAME', run: opened('d/2p53.bin', 10, (c) => c.write(c.seal(dataBody(2n ** 53n, ten)))) },
    { name: 'DATA offset 2^64 − 1', expect: 'MALFORMED_FRAME', run: opened('d/2p64.bin', 10, (c) => c.write(c.seal(dataBody(2n ** 64n - 1n, ten)))) },
    { name: 'DATA offset 2^53 − 1 (legal frame, wrong offset)', expect: 'BAD_OFFSET', run: opened('d/2p53m1.bin', 10, (c) => c.write(c.seal(dataBody(2n ** 53n - 1n, ten)))) },
    { name: 'the first DATA not at the OPEN_OK offset', expect: 'BAD_OFFSET', run: opened('d/first.bin', 10, (c) => c.write(c.seal(dataBody(1, ten.subarray(1))))) },
    {
      name: 'overlapping DATA (0..10 then 5..15)',
      expect: 'BAD_OFFSET',
      run: opened('d/overlap.bin', 20, (c) => c.write(c.seal(dataBody(0, ten)), c.seal(dataBody(5, ten)))),
    },
    {
      name: 'skipping DATA (0..10 then 20..30)',
      expect: 'BAD_OFFSET',
      run: opened('d/skip.bin', 30, (c) => c.write(c.seal(dataBody(0, ten)), c.seal(dataBody(20, ten)))),
    },
    {
      name: 'DATA repeated at the same offset',
      expect: 'BAD_OFFSET',
      run: opened('d/repeat.bin', 20, (c) => c.write(c.seal(dataBody(0, ten)), c.seal(dataBody(0, ten)))),
    },
    { name: 'END before all bytes arrived', expect: 'BAD_OFFSET', run: opened('d/early-end.bin', 20, (c) => c.write(c.seal(dataBody(0, ten)), c.sealFrame({ type: 'END', sha256: sha256(ten) }))) },
    {
      name: 'END with a 31-byte hash',
      expect: 'MALFORMED_FRAME',
      run: opened('d/short-hash.bin', 10, (c) =>
        c.write(c.seal(dataBody(0, ten)), c.seal(Buffer.concat([Buffer.from([FRAME_TYPES.END, 0x81]), key('sha256'), Buffer.from([0xc4, 31]), Buffer.alloc(31)])))),
    },
  ];
  for (const hc of cases) {
    it(caseTitle(hc), async () => {
      await runCase(arena, hc);
    });
  }
  itServesAfter(() => arena, 'the cases above');
  after(() => {
    for (const f of ['beyond', 'one-more', '2p53', '2p64', '2p53m1', 'first', 'overlap', 'skip', 'repeat', 'early-end', 'short-hash']) noFinal(`d/${f}.bin`);
  });
});

describe('END with the wrong hash (§9.1 step 6)', () => {
  it('→ INTEGRITY_FAILED, the partial upload is deleted, no final file', async () => {
    const data = Buffer.alloc(3 * MiB + 5, 0x61);
    const before = partials(arena.out);
    await runCase(
      arena,
      {
        name: 'wrong hash',
        expect: 'INTEGRITY_FAILED',
        run: opened('h/wrong.bin', data.length, async (c) => {
          await c.sendData(data);
          await c.write(c.sealFrame({ type: 'END', sha256: sha256(Buffer.from('something else')) }));
        }),
      },
      'send',
    );
    noFinal('h/wrong.bin');
    assert.deepEqual(partials(arena.out), before, 'the partial upload and its record are deleted');
  });

  it('→ INTEGRITY_FAILED leaves an existing file of that name untouched', async () => {
    const v1 = Buffer.from('version one, verified');
    const c1 = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c1.handshake());
      await c1.upload('h/kept.bin', v1);
    } finally {
      c1.destroy();
    }
    const v2 = Buffer.alloc(MiB, 0x62);
    await runCase(
      arena,
      {
        name: 'wrong hash over an existing file',
        expect: 'INTEGRITY_FAILED',
        run: opened('h/kept.bin', v2.length, async (c) => {
          await c.sendData(v2);
          await c.write(c.sealFrame({ type: 'END', sha256: Buffer.alloc(32) }));
        }),
      },
      'send',
    );
    assert.deepEqual(readFileSync(path.join(arena.out, 'h', 'kept.bin')), v1);
  });

  it('a data byte altered in a DATA frame (valid record) → INTEGRITY_FAILED', async () => {
    const data = Buffer.alloc(2 * MiB, 0x63);
    const altered = Buffer.from(data);
    altered[MiB + 17] = 0x64;
    await runCase(
      arena,
      {
        name: 'altered content',
        expect: 'INTEGRITY_FAILED',
        run: opened('h/altered.bin', data.length, async (c) => {
          await c.sendData(altered);
          await c.write(c.sealFrame({ type: 'END', sha256: sha256(data) }));
        }),
      },
      'send',
    );
    noFinal('h/altered.bin');
  });
});

describe('OPEN policy (§9.5) and OPEN fields (§4)', () => {
  const openWith = (body: Buffer) => async (c: RawClient): Promise<Outcome> => {
    assert.ok(await c.handshake());
    await c.sendBody(body);
    return c.outcome();
  };
  const openSize = (name: string, size: number) => async (c: RawClient): Promise<Outcome> => {
    assert.ok(await c.handshake());
    await c.send({ type: 'OPEN', name, size, mtime: 1, mode: 0o644 });
    return c.outcome();
  };
  const cases: HostileCase[] = [
    { name: `size above --max-file-size (${MAX_FILE} + 1)`, expect: 'TOO_LARGE', run: openSize('p/too-large.bin', MAX_FILE + 1) },
    { name: 'size 2^53 − 1', expect: 'TOO_LARGE', run: openSize('p/huge.bin', 2 ** 53 - 1) },
    { name: 'size 2^53 (uint64 above the range)', expect: 'MALFORMED_FRAME', run: openWith(rawOpen('p/2p53.bin', Buffer.from('cf0020000000000000', 'hex'), Buffer.from([0x10]))) },
    { name: 'size 2^64 − 1', expect: 'MALFORMED_FRAME', run: openWith(rawOpen('p/2p64.bin', Buffer.from('cfffffffffffffffff', 'hex'), Buffer.from([0x10]))) },
    { name: 'a negative size (−1)', expect: 'MALFORMED_FRAME', run: openWith(rawOpen('p/neg.bin', Buffer.from([0xff]), Buffer.from([0x10]))) },
    { name: 'mode 0o10000 (above 0o7777)', expect: 'MALFORMED_FRAME', run: openWith(rawOpen('p/mode.bin', Buffer.from([5]), Buffer.from([0xcd, 0x10, 0x00]))) },
  ];
  for (const hc of cases) {
    it(caseTitle(hc), async () => {
      await runCase(arena, hc);
    });
  }
  itServesAfter(() => arena, 'the cases above');

  it('size exactly --max-file-size is accepted', async () => {
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      assert.equal(await c.open('p/at-limit.bin', MAX_FILE), 0);
    } finally {
      c.destroy();
    }
  });

  it('setuid, setgid and sticky bits in OPEN.mode are never applied', async () => {
    const data = Buffer.from('#!/bin/sh\necho pwned\n');
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      assert.equal(await c.open('p/suid.sh', data.length, { mode: 0o7777 }), 0);
      await c.sendData(data);
      await c.send({ type: 'END', sha256: sha256(data) });
      await c.untilFrame('DONE');
    } finally {
      c.destroy();
    }
    const mode = statSync(path.join(arena.out, 'p', 'suid.sh')).mode & 0o7777;
    assert.equal(mode & 0o7000, 0, `mode ${mode.toString(8)} has no setuid/setgid/sticky`);
  });

  it('OPEN of a size larger than the free space → NO_SPACE (exit 6 for stx-send too)', async () => {
    // The test machine's disks are far smaller than 2^52 bytes; --max-file-size is bypassed by a
    // second daemon without it.
    const big = await startArena(['--handshake-timeout', '3s']);
    try {
      const free = await statfs(big.out, { bigint: true });
      const size = Number(free.bavail * free.bsize) + 1;
      await runCase(big, { name: 'larger than free space', expect: 'NO_SPACE', run: openSize('nospace.bin', size) }, 'send');
      assert.deepEqual(partials(big.out), [], 'a refused OPEN leaves no partial file behind');
    } finally {
      await big.close('after NO_SPACE at OPEN');
    }
  });

  it('a second connection OPENs a name being uploaded → BUSY; the first finishes intact', async () => {
    const data = Buffer.alloc(2 * MiB, 0x65);
    const first = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await first.handshake());
      assert.equal(await first.open('p/busy.bin', data.length), 0);
      await runCase(arena, { name: 'same name, other size', expect: 'BUSY', run: openSize('p/busy.bin', 12345) }, 'send');
      await first.sendData(data);
      await first.send({ type: 'END', sha256: sha256(data) });
      await first.untilFrame('DONE');
    } finally {
      first.destroy();
    }
    assert.deepEqual(readFileSync(path.join(arena.out, 'p', 'busy.bin')), data);
  });

  it('a resumed upload: DATA below the OPEN_OK offset → BAD_OFFSET', async () => {
    const name = 'p/resume-below.bin';
    const size = 4 * MiB;
    const mtime = 1_650_000_000_000;
    const c1 = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c1.handshake());
      await c1.send({ type: 'OPEN', name, size, mtime, mode: 0o644 });
      assert.equal((await c1.expectFrame('OPEN_OK')).offset, 0);
      // A checkpoint is due after one second of data (§9.1 step 4): send, wait, send more, ACK.
      await c1.sendData(Buffer.alloc(MiB, 1));
      await new Promise((r) => setTimeout(r, 1100));
      await c1.write(c1.seal(dataBody(MiB, Buffer.alloc(MiB, 2))));
      const ack = await c1.expectFrame('ACK', 5000);
      assert.ok(ack.offset > 0);
    } finally {
      c1.destroy();
    }
    await runCase(
      arena,
      {
        name: 'below the resume offset',
        expect: 'BAD_OFFSET',
        run: async (c) => {
          assert.ok(await c.handshake());
          await c.send({ type: 'OPEN', name, size, mtime, mode: 0o644 });
          const ok = await c.expectFrame('OPEN_OK');
          assert.ok(ok.offset > 0, 'the upload resumes');
          await c.write(c.seal(dataBody(0, Buffer.alloc(10))));
          return c.outcome();
        },
      },
      'send',
    );
    noFinal(name);
  });
});

/** Why a tmpfs cannot be mounted here (not root, no CAP_SYS_ADMIN), or false if it can. */
function tmpfsUnavailable(): string | false {
  const probe = mkdtempSync(path.join(os.tmpdir(), 'stx-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return false;
  } catch (err) {
    return `cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): ${err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err)}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

describe('out of space during an upload (§9.5), on a small tmpfs', () => {
  const TMPFS_BYTES = 160 * MiB;
  const FILE_BYTES = 64 * MiB;
  let mounted = false;
  let skip: string | false = false;
  let space: Arena | undefined;

  before(async () => {
    skip = tmpfsUnavailable();
    if (skip !== false) return;
    space = await startArena(['--handshake-timeout', '5s', '--idle-timeout', '20s'], {
      beforeStart: (out) => {
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', out], { stdio: 'pipe' });
        mounted = true;
      },
      afterStop: (out) => {
        if (mounted) execFileSync('umount', [out], { stdio: 'pipe' });
        mounted = false;
      },
    });
  });
  after(async () => {
    await space?.close('after the out-of-space test');
  });

  it('stx-send gets NO_SPACE (exit 6), the partial is kept, and the upload resumes and completes once space is freed', async (t) => {
    if (skip !== false) {
      t.skip(skip);
      return;
    }
    const a = space;
    assert.ok(a !== undefined);
    const file = path.join(a.src, 'big.bin');
    const sha = await makeFile(file, FILE_BYTES, 4242);
    const filler = path.join(a.out, 'filler.bin');
    // Throttled, so that the upload is still running when the filler takes the space.
    const proxy = await startProxy(a.daemon.port, { bytesPerSecond: 8 * MiB });
    let durableAtFill: number;
    try {
      const sending = runSend(
        ['127.0.0.1', String(proxy.port), file, '--as', 'big.bin', '--fingerprint', a.daemon.fingerprint, '--quiet', '--retries', '1', '--backoff', '50'],
        { STX_HOME: a.home },
        60_000,
      );
      // Wait until the server has a durable prefix (a checkpoint), then take nearly all the space.
      const partialsDir = path.join(a.out, '.stx', 'partials');
      const durable = (): number => {
        for (const f of existsSync(partialsDir) ? readdirSync(partialsDir) : []) {
          if (!f.endsWith('.json')) continue;
          try {
            const v: unknown = decodeRecordFile(readFileSync(path.join(partialsDir, f)));
            const d: unknown = typeof v === 'object' && v !== null ? Reflect.get(v, 'durable') : undefined;
            if (typeof d === 'number') return d;
          } catch {
            // Being replaced; read it again on the next poll.
          }
        }
        return 0;
      };
      assert.ok(await waitUntil(() => durable() > 0, 20_000), 'a first checkpoint');
      durableAtFill = durable();
      const fs = await statfs(a.out, { bigint: true });
      let left = Number(fs.bavail * fs.bsize) - 4 * MiB;
      const fh = await open(filler, 'w');
      try {
        const chunk = Buffer.alloc(4 * MiB, 0x66);
        for (let at = 0; left > 0; at += chunk.length) {
          const n = Math.min(left, chunk.length);
          await fh.write(chunk, 0, n, at);
          left -= n;
        }
      } finally {
        await fh.close();
      }
      const r = await sending;
      assert.equal(r.code, 6, `exit 6 for NO_SPACE: ${r.stderr}`);
      assert.match(r.stderr, /NO_SPACE/);
      assert.match(r.stderr, /space/i, 'the message says what to do');
    } finally {
      await proxy.close();
    }
    assert.equal(a.finalFiles().includes('big.bin'), false, 'no final file');
    const kept = partials(a.out);
    assert.ok(kept.some((f) => f.endsWith('.part')) && kept.some((f) => f.endsWith('.json')), `partial kept: ${kept.join(', ')}`);
    const logged = logLines(a.daemon).find((l) => l.event === 'close' && l.code === 'NO_SPACE');
    assert.ok(logged !== undefined, 'the daemon logged NO_SPACE');

    // An OPEN now, with less free space than the margin, is refused at once with NO_SPACE too.
    const small = path.join(a.src, 'small.bin');
    await makeFile(small, 1000, 1);
    const refused = await a.send(small, ['--as', 'small.bin', '--retries', '0']);
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /NO_SPACE/);

    // Free the space: the same command resumes from the kept durable offset and completes.
    await rm(filler);
    const r2 = await a.send(file, ['--as', 'big.bin', '--retries', '2', '--backoff', '50']);
    assert.equal(r2.code, 0, r2.stderr);
    const json = readJsonLine(r2.stdout);
    assert.equal(json['sha256'], sha);
    assert.ok(typeof json['resumed_from'] === 'number' && json['resumed_from'] >= durableAtFill && json['resumed_from'] > 0, `resumed from ${String(json['resumed_from'])}`);
    assert.equal(await sha256File(path.join(a.out, 'big.bin')), sha);
    assert.deepEqual(partials(a.out), [], 'the partial is gone once published');
    await a.assertServes('after running out of space');
  });
});
