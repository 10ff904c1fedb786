// One client connection carries several commands in sequence (spec §9.1: after DONE the
// connection is back in Ready and may carry another OPEN), against the real stx-recv.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { StxError } from '../src/proto/errors.js';
import { fileBody, upload } from '../src/send/commands/upload.js';
import { dial } from '../src/send/handshake.js';
import { Sender } from '../src/transfer/sender.js';
import { FileSource } from '../src/transfer/source.js';
import { logEvents, waitFor } from './support/partials.js';
import { makeFile, sha256File, startDaemon, tempDir, type Daemon } from './support/procs.js';

const MiB = 1024 * 1024;

describe('a client connection carries commands in sequence', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let daemon: Daemon;
  let out: string;
  let src: string;
  before(async () => {
    tmp = await tempDir();
    out = path.join(tmp.dir, 'out');
    src = path.join(tmp.dir, 'src');
    await mkdir(src);
    daemon = await startDaemon(out, path.join(tmp.dir, 'srv', 'k.pem'));
  });
  after(async () => {
    await daemon.stop();
    await tmp.cleanup();
  });

  it('two uploads, one after the other, on one connection; a second OPEN while one runs is refused locally', async () => {
    const files = [
      { name: 'first.bin', file: path.join(src, 'first.bin'), size: 3 * MiB + 17 },
      { name: 'dir/second.bin', file: path.join(src, 'second.bin'), size: 70_000 },
    ];
    const shas = await Promise.all(files.map((f, i) => makeFile(f.file, f.size, i + 10)));
    const { connection: conn, fingerprint } = await dial({
      host: '127.0.0.1',
      port: daemon.port,
      fingerprint: daemon.fingerprint,
      knownHostsFile: path.join(tmp.dir, 'known_hosts'),
      connectTimeoutMs: 10_000,
    });
    assert.equal(fingerprint, daemon.fingerprint);
    assert.equal(conn.state, 'Ready');
    const sources = await Promise.all(files.map((f) => FileSource.open(f.file)));
    try {
      for (const [i, f] of files.entries()) {
        const source = sources[i];
        if (source === undefined) throw new Error('no source');
        const running = upload(conn, { name: f.name, body: fileBody(new Sender(source)) });
        // Only one command at a time (§11.2: OPEN is sent in Ready only); the running one goes on.
        await assert.rejects(
          upload(conn, { name: 'intruder.bin', body: fileBody(new Sender(source)) }),
          (err: unknown) => err instanceof StxError && err.code === 'UNEXPECTED_FRAME' && /OPEN sent in state AwaitOpenOk/.test(err.message),
        );
        const sha = await running;
        assert.equal(sha.toString('hex'), shas[i], `${f.name}: the SHA-256 the server confirmed`);
        assert.equal(conn.state, 'Ready', `after ${f.name}'s DONE the connection is Ready again`);
        assert.equal(conn.error, null);
      }
    } finally {
      conn.close();
      await Promise.all(sources.map((s) => s.close()));
    }
    for (const [i, f] of files.entries()) assert.equal(await sha256File(path.join(out, f.name)), shas[i], `${f.name} on disk`);
    // The daemon saw both uploads on one connection, and no other connection.
    await waitFor('the daemon to log the close', () => logEvents(daemon.stdout(), 'close').length > 0, 30_000);
    const closes = logEvents(daemon.stdout(), 'close');
    assert.equal(closes.length, 1, JSON.stringify(closes));
    assert.equal(closes[0]?.['uploads'], 2);
    const uploads = logEvents(daemon.stdout(), 'upload');
    assert.deepEqual(uploads.map((u) => u['name']), files.map((f) => f.name));
    assert.equal(new Set(uploads.map((u) => u['conn'])).size, 1, 'both uploads on the same connection');
    assert.equal(existsSync(path.join(out, 'intruder.bin')), false);
  });
});
