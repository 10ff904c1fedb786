// The client's sealing (src/send/seal.ts, src/transfer/sealed-source.ts) without a server: the
// bytes a SealedSource hands out at any offset are one age file that opens to the plaintext; a
// second Sealing (a restarted client) reading the kept state yields the same bytes; a changed
// file, other recipients or another name get a fresh key; DONE removes the state; stdin sealed as
// a stream opens to its bytes at the 64 KiB chunk edges; recipients files parse as age's.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { UsageError } from '../src/cli/conventions.js';
import { MAX_DATA_CHUNK_BYTES } from '../src/proto/limits.js';
import { AGE_CHUNK_BYTES, AgeKeyError, generateAgeIdentity, openAgeBytes, parseAgeIdentity } from '../src/transfer/age.js';
import { SealedSource, sealedStream } from '../src/transfer/sealed-source.js';
import { ageKeygen, loadAgeIdentities, Sealing, sealRecipients, STATE_MAX_AGE_MS } from '../src/send/seal.js';
import type { DataSource } from '../src/transfer/source.js';

let dir = '';
const me = generateAgeIdentity();
const other = generateAgeIdentity();

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'stx-age-seal-'));
});

after(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

/** Every byte of a source, read chunk by chunk from `from` (as a resumed upload reads). */
async function readAll(source: DataSource, from = 0): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let at = from; at < source.identity.size; ) {
    const chunk = await source.read(at);
    assert.ok(chunk.length > 0, `no bytes at ${at}`);
    parts.push(Buffer.from(chunk));
    at += chunk.length;
  }
  return Buffer.concat(parts);
}

async function sealedBytes(sealing: Sealing, file: string, name: string, from = 0): Promise<{ bytes: Buffer; source: DataSource }> {
  const source = await sealing.open(file, name);
  try {
    return { bytes: await readAll(source, from), source };
  } finally {
    await source.close();
  }
}

describe('sealed files', () => {
  it('any offset, and a restarted client from its kept state, give the same age file', async () => {
    const file = path.join(dir, 'a.bin');
    const plain = randomBytes(3 * 1024 * 1024 + 5);
    await writeFile(file, plain);
    const stateDir = path.join(dir, 'state-a');
    const first = new Sealing([me.recipient], stateDir);
    const { bytes: whole, source } = await sealedBytes(first, file, 'a.bin.age');
    // DATA chunks end at multiples of 1 MiB of the age file, as a plain file's do: the daemon
    // writes page-aligned chunks with O_DIRECT and others through the page cache.
    const ends: number[] = [];
    const reread = await first.open(file, 'a.bin.age');
    try {
      for (let at = 0; at < whole.length; ) ends.push((at += (await reread.read(at)).length));
    } finally {
      await reread.close();
    }
    assert.deepEqual(ends, [1, 2, 3].map((m) => m * MAX_DATA_CHUNK_BYTES).concat(whole.length));
    assert.deepEqual(await openAgeBytes(parseAgeIdentity(me.identity), whole), plain);
    const [kept] = await readdir(stateDir);
    assert.ok(kept !== undefined);
    assert.equal((await stat(path.join(stateDir, kept))).mode & 0o777, 0o600);
    assert.equal((await stat(stateDir)).mode & 0o777, 0o700);

    // A new process: a new Sealing over the same state directory, reading from odd offsets.
    const again = new Sealing([me.recipient], stateDir);
    for (const from of [0, 1, 150, 200_000, 1024 * 1024 + 17, whole.length - 1]) {
      const { bytes } = await sealedBytes(again, file, 'a.bin.age', from);
      assert.ok(bytes.equals(whole.subarray(from)), `bytes from ${from} differ`);
    }
    await first.done(source);
    assert.deepEqual(await readdir(stateDir), []);
  });

  it('a changed file, other recipients or another name get a fresh key', async () => {
    const file = path.join(dir, 'b.bin');
    await writeFile(file, randomBytes(100_000));
    const stateDir = path.join(dir, 'state-b');
    const header = async (sealing: Sealing, name = 'b.bin.age'): Promise<Buffer> => (await sealedBytes(sealing, file, name)).bytes.subarray(0, 200);
    const base = await header(new Sealing([me.recipient], stateDir));
    assert.deepEqual(await header(new Sealing([me.recipient], stateDir)), base);
    assert.notDeepEqual(await header(new Sealing([me.recipient, other.recipient], stateDir)), base);
    assert.notDeepEqual(await header(new Sealing([me.recipient], stateDir), 'c.bin.age'), base);
    // Same size and mtime put back, but the content changed: the ctime tells.
    const now = await header(new Sealing([me.recipient], stateDir));
    const { mtime } = await stat(file);
    await writeFile(file, randomBytes(100_000));
    await utimes(file, mtime, mtime);
    assert.notDeepEqual(await header(new Sealing([me.recipient], stateDir)), now);
  });

  it('kept states older than 30 days are swept when a run starts sealing; newer ones stay', async () => {
    const stateDir = path.join(dir, 'state-old');
    const file = path.join(dir, 'old.bin');
    await writeFile(file, randomBytes(10));
    await mkdir(stateDir, { recursive: true });
    const old = path.join(stateDir, 'old.json');
    const recent = path.join(stateDir, 'recent.json');
    await writeFile(old, '{}');
    await writeFile(recent, '{}');
    const longAgo = new Date(Date.now() - STATE_MAX_AGE_MS - 60_000);
    await utimes(old, longAgo, longAgo);
    const source = await new Sealing([me.recipient], stateDir).open(file, 'old.bin.age');
    await source.close();
    const left = await readdir(stateDir);
    assert.ok(!left.includes('old.json') && left.includes('recent.json') && left.length === 2, left.join(', '));
  });

  it('a file that changes while it is sealed fails the change check, as a plain one does', async () => {
    const file = path.join(dir, 'c.bin');
    await writeFile(file, randomBytes(1000));
    const source = await new Sealing([me.recipient], path.join(dir, 'state-c')).open(file, 'c.bin.age');
    assert.ok(source instanceof SealedSource);
    try {
      await source.checkUnchanged();
      await appendFile(file, 'more');
      await assert.rejects(source.checkUnchanged(), { code: 'LOCAL_FILE' });
    } finally {
      await source.close();
    }
  });
});

