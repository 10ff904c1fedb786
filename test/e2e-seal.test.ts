// Sealed uploads end to end (issue 17) with the real binaries and the two age implementations by
// age's author: files stx-send seals (--seal, --seal-to) open with `age -d` to the original bytes;
// an upload cut by killing the client resumes from the server's offset after a restart (the key
// kept in $STX_HOME) and still opens; trees and stdin are sealed too and come back with
// `stx-get --unseal`; files `age -r` or the age-encryption package encrypted, uploaded as they
// are, are opened by `stx-get --unseal`; a wrong identity publishes nothing.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { Encrypter } from 'age-encryption';
import { ensureTools } from '../bench/lib/apt.js';
import { durableOnDisk, waitFor } from './support/partials.js';
import { GET_CLI, KEYGEN_CLI, makeFile, readJsonLine, SEND_CLI, spawnSend, startDaemon, tempDir, watchSend, type Daemon } from './support/procs.js';
import { startProxy } from './support/proxy.js';

const execFileAsync = promisify(execFile);
const AGE = '/usr/bin/age';
const AGE_KEYGEN = '/usr/bin/age-keygen';
const RUN_TIMEOUT_MS = 60_000;
const MiB = 1024 * 1024;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs one of our CLIs to its end, with `input` on stdin (or none), killed after RUN_TIMEOUT_MS. */
function run(cli: string, args: readonly string[], home: string, input?: Buffer): Promise<Run> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [cli, ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: { ...process.env, STX_HOME: home } });
    let stdout = '';
    let stderr = '';
    proc.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (input !== undefined) proc.stdin?.end(input);
    const timer = setTimeout(() => proc.kill('SIGKILL'), RUN_TIMEOUT_MS);
    proc.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ code: code ?? (sig === null ? -1 : 128), stdout, stderr });
    });
  });
}

/** `age -d -i key file`: the plaintext. */
async function ageDecrypt(key: string, file: string): Promise<Buffer> {
  const { stdout } = await execFileAsync(AGE, ['-d', '-i', key, file], { encoding: 'buffer', timeout: RUN_TIMEOUT_MS, maxBuffer: 64 * MiB });
  return stdout;
}

let tmp: { dir: string; cleanup: () => Promise<void> };
let daemon: Daemon;
let out = '';
let home = '';
let key = '';
let recipient = '';
let port = '';

before(async () => {
  const missing = await ensureTools([{ path: AGE, pkg: 'age' }, { path: AGE_KEYGEN, pkg: 'age' }], 'test/e2e-seal.test.ts');
  if (missing !== null) assert.fail(`the sealed-upload tests need the age tool: ${missing} (apt-get install age)`);
  tmp = await tempDir('stx-seal-');
  out = path.join(tmp.dir, 'out');
  home = path.join(tmp.dir, 'home');
  daemon = await startDaemon(out, path.join(tmp.dir, 'server', 'k.pem'), ['--allow-download']);
  port = String(daemon.port);
  const made = await run(KEYGEN_CLI, ['--age'], home);
  assert.equal(made.code, 0, made.stderr);
  key = path.join(home, 'age_identity');
  recipient = made.stdout.trim();
});

after(async () => {
  await daemon.stop();
  await tmp.cleanup();
});

describe('stx-keygen --age', () => {
  it('writes a 0600 identity that age-keygen reads, and prints its recipient', async () => {
    assert.match(recipient, /^age1[0-9a-z]{58}$/);
    assert.equal((await stat(key)).mode & 0o777, 0o600);
    const { stdout } = await execFileAsync(AGE_KEYGEN, ['-y', key], { encoding: 'utf8', timeout: RUN_TIMEOUT_MS });
    assert.equal(stdout.trim(), recipient);
  });
});

