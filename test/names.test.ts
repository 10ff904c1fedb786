// §9.3: hostile names are refused with BAD_NAME; legal names, however odd, land inside the
// output directory; no symbolic link is ever followed; nothing is created outside.
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { UploadError } from '../src/proto/errors.js';
import { MAX_NAME_COMPONENTS } from '../src/proto/limits.js';
import { validateAnyName, validateName } from '../src/recv/names.js';
import { resolveInside } from '../src/storage/local/paths.js';

function isBadName(err: unknown): boolean {
  return err instanceof UploadError && err.code === 'BAD_NAME';
}

const HOSTILE: ReadonlyArray<readonly [string, string]> = [
  ['', 'empty'],
  ['/', 'root'],
  ['/etc/passwd', 'absolute'],
  ['//x', 'double-slash absolute'],
  ['/./x', 'absolute with dot'],
  ['..', 'parent'],
  ['.', 'current'],
  ['../x', 'traversal'],
  ['a/../../x', 'deep traversal'],
  ['a/..', 'trailing parent'],
  ['a/./b', 'inner dot'],
  ['./a', 'leading dot'],
  ['a/', 'trailing slash'],
  ['a//b', 'empty component'],
  ['C:\\x', 'drive letter with backslash'],
  ['a\\..\\b', 'backslash traversal'],
  ['..\\x', 'backslash parent'],
  ['\\\\server\\share', 'UNC'],
  ['bad\uFFFDname', 'U+FFFD (how invalid UTF-8 arrives)'],
  ['.stx', 'reserved directory'],
  ['.stx/partials/x.part', 'reserved directory contents'],
  ['a/.stx/y', 'reserved directory below'],
  ['.stxfoo', 'reserved prefix'],
  ['a/.stx', 'reserved final component'],
  // A case-insensitive filesystem (casefold ext4, exFAT, a backend on one) would map these onto .stx.
  ['.STX', 'reserved name in capitals'],
  ['.Stx/x', 'reserved name, mixed case'],
  ['a/.\u017ftx', 'reserved name with LONG S (case-folds to s)'],
  ['.sTX-partials', 'reserved prefix, mixed case'],
  ['x\u2028y', 'LINE SEPARATOR'],
  ['x\u2029y', 'PARAGRAPH SEPARATOR'],
  ['evil\u202egpj.exe', 'RIGHT-TO-LEFT OVERRIDE'],
  ['x\u2066y\u2069', 'bidi isolates'],
  ['x\u200fy', 'RIGHT-TO-LEFT MARK'],
  ['x\u061cy', 'ARABIC LETTER MARK'],
  ['x\ufdd0', 'noncharacter U+FDD0'],
  ['x\uffff', 'noncharacter U+FFFF'],
  ['x\u{1fffe}', 'noncharacter U+1FFFE'],
  ['x\u0000y', 'NUL'],
  ['x\ny', 'newline'],
  ['x\ry', 'carriage return'],
  ['x\ty', 'tab'],
  ['\u001b[31mred', 'escape sequence'],
  ['x\u007f', 'DEL'],
  ['x\u0085', 'C1 NEL'],
  ['x\u009b', 'C1 CSI'],
  ['e\u0301', 'NFD é'],
  ['cafe\u0301/x', 'NFD component'],
  ['\u212b', 'Angstrom sign (NFC maps it to Å)'],
  ['x\ud800', 'lone high surrogate'],
  ['x\udc00y', 'lone low surrogate'],
  ['a'.repeat(256), 'component of 256 bytes'],
  ['é'.repeat(128), 'component of 256 UTF-8 bytes'],
  [`${'a'.repeat(200)}/`.repeat(21) + 'a', 'name over 4096 bytes'],
];

// Legal literal names: they only look like traversal, or are merely unusual.
const LEGAL: readonly string[] = [
  '%2e%2e/x',
  '%2e%2e%2fx',
  '\u2025/x',
  '\uff0e\uff0e/x',
  '\u2024\u2024/y',
  '..x',
  'x..',
  '...',
  'a/...',
  ' ../x',
  'C:/x',
  '~/x',
  '$HOME/x',
  'x.stx',
  'stx/stxx',
  '.hidden',
  'a'.repeat(255),
  'é'.repeat(127),
  '😀/x',
  '\u00e9t\u00e9',
  'a b/c d',
  'deep/er/and/deeper/file.txt',
];

