// Hostile clients against a real stx-recv, part 3: remote names (§9.3) through the real daemon.
// A corpus of hostile names (traversal, absolute, encoded, invalid UTF-8, very long, reserved
// `.stx`, control characters, NFD) must be refused; literal look-alikes that are legal names must
// land inside --out; links planted inside --out are never followed; a directory swapped for a
// symlink between OPEN and END makes END fail and nothing is written outside --out.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, readFileSync, realpathSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FRAME_TYPES } from '../../src/proto/frames.js';
import { assertServesRaw, caseTitle, itServesAfter, runCase, startArena, type Arena, type HostileCase } from './harness.js';
import { dataBody, HandshakeRefused, RawClient, sha256, type Outcome } from './raw-client.js';

let arena: Arena;
before(async () => {
  arena = await startArena(['--handshake-timeout', '3s', '--idle-timeout', '10s']);
});
after(() => arena.close('after the names suite'));

/** OPEN of `name` after a handshake; the outcome of the refusal. */
const openName = (name: string) => async (c: RawClient): Promise<Outcome> => {
  assert.ok(await c.handshake());
  await c.send({ type: 'OPEN', name, size: 5, mtime: 1_700_000_000_000, mode: 0o644 });
  return c.outcome();
};

/** OPEN whose name is raw bytes in a MessagePack str (for invalid UTF-8). */
const openNameBytes = (nameBytes: Buffer) => async (c: RawClient): Promise<Outcome> => {
  assert.ok(await c.handshake());
  const str = nameBytes.length < 32 ? Buffer.from([0xa0 | nameBytes.length]) : Buffer.from([0xd9, nameBytes.length]);
  const key = (k: string): Buffer => Buffer.concat([Buffer.from([0xa0 | k.length]), Buffer.from(k)]);
  const body = Buffer.concat([
    Buffer.from([FRAME_TYPES.OPEN, 0x84]),
    key('name'),
    str,
    nameBytes,
    key('size'),
    Buffer.from([5]),
    key('mtime'),
    Buffer.from([1]),
    key('mode'),
    Buffer.from([0xcd, 0x01, 0xa4]),
  ]);
  await c.sendBody(body);
  return c.outcome();
};

/** Hostile names, each refused with BAD_NAME (§9.3). */
const HOSTILE: ReadonlyArray<readonly [string, string]> = [
  ['../escape.bin', 'parent traversal'],
  ['../../escape.bin', 'double parent traversal'],
  [`${'../'.repeat(40)}etc/passwd`, 'deep traversal to /etc/passwd'],
  ['a/../../escape.bin', 'traversal after a directory'],
  ['a/..', 'trailing parent'],
  ['..', 'parent alone'],
  ['name\u202egnp.exe', 'a RIGHT-TO-LEFT OVERRIDE that shows it as "nameexe.png" (§9.3, revision 1.2)'],
  ['.STX/partials/x', 'the reserved directory in capitals'],
  ['.', 'current directory'],
  ['./a', 'leading dot component'],
  ['a/./b', 'inner dot component'],
  ['/etc/passwd', 'absolute'],
  ['/abs.bin', 'absolute in the root'],
  ['//x', 'double-slash absolute'],
  ['a/', 'trailing slash'],
  ['a//b', 'empty component'],
  ['..\\escape.bin', 'backslash traversal'],
  ['a\\..\\..\\escape.bin', 'backslash traversal after a directory'],
  ['C:\\x', 'drive letter with backslash'],
  ['\\\\server\\share\\x', 'UNC path'],
  ['.stx', 'reserved directory'],
  ['.stx/partials/evil.part', 'into the partials'],
  ['.stx/../escape.bin', 'reserved then traversal'],
  ['a/.stx/y', 'reserved directory below'],
  ['.stxfoo', 'reserved prefix'],
  ['x\u0000y', 'NUL'],
  ['x\ny', 'newline'],
  ['x\ry', 'carriage return'],
  ['\u001b[31mred', 'terminal escape'],
  ['x\u007f', 'DEL'],
  ['x\u0085', 'C1 NEL'],
  ['x\u009b[2J', 'C1 CSI'],
  ['e\u0301.bin', 'NFD é'],
  ['cafe\u0301/x.bin', 'NFD directory'],
  ['\u212b.bin', 'Angstrom sign (not NFC)'],
  ['a'.repeat(256), 'component of 256 bytes'],
  [`d/${'é'.repeat(128)}`, 'component of 256 UTF-8 bytes'],
  ['x\ufffd.bin', 'U+FFFD'],
];