describe('stx-send --seal', () => {
  it('a file is stored as NAME.age, which age -d opens to the original bytes; no state is left', async () => {
    const src = path.join(tmp.dir, 'report.pdf');
    const plain = randomBytes(300_001);
    await writeFile(src, plain);
    const r = await run(SEND_CLI, ['127.0.0.1', port, src, '--seal', recipient, '--json', '--quiet'], home);
    assert.equal(r.code, 0, r.stderr);
    const json = readJsonLine(r.stdout);
    assert.equal(json['name'], 'report.pdf.age');
    assert.equal(json['sealed'], true);
    const stored = path.join(out, 'report.pdf.age');
    assert.equal(json['bytes'], (await stat(stored)).size, 'size and SHA-256 are the age file’s');
    assert.equal(existsSync(path.join(out, 'report.pdf')), false);
    assert.deepEqual(await ageDecrypt(key, stored), plain);
    assert.deepEqual(await readdir(path.join(home, 'sealing')), [], 'the kept key goes once the server said DONE');
  });

  it('a client killed mid-file resumes from the server’s offset after a restart, and the result opens with age -d', async () => {
    const src = path.join(tmp.dir, 'disk.img');
    await makeFile(src, 8 * MiB, 17);
    const throttled = await startProxy(daemon.port, { bytesPerSecond: 4 * MiB });
    const client = watchSend(spawnSend(['127.0.0.1', String(throttled.port), src, '--seal', recipient, '--quiet', '--retries', '0'], { STX_HOME: home }));
    try {
      await waitFor('a durable offset', () => durableOnDisk(out) > 0, 30_000);
      client.proc.kill('SIGKILL');
      await client.exited;
    } finally {
      await throttled.close();
    }
    const durable = durableOnDisk(out);
    const [kept, ...more] = await readdir(path.join(home, 'sealing'));
    assert.ok(kept !== undefined && more.length === 0, 'one kept state for the upload in flight');
    assert.equal((await stat(path.join(home, 'sealing', kept))).mode & 0o777, 0o600);
    const r = await run(SEND_CLI, ['127.0.0.1', port, src, '--seal', recipient, '--json', '--quiet'], home);
    assert.equal(r.code, 0, r.stderr);
    const json = readJsonLine(r.stdout);
    assert.ok(typeof json['resumed_from'] === 'number' && json['resumed_from'] >= durable && durable > 0, `resumed from ${String(json['resumed_from'])}, durable ${durable}`);
    assert.deepEqual(await ageDecrypt(key, path.join(out, 'disk.img.age')), await readFile(src));
    assert.deepEqual(await readdir(path.join(home, 'sealing')), []);
  });

  it('a tree and stdin are sealed too, and stx-get --unseal restores them with their mtime', async () => {
    const root = path.join(tmp.dir, 'photos');
    await mkdir(path.join(root, '2024'), { recursive: true });
    const a = randomBytes(70_000);
    await writeFile(path.join(root, '2024', 'a.jpg'), a);
    await writeFile(path.join(root, 'empty'), '');
    const then = new Date('2024-06-01T10:22:03.250Z');
    await utimes(path.join(root, '2024', 'a.jpg'), then, then);
    const recipients = path.join(tmp.dir, 'recipients.txt');
    await writeFile(recipients, `# my backup key\n${recipient}\n`);
    const tree = await run(SEND_CLI, ['127.0.0.1', port, root, '--to', 'backup', '--seal-to', recipients, '--json', '--quiet'], home);
    assert.equal(tree.code, 0, tree.stderr);
    assert.equal(readJsonLine(tree.stdout)['files'], 2);
    assert.deepEqual(await ageDecrypt(key, path.join(out, 'backup', 'photos', '2024', 'a.jpg.age')), a);
    const piped = randomBytes(200_000);
    const stdin = await run(SEND_CLI, ['127.0.0.1', port, '-', '--as', 'backup/db.sql', '--seal', recipient, '--json', '--quiet'], home, piped);
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(readJsonLine(stdin.stdout)['name'], 'backup/db.sql.age');

    const back = path.join(tmp.dir, 'restore');
    const get = await run(GET_CLI, ['127.0.0.1', port, 'backup', '--to', back, '--unseal', key, '--json', '--quiet'], home);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await readFile(path.join(back, 'backup', 'photos', '2024', 'a.jpg')), a);
    assert.equal((await readFile(path.join(back, 'backup', 'photos', 'empty'))).length, 0);
    assert.deepEqual(await readFile(path.join(back, 'backup', 'db.sql')), piped);
    assert.equal((await stat(path.join(back, 'backup', 'photos', '2024', 'a.jpg'))).mtimeMs, then.getTime());
    assert.equal(existsSync(path.join(back, 'backup', 'db.sql.age')), false);

    // Without --unseal the age file arrives as it is.
    const raw = await run(GET_CLI, ['127.0.0.1', port, 'backup/db.sql.age', '--to', path.join(tmp.dir, 'raw'), '--quiet'], home);
    assert.equal(raw.code, 0, raw.stderr);
    assert.deepEqual(await readFile(path.join(tmp.dir, 'raw', 'db.sql.age')), await readFile(path.join(out, 'backup', 'db.sql.age')));
  });
});

