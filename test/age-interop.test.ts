// Interoperability of src/transfer/age.ts with the two age implementations by age's author:
// the `age` command line tool (Debian package `age`, Go) and the `age-encryption` npm package
// (typage). Files we seal must decrypt with theirs to the original bytes, theirs must open with
// ours, and the keys travel both ways (age-keygen's key file, typage's identities).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Decrypter, Encrypter, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { ensureTools } from '../bench/lib/apt.js';
import { createAgeSealer, generateAgeIdentity, openAge, openAgeBytes, parseAgeIdentity, parseAgeKeyFile, type AgeIdentity } from '../src/transfer/age.js';

const execFileAsync = promisify(execFile);
const AGE = '/usr/bin/age';
const AGE_KEYGEN = '/usr/bin/age-keygen';
/** Plaintext sizes around the 64 KiB STREAM chunk, the empty file, and a larger odd one. */
const SIZES = [0, 1, 65535, 65536, 65537, 1024 * 1024 + 3];
const RUN_TIMEOUT_MS = 60_000;
const MAX_OUTPUT_BYTES = 4 * 1024 * 1024;

let dir = '';
/** Ours: made by generateAgeIdentity. Theirs: made by age-keygen. */
let oursKeyFile = '';
let theirsKeyFile = '';
let ours: { identity: string; recipient: string };
let theirs: { identity: AgeIdentity; recipient: string };

async function run(file: string, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync(file, args, { timeout: RUN_TIMEOUT_MS, encoding: 'utf8' });
  return stdout;
}

/** Seals `plain` in one pass, as a caller would with bytesAt over the whole file. */
function sealAll(plain: Buffer, recipients: readonly string[]): Buffer {
  const { sealer } = createAgeSealer(recipients, plain.length);
  return sealer.bytesAt(0, sealer.size, plain);
}

/** `age -d -i keyFile` of `sealed`, read from a file as a user would; the plaintext from its stdout. */
async function ageDecrypt(sealed: Buffer, keyFile: string, name: string): Promise<Buffer> {
  const inFile = path.join(dir, `${name}.age`);
  await writeFile(inFile, sealed);
  const { stdout } = await execFileAsync(AGE, ['-d', '-i', keyFile, inFile], {
    timeout: RUN_TIMEOUT_MS,
    encoding: 'buffer',
    maxBuffer: MAX_OUTPUT_BYTES,
  });
  return stdout;
}

async function ageEncrypt(plain: Buffer, recipients: readonly string[], name: string): Promise<Buffer> {
  const inFile = path.join(dir, `${name}.plain`);
  const outFile = path.join(dir, `${name}.age`);
  await writeFile(inFile, plain);
  await run(AGE, [...recipients.flatMap((r) => ['-r', r]), '-o', outFile, inFile]);
  return readFile(outFile);
}

before(async () => {
  const missing = await ensureTools(
    [
      { path: AGE, pkg: 'age' },
      { path: AGE_KEYGEN, pkg: 'age' },
    ],
    'test/age-interop.test.ts',
  );
  if (missing !== null) assert.fail(`the age interoperability tests need the age tool: ${missing} (apt-get install age)`);
  dir = await mkdtemp(path.join(tmpdir(), 'stx-age-'));
  const generated = generateAgeIdentity();
  ours = generated;
  oursKeyFile = path.join(dir, 'ours.key');
  await writeFile(oursKeyFile, generated.keyFile, { mode: 0o600 });
  theirsKeyFile = path.join(dir, 'theirs.key');
  await run(AGE_KEYGEN, ['-o', theirsKeyFile]);
  const [identity] = parseAgeKeyFile(await readFile(theirsKeyFile, 'utf8'));
  assert.ok(identity !== undefined);
  theirs = { identity, recipient: (await run(AGE_KEYGEN, ['-y', theirsKeyFile])).trim() };
});

after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

