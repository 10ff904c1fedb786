// A new X25519 or Ed25519 key's public half comes out of its generation (crypto/raw-keys.ts
// okpGenerate): exporting the generated KeyObject hung stx-recv for good when a collection
// finalized the generation job while the export held the key's lock (a self-deadlock inside
// Node 20). Each handshake makes one such key, so thousands in a row must not stop the process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createPublicKey, diffieHellman, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { okpGenerate, okpPublicRaw } from '../src/crypto/raw-keys.js';
import { generateIdentity } from '../src/keystore/keys.js';
import { x25519KeyPair } from '../src/crypto/x25519.js';

/** Rounds of key, then its raw public key, as a handshake does: a plain generateKeyPairSync loop hung within 3,000. */
const ROUNDS = 20_000;

describe('okpGenerate', () => {
  it(`${ROUNDS} handshake key pairs in one process, then it exits (no deadlock in the collector)`, () => {
    const x25519 = fileURLToPath(new URL('../src/crypto/x25519.js', import.meta.url));
    const script = `import { x25519KeyPair } from ${JSON.stringify(x25519)};
      let last = '';
      for (let i = 0; i < ${ROUNDS}; i++) last = x25519KeyPair().publicKey.toString('hex');
      console.log('done', last.length);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(child.signal, null, `the loop did not finish within 120 s (killed by ${child.signal ?? ''}): hung`);
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), 'done 64');
  });

  it('makes working, distinct keys of both curves', () => {
    const a = x25519KeyPair();
    const b = x25519KeyPair();
    assert.notDeepEqual(a.publicKey, b.publicKey);
    const ab = diffieHellman({ privateKey: a.privateKey, publicKey: createPublicKey(b.privateKey) });
    const ba = diffieHellman({ privateKey: b.privateKey, publicKey: createPublicKey(a.privateKey) });
    assert.deepEqual(ab, ba);
    assert.deepEqual(a.publicKey, okpPublicRaw('x25519', a.privateKey), 'the public key given is the private key\'s');
    const ed = okpGenerate('ed25519');
    assert.deepEqual(ed.publicKey, okpPublicRaw('ed25519', ed.privateKey));
    const id = generateIdentity();
    assert.equal(id.asymmetricKeyType, 'ed25519');
    const message = Buffer.from('stx');
    assert.ok(verify(null, message, createPublicKey(id), sign(null, message, id)));
    assert.notDeepEqual(okpPublicRaw('ed25519', generateIdentity()), okpPublicRaw('ed25519', id));
  });
});