/** Names refused as malformed frames: the OPEN schema bounds `name` to 1..4096 bytes (§4, §2.1). */
const MALFORMED: ReadonlyArray<readonly [string, string]> = [
  ['', 'empty name'],
  [`${`${'a'.repeat(200)}/`.repeat(21)}a`, 'name over 4096 bytes'],
];

/** Invalid UTF-8 on the wire (§2.1), including the classic overlong-"/" traversal. */
const INVALID_UTF8: ReadonlyArray<readonly [Buffer, string]> = [
  [Buffer.from('61ff62', 'hex'), 'a 0xff byte'],
  [Buffer.from('2e2ec0af6573636170652e62696e', 'hex'), 'overlong "/" (..0xc0af escape.bin)'],
  [Buffer.from('78eda080', 'hex'), 'an encoded lone surrogate'],
  [Buffer.from('f4908080', 'hex'), 'a code point above U+10FFFF'],
  [Buffer.from('2e2ee080af78', 'hex'), 'overlong 3-byte "/"'],
];

/** Literal look-alikes: legal names that must land inside --out, at exactly that name. */
const LEGAL: readonly string[] = [
  '%2e%2e/x.bin',
  '%2e%2e%2fescape.bin',
  '..%2f..%2fescape.bin',
  '\u2025/x.bin',
  '\uff0e\uff0e/x.bin',
  '\u2024\u2024/y.bin',
  '\u2215etc\u2215passwd',
  '\uff0fetc\uff0fpasswd',
  '..\u200b/z.bin',
  '..x',
  'x..',
  '...',
  'a/...',
  ' ../x.bin',
  'C:/x.bin',
  '~/x.bin',
  '$HOME/x.bin',
  'x.stx',
  'stx/stx/x',
  '.hidden',
  '😀/x.bin',
  '\u00e9t\u00e9.bin',
  '-rf',
  'a b/c d.bin',
];

describe(`${HOSTILE.length + MALFORMED.length + INVALID_UTF8.length} hostile names through the daemon`, () => {
  it('the corpus has at least 30 hostile names', () => {
    assert.ok(HOSTILE.length + MALFORMED.length + INVALID_UTF8.length >= 30);
  });
  for (const [name, why] of HOSTILE) {
    it(`${why}: ${JSON.stringify(name).slice(0, 60)} → BAD_NAME`, async () => {
      await runCase(arena, { name: why, expect: 'BAD_NAME', run: openName(name) });
    });
  }
  for (const [name, why] of MALFORMED) {
    it(`${why} → MALFORMED_FRAME (name is str(1..4096) in OPEN)`, async () => {
      await runCase(arena, { name: why, expect: 'MALFORMED_FRAME', run: openName(name) });
    });
  }
  // §2.1 makes invalid UTF-8 in a str MALFORMED_FRAME; a decoder that replaces it with U+FFFD
  // instead leaves it to §9.3, which refuses U+FFFD with BAD_NAME. Either way: refused.
  for (const [bytes, why] of INVALID_UTF8) {
    it(`invalid UTF-8, ${why} → MALFORMED_FRAME or BAD_NAME`, async () => {
      await runCase(arena, { name: why, expect: ['MALFORMED_FRAME', 'BAD_NAME'], run: openNameBytes(bytes) });
    });
  }
  after(async () => {
    assert.deepEqual(arena.finalFiles().filter((f) => !f.startsWith('serves')), [], 'no file from a refused name');
    await arena.assertServes('after the hostile names');
  });
});