describe('age keys', () => {
  it('age-keygen -y reads our key file and derives our recipient', async () => {
    assert.match(ours.identity, /^AGE-SECRET-KEY-1[0-9A-Z]{58}$/);
    assert.match(ours.recipient, /^age1[0-9a-z]{58}$/);
    assert.equal((await run(AGE_KEYGEN, ['-y', oursKeyFile])).trim(), ours.recipient);
  });

  it("our key file has age-keygen's comment lines", async () => {
    const lines = (await readFile(oursKeyFile, 'utf8')).split('\n');
    assert.match(lines[0] ?? '', /^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.equal(lines[1], `# public key: ${ours.recipient}`);
    assert.equal(lines[2], ours.identity);
  });

  it("typage's identities and recipients parse, and give the same recipient", async () => {
    const identity = await generateX25519Identity();
    const recipient = await identityToRecipient(identity);
    assert.deepEqual(parseAgeIdentity(identity).recipient, parseAgeIdentity(identity).recipient);
    assert.equal(await identityToRecipient(ours.identity), ours.recipient);
    const sealed = sealAll(Buffer.from('to typage'), [recipient]);
    const d = new Decrypter();
    d.addIdentity(identity);
    assert.equal(Buffer.from(await d.decrypt(sealed)).toString(), 'to typage');
  });
});

describe('sealed by stx, opened by the age tool', () => {
  for (const size of SIZES) {
    it(`${size} bytes, two recipients: age -d opens it with either identity`, async () => {
      const plain = randomBytes(size);
      const sealed = sealAll(plain, [ours.recipient, theirs.recipient]);
      assert.deepEqual(await ageDecrypt(sealed, oursKeyFile, `ours-${size}`), plain);
      assert.deepEqual(await ageDecrypt(sealed, theirsKeyFile, `theirs-${size}`), plain);
    });
  }

  it('five recipients: age -d opens it with the last one', async () => {
    const others = Array.from({ length: 4 }, () => generateAgeIdentity().recipient);
    const plain = randomBytes(70_000);
    const sealed = sealAll(plain, [...others, ours.recipient]);
    assert.deepEqual(await ageDecrypt(sealed, oursKeyFile, 'five'), plain);
  });
});

describe('encrypted by the age tool, opened by stx', () => {
  const ourId = (): AgeIdentity => parseAgeIdentity(ours.identity);
  for (const size of SIZES) {
    it(`${size} bytes: age -r, then openAge`, async () => {
      const plain = randomBytes(size);
      const sealed = await ageEncrypt(plain, [ours.recipient], `to-ours-${size}`);
      assert.deepEqual(await openAgeBytes(ourId(), sealed), plain);
    });
  }

  it('two recipients: each identity opens it, and an age-keygen key file works', async () => {
    const plain = randomBytes(200_000);
    const sealed = await ageEncrypt(plain, [theirs.recipient, ours.recipient], 'to-both');
    assert.deepEqual(await openAgeBytes(ourId(), sealed), plain);
    assert.deepEqual(await openAgeBytes(theirs.identity, sealed), plain);
    assert.deepEqual(await openAgeBytes(parseAgeKeyFile(await readFile(oursKeyFile, 'utf8')), sealed), plain);
  });

  it('openAge reads a file stream as it arrives', async () => {
    const plain = randomBytes(3 * 65536 + 11);
    await ageEncrypt(plain, [ours.recipient], 'streamed');
    const opened = await openAge(parseAgeIdentity(ours.identity), createReadStream(path.join(dir, 'streamed.age'), { highWaterMark: 5000 }));
    const parts: Buffer[] = [];
    for await (const chunk of opened.plaintext) parts.push(chunk);
    assert.deepEqual(parts.map((p) => p.length), [65536, 65536, 65536, 11]);
    assert.deepEqual(Buffer.concat(parts), plain);
  });
});

describe('the age-encryption npm package (typage)', () => {
  for (const size of [0, 65536, 65537, 300_001]) {
    it(`${size} bytes: sealed by stx, decrypted by typage`, async () => {
      const plain = randomBytes(size);
      const d = new Decrypter();
      d.addIdentity(ours.identity);
      assert.deepEqual(Buffer.from(await d.decrypt(sealAll(plain, [theirs.recipient, ours.recipient]))), plain);
    });

    it(`${size} bytes: encrypted by typage, opened by stx`, async () => {
      const plain = randomBytes(size);
      const e = new Encrypter();
      e.addRecipient(theirs.recipient);
      e.addRecipient(ours.recipient);
      const sealed = Buffer.from(await e.encrypt(plain));
      assert.deepEqual(await openAgeBytes(parseAgeIdentity(ours.identity), sealed), plain);
    });
  }
});
