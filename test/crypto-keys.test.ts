// Key files, fingerprints, authorized keys and known hosts (spec/PROTOCOL.md §5, §7.4).
import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CryptoError } from '../src/proto/errors.js';
import { authorizedKeyLine, fingerprint, identityFingerprint, okpPublicRaw, parseAuthorizedKeys, serverKeySpki } from '../src/crypto/index.js';
import { checkServerKey, recordServerKey, generateIdentity, hostPortKey, loadIdentity, loadOrCreateServerKey, saveIdentity } from '../src/keystore/index.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stx-crypto-keys-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

describe('fingerprints (§5)', () => {
  test('SHA256: + unpadded standard base64 of SHA-256', () => {
    // SHA-256 of the empty string is e3b0c442…b855, base64 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.
    assert.equal(fingerprint(Buffer.alloc(0)), 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU');
  });

  test('identity fingerprint is over the Ed25519 DER SubjectPublicKeyInfo, from raw key or KeyObject', () => {
    const key = generateIdentity();
    const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const expected = 'SHA256:' + createHash('sha256').update(spki).digest('base64').replace(/=+$/, '');
    assert.equal(identityFingerprint(okpPublicRaw('ed25519', key)), expected);
    assert.equal(identityFingerprint(key), expected);
  });
});

describe('server key file', () => {
  test('created once with 0600 in a 0700 directory, then loaded', async () => {
    const path = join(dir, 'server', 'nested', 'key.pem');
    const first = await loadOrCreateServerKey(path);
    assert.equal(first.created, true);
    assert.equal(first.key.asymmetricKeyDetails?.modulusLength, 3072);
    assert.equal(await mode(path), 0o600);
    assert.equal(await mode(join(dir, 'server', 'nested')), 0o700);
    assert.match(await readFile(path, 'ascii'), /^-----BEGIN PRIVATE KEY-----\n/);
    const second = await loadOrCreateServerKey(path);
    assert.equal(second.created, false);
    assert.deepEqual(serverKeySpki(second.key), serverKeySpki(first.key));
  });

  test('a file that is not an RSA key is an error naming the file', async () => {
    const path = join(dir, 'ed-as-server.pem');
    await saveIdentity(path, generateIdentity());
    await assert.rejects(loadOrCreateServerKey(path), (err: unknown) => err instanceof Error && err.message.includes(path));
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'not a key');
    await assert.rejects(loadOrCreateServerKey(junk), (err: unknown) => err instanceof Error && err.message.includes(junk));
  });
});

describe('identity file', () => {
  test('save (0600) and load round trip; no overwrite', async () => {
    const path = join(dir, 'id', 'identity.pem');
    const key = generateIdentity();
    await saveIdentity(path, key);
    assert.equal(await mode(path), 0o600);
    const loaded = await loadIdentity(path);
    assert.deepEqual(okpPublicRaw('ed25519', loaded), okpPublicRaw('ed25519', key));
    await assert.rejects(saveIdentity(path, generateIdentity()), /already exists/);
    assert.deepEqual(okpPublicRaw('ed25519', await loadIdentity(path)), okpPublicRaw('ed25519', key));
  });
});

describe('authorized keys (§7.4)', () => {
  test('line round trip, comments and blank lines', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    const lineA = authorizedKeyLine(a, 'alice@laptop');
    assert.match(lineA, /^stx-ed25519 [A-Za-z0-9+/]{43}= alice@laptop$/);
    assert.equal(authorizedKeyLine(okpPublicRaw('ed25519', b)).split(' ').length, 2);
    const text = `# team keys\n\n${lineA}\r\n   \n${authorizedKeyLine(b)}\n`;
    assert.deepEqual(parseAuthorizedKeys(text), new Set([identityFingerprint(a), identityFingerprint(b)]));
    assert.deepEqual(parseAuthorizedKeys(''), new Set());
  });

  test('malformed lines are errors naming the line', () => {
    const good = authorizedKeyLine(generateIdentity());
    const b64 = good.split(' ')[1] ?? '';
    for (const [bad, why] of [
      ['ssh-ed25519 ' + b64, 'wrong type'],
      ['stx-ed25519', 'no key'],
      ['stx-ed25519 ' + Buffer.alloc(31).toString('base64'), '31 bytes'],
      ['stx-ed25519 ' + b64.replace('=', ''), 'unpadded base64'],
      ['stx-ed25519 ' + b64.slice(0, 10) + '!' + b64.slice(11), 'not base64'],
    ] as const) {
      assert.throws(() => parseAuthorizedKeys(`${good}\n# c\n${bad}\n`, 'auth.txt'), /^Error: auth\.txt:3: /, why);
    }
  });
});