describe('stx-get --unseal of files the age tools encrypted', () => {
  it('age -r and the age-encryption package: uploaded as they are, opened by stx-get', async () => {
    const plain = randomBytes(150_000);
    const src = path.join(tmp.dir, 'plain.bin');
    await writeFile(src, plain);
    const byAge = path.join(tmp.dir, 'by-age.bin.age');
    await execFileAsync(AGE, ['-r', recipient, '-o', byAge, src], { timeout: RUN_TIMEOUT_MS });
    const e = new Encrypter();
    e.addRecipient(recipient);
    const byTypage = path.join(tmp.dir, 'by-typage.bin.age');
    await writeFile(byTypage, await e.encrypt(plain));
    const up = await run(SEND_CLI, ['127.0.0.1', port, byAge, byTypage, '--to', 'foreign', '--quiet'], home);
    assert.equal(up.code, 0, up.stderr);
    const back = path.join(tmp.dir, 'foreign-back');
    const get = await run(GET_CLI, ['127.0.0.1', port, 'foreign', '--to', back, '--unseal', key, '--json', '--quiet'], home);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await readFile(path.join(back, 'foreign', 'by-age.bin')), plain);
    assert.deepEqual(await readFile(path.join(back, 'foreign', 'by-typage.bin')), plain);
    const files = readJsonLine(get.stdout)['files'];
    assert.ok(Array.isArray(files) && files.every((f: unknown) => typeof f === 'object' && f !== null && Reflect.get(f, 'unsealed_bytes') === plain.length));
  });
});

describe('mistakes', () => {
  it('a wrong identity publishes nothing (exit 1); a malformed --seal is a usage error before connecting', async () => {
    const wrong = path.join(tmp.dir, 'wrong.key');
    await execFileAsync(AGE_KEYGEN, ['-o', wrong], { timeout: RUN_TIMEOUT_MS });
    const back = path.join(tmp.dir, 'wrong-back');
    const get = await run(GET_CLI, ['127.0.0.1', port, 'report.pdf.age', '--to', back, '--unseal', wrong, '--json'], home);
    assert.equal(get.code, 1, get.stderr);
    assert.equal(readJsonLine(get.stdout)['code'], 'LOCAL_FILE');
    assert.deepEqual((await readdir(back)).filter((n) => n !== '.stx-partial'), []);
    assert.deepEqual(await readdir(path.join(back, '.stx-partial')), [], 'nothing half-decrypted is left');

    const bad = await run(SEND_CLI, ['127.0.0.1', '1', path.join(tmp.dir, 'plain.bin'), '--seal', 'age1notakey', '--json'], home);
    assert.equal(bad.code, 2, bad.stderr);
    assert.equal(readJsonLine(bad.stdout)['code'], 'USAGE');
  });
});