describe('validateName', () => {
  it(`refuses ${HOSTILE.length} hostile names with BAD_NAME`, () => {
    assert.ok(HOSTILE.length >= 30);
    for (const [name, why] of HOSTILE) {
      assert.throws(() => validateName(name), isBadName, `${why}: ${JSON.stringify(name)}`);
    }
  });

  it('explains the refusal', () => {
    assert.throws(() => validateName('a/../b'), (err: unknown) => isBadName(err) && err instanceof Error && err.message.includes('".."'));
    assert.throws(() => validateName('e\u0301'), (err: unknown) => err instanceof Error && /NFC/.test(err.message));
  });

  it('accepts legal names and returns their components', () => {
    for (const name of LEGAL) assert.deepEqual(validateName(name), name.split('/'), JSON.stringify(name));
  });

  it('takes exactly 4096 bytes and 255-byte components', () => {
    const name = `${'a'.repeat(255)}/`.repeat(15) + `${'c'.repeat(254)}/d`;
    assert.equal(Buffer.byteLength(name), 4096);
    assert.equal(validateName(name).length, 17);
    assert.throws(() => validateName(`${name}d`), isBadName);
  });

  it(`takes ${MAX_NAME_COMPONENTS} components and refuses ${MAX_NAME_COMPONENTS + 1} (§9.3, 1.3)`, () => {
    const deepest = Array.from({ length: MAX_NAME_COMPONENTS }, () => 'a').join('/');
    assert.equal(validateName(deepest).length, MAX_NAME_COMPONENTS);
    assert.throws(() => validateName(`${deepest}/b`), (err: unknown) => isBadName(err) && err instanceof Error && err.message.includes('components'));
    // The issue's ~2,000-component chain of one-letter directories.
    assert.throws(() => validateName('a/'.repeat(2000) + 'f'), isBadName);
  });
});

describe('validateName of printable ASCII (its fast path)', () => {
  const outcome = (check: (n: string) => string[], name: string): string => {
    try {
      return `ok ${JSON.stringify(check(name))}`;
    } catch (err) {
      return isBadName(err) && err instanceof Error ? `BAD_NAME ${err.message}` : `other ${String(err)}`;
    }
  };
  const same = (name: string): void => assert.equal(outcome(validateName, name), outcome(validateAnyName, name), JSON.stringify(name));

  it('answers as the check of any name does, reason included: hostile and legal names, and the edges', () => {
    for (const [name] of HOSTILE) same(name);
    for (const name of ['a', 'a/b/c.txt', '.stx', '.STX/x', 'a/.Stx-put', '.stxfoo', 'x/.st', '.s', '..a', 'a..', ' a ', '~/x', 'a//b', 'a/', '/a']) same(name);
    same('a'.repeat(4096));
    same('a'.repeat(4097));
    same('c'.repeat(255));
    same('c'.repeat(256));
    same(Array.from({ length: MAX_NAME_COMPONENTS }, () => 'd').join('/'));
    same(Array.from({ length: MAX_NAME_COMPONENTS + 1 }, () => 'd').join('/'));
  });

  it('answers as the check of any name does for random names of ASCII, seeded', () => {
    const piece = fc.constantFrom('a', 'Z', '.', '..', '/', 's', 'S', 't', 'T', 'x', 'X', '.stx', '.STX', ' ', '~', '\\', '\x7f', '\t', '-', '0');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 24 }), (pieces) => same(pieces.join(''))),
      { seed: 0x5718, numRuns: 2000 },
    );
  });
});