describe(`${LEGAL.length} literal look-alikes land inside --out under exactly their name`, () => {
  for (const name of LEGAL) {
    it(JSON.stringify(name), async () => {
      const data = Buffer.from(`legal ${name}`);
      const c = await RawClient.connect(arena.daemon.port);
      try {
        assert.ok(await c.handshake());
        assert.equal(await c.upload(name, data), sha256(data).toString('hex'));
      } finally {
        c.destroy();
      }
      const file = path.join(arena.out, ...name.split('/'));
      assert.deepEqual(readFileSync(file), data);
      assert.ok(realpathSync(file).startsWith(realpathSync(arena.out) + path.sep), `${file} is inside --out`);
      arena.assertNothingOutside();
    });
  }
  it('a legal 4096-byte name whose full path would pass PATH_MAX is BAD_NAME, not IO_ERROR (§9.3)', async () => {
    const name = `${'a'.repeat(255)}/`.repeat(15) + `${'c'.repeat(254)}/d`;
    assert.equal(Buffer.byteLength(name), 4096);
    await runCase(arena, { name: '4096-byte name', expect: 'BAD_NAME', run: openName(name) });
    assert.equal(existsSync(path.join(arena.out, 'a'.repeat(255))), false, 'nothing was created for it');
  });
});

describe('long names', () => {
  it('a 3900-byte name with 255-byte components (under PATH_MAX with --out) lands inside --out', async () => {
    const name = `${'b'.repeat(255)}/`.repeat(15) + 'e'.repeat(60);
    assert.ok(Buffer.byteLength(name) > 3800);
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      await c.upload(name, Buffer.from('long'));
    } finally {
      c.destroy();
    }
    assert.equal(readFileSync(path.join(arena.out, ...name.split('/')), 'utf8'), 'long');
  });
});

describe('links inside --out are never followed (§9.3)', () => {
  let victim: string;
  let hardVictim: string;
  before(() => {
    // Targets outside --out; `src/` is outside it too (the arena's tree check skips it, so check by hand).
    victim = path.join(arena.src, 'victim.txt');
    hardVictim = path.join(arena.src, 'hard-victim.txt');
    writeFileSync(victim, 'precious');
    writeFileSync(hardVictim, 'precious too');
    symlinkSync(arena.outside, path.join(arena.out, 'link-out'));
    symlinkSync(victim, path.join(arena.out, 'final-link.bin'));
    symlinkSync(path.join(arena.outside, 'created-through-link.bin'), path.join(arena.out, 'dangling.bin'));
    mkdirSync(path.join(arena.out, 'realdir'));
    symlinkSync(path.join(arena.out, 'realdir'), path.join(arena.out, 'inner-link'));
    mkdirSync(path.join(arena.out, 'a-dir.bin'));
    linkSync(hardVictim, path.join(arena.out, 'hard.bin'));
    execFileSync('mkfifo', [path.join(arena.out, 'fifo.bin')]);
  });

  const cases: HostileCase[] = [
    { name: 'a directory symlink to outside, as the parent', expect: 'BAD_NAME', run: openName('link-out/x.bin') },
    { name: 'a directory symlink to outside, deeper', expect: 'BAD_NAME', run: openName('link-out/sub/x.bin') },
    { name: 'a symlink to a file outside, as the final name', expect: 'BAD_NAME', run: openName('final-link.bin') },
    { name: 'a dangling symlink pointing outside, as the final name', expect: 'BAD_NAME', run: openName('dangling.bin') },
    { name: 'a symlink to a directory inside --out, as the parent', expect: 'BAD_NAME', run: openName('inner-link/x.bin') },
    { name: 'an existing directory as the final name', expect: 'BAD_NAME', run: openName('a-dir.bin') },
    { name: 'a FIFO as the final name (never opened)', expect: 'BAD_NAME', run: openName('fifo.bin') },
  ];
  for (const hc of cases) {
    it(caseTitle(hc), async () => {
      await runCase(arena, hc);
      assert.equal(readFileSync(victim, 'utf8'), 'precious');
    });
  }
  itServesAfter(() => arena, 'the cases above');

  it('a hard link inside --out as the final name is replaced, its other name untouched', async () => {
    const data = Buffer.from('replacement through a hard link');
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      await c.upload('hard.bin', data);
    } finally {
      c.destroy();
    }
    assert.deepEqual(readFileSync(path.join(arena.out, 'hard.bin')), data);
    assert.equal(readFileSync(hardVictim, 'utf8'), 'precious too', 'the upload replaced the name, it did not write through the link');
    await assertServesRaw(arena, 'after the hard link');
  });

  after(() => {
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    assert.equal(existsSync(path.join(arena.outside, 'created-through-link.bin')), false);
  });
});

