// Link targets a client may ask for (spec §9.8, recv/link-target.ts): relative, `..` only at the
// start and no more of them than the link's directory is deep, the rest as names are.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import { validateLinkTarget } from '../src/recv/link-target.js';

const allowed: [string, string][] = [
  ['l', 'f'],
  ['l', './f'],
  ['a/l', '../f'],
  ['a/b/l', '../../x/y'],
  ['a/l', '..'],
  ['a/l', 'sub/dir/file name.txt'],
  ['a/l', 'ünïcødé'],
];

const refused: [string, string, string][] = [
  ['l', '/etc/passwd', 'absolute'],
  ['l', '..', 'out of the output directory'],
  ['a/l', '../../x', 'out of the output directory'],
  ['a/l', 'x/../y', '".." after a name'],
  // Through another link: b/l1 → . would make ../b/l1/.. climb one level more than it reads.
  ['a/l', '../b/l1/..', '".." after a name'],
  ['a/l', 'x//y', 'empty component'],
  ['a/l', 'x/', 'empty component'],
  ['a/b/l', '../../.stx/partials', 'reserved'],
  ['a/l', '../.STX', 'reserved'],
  ['l', 'a\\b', 'backslash'],
  ['l', 'a\u0000b', 'control'],
  ['l', 'e\u0301', 'NFC'],
  ['l', 'x'.repeat(256), 'longer than 255'],
];

it('accepts targets that stay inside the output directory', () => {
  for (const [name, target] of allowed) assert.doesNotThrow(() => validateLinkTarget(name.split('/'), target), `${name} → ${target}`);
});

it(`refuses ${refused.length} targets with BAD_NAME, each for its reason`, () => {
  for (const [name, target, reason] of refused) {
    assert.throws(
      () => validateLinkTarget(name.split('/'), target),
      (err: unknown) => err instanceof StxError && err.code === 'BAD_NAME' && err.message.includes(reason),
      `${name} → ${JSON.stringify(target)} should be refused for "${reason}"`,
    );
  }
});