describe('resolveInside', () => {
  let root: string;
  let out: string;
  let outside: string;

  before(async () => {
    root = await realpath(await mkdtemp(path.join(os.tmpdir(), 'stx-names-')));
    out = path.join(root, 'out');
    outside = path.join(root, 'outside');
    await mkdir(out);
    await mkdir(outside);
  });

  after(async () => {
    // Nothing may ever appear next to `out` or inside `outside`.
    assert.deepEqual((await readdir(root)).sort(), ['out', 'outside']);
    assert.deepEqual(await readdir(outside), []);
    await rm(root, { recursive: true, force: true });
  });

  async function assertInside(file: string): Promise<void> {
    const real = await realpath(file);
    assert.ok(real.startsWith(out + path.sep), `${real} is not inside ${out}`);
  }

  it('puts every legal name inside the output directory', async () => {
    for (const name of LEGAL) {
      const file = await resolveInside(out, validateName(name));
      await writeFile(file, 'x', { flag: 'wx' });
      await assertInside(file);
    }
  });

  it('refuses a planted symlink directory pointing outside', async () => {
    await symlink(outside, path.join(out, 'evil'));
    await assert.rejects(resolveInside(out, validateName('evil/x')), isBadName);
    await assert.rejects(resolveInside(out, validateName('evil/new/x')), isBadName);
  });

  it('refuses a symlink deeper in the path', async () => {
    await mkdir(path.join(out, 'real'));
    await symlink(outside, path.join(out, 'real', 'link'));
    await assert.rejects(resolveInside(out, validateName('real/link/x')), isBadName);
  });

  it('refuses a symlink, a dangling symlink or a directory as the final name', async () => {
    await writeFile(path.join(outside, '..', 'outside-target'), 'secret');
    try {
      await symlink(path.join(root, 'outside-target'), path.join(out, 'final-link'));
      await assert.rejects(resolveInside(out, validateName('final-link')), isBadName);
    } finally {
      await rm(path.join(root, 'outside-target'));
    }
    await symlink(path.join(outside, 'missing'), path.join(out, 'dangling'));
    await assert.rejects(resolveInside(out, validateName('dangling')), isBadName);
    await mkdir(path.join(out, 'a-dir'));
    await assert.rejects(resolveInside(out, validateName('a-dir')), isBadName);
  });

  it('refuses a regular file or a link to a directory inside used as a parent', async () => {
    await writeFile(path.join(out, 'plain'), 'x');
    await assert.rejects(resolveInside(out, validateName('plain/x')), isBadName);
    await mkdir(path.join(out, 'inner'));
    await symlink(path.join(out, 'inner'), path.join(out, 'inner-link'));
    await assert.rejects(resolveInside(out, validateName('inner-link/x')), isBadName);
  });

  it('accepts an existing regular file as the final name (replacement is decided later)', async () => {
    await writeFile(path.join(out, 'existing'), 'x');
    assert.equal(await resolveInside(out, validateName('existing')), path.join(out, 'existing'));
  });

  it('creates missing parents with the same result under concurrent calls', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => resolveInside(out, validateName('race/b/c/d/file'))));
    for (const r of results) assert.equal(r, path.join(out, 'race', 'b', 'c', 'd', 'file'));
    assert.ok((await lstat(path.join(out, 'race', 'b', 'c', 'd'))).isDirectory());
  });

  it('never leaves the output directory for names built from dangerous pieces (property)', async () => {
    const piece = fc.constantFrom('a', 'b', '.', '..', '/', '\\', '.stx', '%2e', '\uff0e', '\u2025', 'e\u0301', 'é', '\u0000', '\n', '\ud800', ' ', 'evil');
    const base = path.join(out, 'prop');
    await mkdir(base);
    await symlink(outside, path.join(base, 'evil'));
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 8 }), async (pieces) => {
        const name = pieces.join('');
        let components: string[];
        try {
          components = validateName(name);
        } catch (err) {
          assert.ok(isBadName(err), `unexpected ${String(err)}`);
          return;
        }
        assert.equal(components.join('/'), name);
        let file: string;
        try {
          file = await resolveInside(base, components);
        } catch (err) {
          // A name may collide with a file or directory an earlier run created.
          assert.ok(isBadName(err), `unexpected ${String(err)}`);
          return;
        }
        accepted++;
        assert.ok(file.startsWith(base + path.sep));
        assert.ok(!components.includes('evil') || components.indexOf('evil') > 0);
      }),
      { seed: 0x5717, numRuns: 300 },
    );
    assert.ok(accepted > 0, 'the generator should produce some legal names');
  });
});