describe('a directory swapped for a symlink between OPEN and END (§9.3)', () => {
  // The upload's directories exist (an earlier upload made them; an OPEN makes none, §9.3) and
  // are checked at OPEN; then a local attacker replaces one of them by a symlink to a look-alike
  // tree outside --out. END must refuse (BAD_NAME) and nothing may appear in that tree or under
  // the final name.
  const swaps: ReadonlyArray<readonly [string, string, string]> = [
    ['the parent directory', 'swap1/f.bin', 'swap1'],
    ['a directory two levels up', 'swap2/inner/f.bin', 'swap2'],
    ['the middle of a deep path', 'swap3/a/b/c/f.bin', 'swap3/a'],
  ];
  for (const [label, name, swapped] of swaps) {
    it(`${label} (${swapped} in ${name}) → BAD_NAME at END, nothing outside`, async () => {
      const target = path.join(arena.src, `swap-target-${swapped.replace(/\//g, '_')}`);
      const rest = path.relative(swapped, path.dirname(name));
      mkdirSync(path.join(target, rest), { recursive: true });
      const data = Buffer.alloc(300_000, 0x42);
      mkdirSync(path.join(arena.out, path.dirname(name)), { recursive: true });
      await runCase(
        arena,
        {
          name: label,
          expect: 'BAD_NAME',
          run: async (c) => {
            assert.ok(await c.handshake());
            assert.equal(await c.open(name, data.length), 0);
            await c.write(c.seal(dataBody(0, data.subarray(0, 100_000))));
            // Swap while the upload is open: the real directory moves away, a link takes its place.
            const dir = path.join(arena.out, swapped);
            renameSync(dir, `${dir}.orig`);
            symlinkSync(target, dir);
            await c.write(c.seal(dataBody(100_000, data.subarray(100_000))), c.sealFrame({ type: 'END', sha256: sha256(data) }));
            return c.outcome();
          },
        },
        'send',
      );
      assert.equal(existsSync(path.join(target, path.relative(swapped, name))), false, 'nothing written through the link');
      assert.equal(existsSync(path.join(arena.out, `${swapped}.orig`, path.relative(swapped, name))), false, 'no final file');
    });
  }

  it('the same upload after the link is removed again: published inside --out only', async () => {
    const name = 'swap1/f.bin';
    const data = Buffer.alloc(300_000, 0x42);
    renameSync(path.join(arena.out, 'swap1'), path.join(arena.src, 'swap1-link-moved-away'));
    renameSync(path.join(arena.out, 'swap1.orig'), path.join(arena.out, 'swap1'));
    const c = await RawClient.connect(arena.daemon.port);
    try {
      assert.ok(await c.handshake());
      await c.upload(name, data);
    } catch (err) {
      assert.fail(err instanceof HandshakeRefused ? `${err.outcome.code}: ${err.outcome.message}` : String(err));
    } finally {
      c.destroy();
    }
    assert.deepEqual(readFileSync(path.join(arena.out, name)), data);
  });
});