describe('sealed streams', () => {
  for (const size of [0, 1, AGE_CHUNK_BYTES, AGE_CHUNK_BYTES + 1, 3 * AGE_CHUNK_BYTES]) {
    it(`${size} bytes in odd pieces open to the same bytes`, async () => {
      const plain = randomBytes(size);
      const pieces: Buffer[] = [];
      for (let at = 0; at < size; at += 7777) pieces.push(plain.subarray(at, at + 7777));
      const parts: Buffer[] = [];
      for await (const chunk of sealedStream(Readable.from(pieces), [me.recipient])) parts.push(chunk as Buffer);
      assert.deepEqual(await openAgeBytes(parseAgeIdentity(me.identity), Buffer.concat(parts)), plain);
    });
  }

  it("an input's error is the sealed stream's error", async () => {
    const failing = new Readable({ read() { this.destroy(new Error('disk gone')); } });
    await assert.rejects(async () => {
      for await (const chunk of sealedStream(failing, [me.recipient])) assert.ok(chunk);
    }, /disk gone/);
  });
});

describe('recipients and identities', () => {
  it("a recipients file as age's: comments, blank lines, repeats dropped; bad lines named", async () => {
    const file = path.join(dir, 'recipients.txt');
    await writeFile(file, `# backup keys\n\n  ${me.recipient}  \n${other.recipient}\n${me.recipient}\n`);
    assert.deepEqual(await sealRecipients([other.recipient.toUpperCase()], [file]), [other.recipient, me.recipient]);
    await writeFile(file, `${me.recipient}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA user@host\n`);
    await assert.rejects(sealRecipients([], [file]), (err: unknown) => err instanceof AgeKeyError && err.message.includes(`${file}:2`));
    await writeFile(file, '# nothing\n');
    await assert.rejects(sealRecipients([], [file]), AgeKeyError);
    await assert.rejects(sealRecipients(['age1notarecipient'], []), UsageError);
    await assert.rejects(sealRecipients([me.identity], []), UsageError);
  });

  it('ageKeygen writes a 0600 key file once and reuses it', async () => {
    const file = path.join(dir, 'keys', 'age_identity');
    const made = await ageKeygen(file);
    assert.equal(made.created, true);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const again = await ageKeygen(file);
    assert.deepEqual(again, { recipient: made.recipient, created: false });
    const [id] = await loadAgeIdentities([file]);
    assert.ok(id !== undefined);
    await assert.rejects(loadAgeIdentities([path.join(dir, 'recipients.txt')]), AgeKeyError);
  });
});
