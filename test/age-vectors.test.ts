// The age project's test kit (test/vectors/age/README.md): every X25519 vector is opened with
// openAge, fed in small pieces, and must end as its `expect:` says: success with the right
// plaintext, or the typed failure of the right stage, having released exactly the plaintext the
// vector's `payload:` hash covers (chunks before a payload failure, nothing else).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { inflateSync } from 'node:zlib';
import { AgeIntegrityError, AgeKeyError, openAge, parseAgeIdentity } from '../src/transfer/age.js';
import { TEST_VECTORS_DIR } from './support/paths.js';

const DIR = path.join(TEST_VECTORS_DIR, 'age', 'testdata');
/** Piece size the file is fed in, so that chunk and header boundaries fall inside pieces. */
const PIECE_BYTES = 4099;

interface Vector {
  readonly expect: string;
  readonly payload: string | undefined;
  readonly identities: readonly string[];
  readonly file: Buffer;
}

function readVector(name: string): Vector {
  const raw = readFileSync(path.join(DIR, name));
  const split = raw.indexOf('\n\n');
  assert.ok(split > 0, `${name}: no blank line after the vector header`);
  const fields = raw
    .subarray(0, split)
    .toString('utf8')
    .split('\n')
    .map((line) => {
      const at = line.indexOf(': ');
      return [line.slice(0, at), line.slice(at + 2)] as const;
    });
  const get = (key: string): string[] => fields.filter(([k]) => k === key).map(([, v]) => v);
  const body = raw.subarray(split + 2);
  return {
    expect: get('expect')[0] ?? '',
    payload: get('payload')[0],
    identities: get('identity'),
    file: get('compressed')[0] === 'zlib' ? inflateSync(body) : body,
  };
}

function* pieces(bytes: Buffer): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += PIECE_BYTES) yield bytes.subarray(at, at + PIECE_BYTES);
}

/** What openAge made of the file: the released plaintext's SHA-256 and the error, if any. */
async function run(v: Vector): Promise<{ sha256: string; error: unknown }> {
  const hash = createHash('sha256');
  try {
    const opened = await openAge(v.identities.map(parseAgeIdentity), pieces(v.file));
    for await (const chunk of opened.plaintext) hash.update(chunk);
    return { sha256: hash.digest('hex'), error: null };
  } catch (error) {
    return { sha256: hash.digest('hex'), error };
  }
}

const names = readdirSync(DIR).sort();

describe('age test kit (C2SP/CCTV) vectors', () => {
  it('the directory holds the 67 X25519 vectors', () => {
    assert.equal(names.length, 67);
  });

  for (const name of names) {
    it(name, async () => {
      const v = readVector(name);
      const { sha256, error } = await run(v);
      switch (v.expect) {
        case 'success':
          assert.equal(error, null);
          assert.equal(sha256, v.payload);
          break;
        case 'no match':
          assert.ok(error instanceof AgeKeyError, String(error));
          assert.equal(error.problem, 'no-match');
          assert.equal(error.code, 'LOCAL_FILE');
          break;
        case 'HMAC failure':
        case 'header failure':
        case 'payload failure': {
          assert.ok(error instanceof AgeIntegrityError, String(error));
          assert.equal(error.code, 'INTEGRITY_FAILED');
          const stage = { 'HMAC failure': 'hmac', 'header failure': 'header', 'payload failure': 'payload' }[v.expect];
          assert.equal(error.stage, stage, error.message);
          if (v.payload !== undefined) assert.equal(sha256, v.payload, 'plaintext released before the failure');
          break;
        }
        default:
          assert.fail(`${name}: unknown expect "${v.expect}"`);
      }
    });
  }
});