describe('known hosts (§5)', () => {
  const fpA = fingerprint(Buffer.from('server A'));
  const fpB = fingerprint(Buffer.from('server B'));

  test('first use is new and writes nothing; once recorded (0600 file, 0700 dir) it is known', async () => {
    const file = join(dir, 'kh1', 'sub', 'known_hosts');
    assert.deepEqual(await checkServerKey({ file, hostPort: 'example.org:4433', fingerprint: fpA }), { status: 'new' });
    await assert.rejects(readFile(file, 'utf8'), { code: 'ENOENT' }, 'checking records nothing: the server has proven nothing yet');
    await recordServerKey(file, 'example.org:4433', fpA);
    assert.equal(await readFile(file, 'utf8'), `example.org:4433 ${fpA}\n`);
    assert.equal(await mode(file), 0o600);
    assert.equal(await mode(join(dir, 'kh1', 'sub')), 0o700);
    assert.deepEqual(await checkServerKey({ file, hostPort: 'example.org:4433', fingerprint: fpA }), { status: 'known' });
    assert.deepEqual(await checkServerKey({ file, hostPort: 'example.org:4434', fingerprint: fpB }), { status: 'new' });
  });

  test('a changed key is SERVER_KEY_MISMATCH naming both fingerprints and file:line', async () => {
    const file = join(dir, 'kh2');
    await writeFile(file, `# mine\nother:1 ${fpB}\nexample.org:4433 ${fpA}   # comment\n`);
    await assert.rejects(checkServerKey({ file, hostPort: 'example.org:4433', fingerprint: fpB }), (err: unknown) => {
      assert.ok(err instanceof CryptoError);
      assert.equal(err.code, 'SERVER_KEY_MISMATCH');
      assert.ok(err.message.includes(fpA) && err.message.includes(fpB), err.message);
      assert.ok(err.message.includes(`${file}:3`), err.message);
      return true;
    });
    assert.equal(await readFile(file, 'utf8'), `# mine\nother:1 ${fpB}\nexample.org:4433 ${fpA}   # comment\n`, 'file untouched');
  });

  test('appending to a file without a final newline keeps lines apart', async () => {
    const file = join(dir, 'kh3');
    await writeFile(file, `a:1 ${fpA}`);
    await recordServerKey(file, 'b:2', fpB);
    assert.equal(await readFile(file, 'utf8'), `a:1 ${fpA}\nb:2 ${fpB}\n`);
  });

  test('a malformed line is an error, not a reason to trust anew', async () => {
    const file = join(dir, 'kh4');
    await writeFile(file, `example.org:4433 SHA256:garbage\n`);
    await assert.rejects(checkServerKey({ file, hostPort: 'example.org:4433', fingerprint: fpA }), new RegExp(`${file}:1`));
  });

  test('a pin must match and leaves the file alone', async () => {
    const file = join(dir, 'kh5', 'known_hosts');
    assert.deepEqual(await checkServerKey({ file, hostPort: 'h:1', fingerprint: fpA, pinned: fpA }), { status: 'pinned' });
    await assert.rejects(stat(file), { code: 'ENOENT' });
    await assert.rejects(checkServerKey({ file, hostPort: 'h:1', fingerprint: fpA, pinned: fpB }), (err: unknown) => {
      assert.ok(err instanceof CryptoError && err.code === 'SERVER_KEY_MISMATCH');
      assert.ok(err.message.includes(fpA) && err.message.includes(fpB));
      return true;
    });
  });

  test('hostPortKey: lower case, IPv6 in brackets', () => {
    assert.equal(hostPortKey('Example.ORG', 4433), 'example.org:4433');
    assert.equal(hostPortKey('::1', 4433), '[::1]:4433');
    assert.equal(hostPortKey('[FE80::1]', 1), '[fe80::1]:1');
    assert.equal(hostPortKey('127.0.0.1', 22), '127.0.0.1:22');
  });
});
