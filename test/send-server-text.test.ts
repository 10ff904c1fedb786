// Nothing a server sends reaches the user's terminal unfiltered (issue 10, rough edge 6): the
// message of an ERROR or GOAWAY frame is printed by stx-send with every control character (C0,
// DEL, C1, ESC) and bidirectional override shown as its escape. Before, an evil server could
// clear the screen, retitle the terminal or forge a line such as "… verified".
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fingerprint, serverKeySpki } from '../src/crypto/index.js';
import { ERRORS } from '../src/proto/errors.js';
import { printable } from '../src/send/printable.js';
import { startEvilServer, type EvilServer } from './hostile/evil-server.js';
import type { RawClient } from './hostile/raw-client.js';
import { makeFile, readJsonLine, runSend, tempDir } from './support/procs.js';

/** Terminal-driving text: clear screen, retitle, bell, a forged line, CSI as C1, DEL, an RTL override. */
const NASTY = '\x1b[2J\x1b]0;owned\x07disk full\nstx-send: upload.bin: verified\r\u009b31mred\u007f\u202etxt.exe';
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const FORBIDDEN = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/;

/** A server that does the real handshake with `key`, then whatever `script` says. */
function startEvil(key: KeyObject, script: (peer: RawClient) => Promise<void>): Promise<EvilServer> {
  return startEvilServer(key, async (peer, handshake) => {
    if (await handshake()) await script(peer);
  });
}

describe('server-supplied text is printed escaped', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let key: KeyObject;
  let file: string;
  before(async () => {
    tmp = await tempDir();
    key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    file = path.join(tmp.dir, 'upload.bin');
    await makeFile(file, 1000, 1);
  });
  after(() => tmp.cleanup());
  const send = (port: number, extra: string[]): ReturnType<typeof runSend> =>
    runSend(['127.0.0.1', String(port), file, '--fingerprint', fingerprint(serverKeySpki(key)), '--backoff', '20', ...extra], { STX_HOME: path.join(tmp.dir, 'home') }, 60_000);

  it('printable() escapes C0, DEL, C1 and bidi overrides and keeps the rest', () => {
    assert.equal(printable('a\x1b[2Jb\nc\u009bd\u007fe\u202ef é 写'), 'a\\x1b[2Jb\\x0ac\\x9bd\\x7fe\\u202ef é 写');
  });

  it('an ERROR message: exit 6, and stderr holds no control character but the final newline', async () => {
    const evil = await startEvil(key, async (peer) => {
      await peer.expectFrame('OPEN');
      await peer.send({ type: 'ERROR', code: ERRORS.NO_SPACE.wire, message: NASTY });
    });
    try {
      const r = await send(evil.port, []);
      assert.equal(r.code, 6, r.stderr);
      assert.doesNotMatch(r.stderr, FORBIDDEN);
      assert.ok(r.stderr.includes(`NO_SPACE: ${printable(NASTY)}`), r.stderr);
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('stx-send: upload.bin: verified')).length, 0, 'no forged line');
    } finally {
      await evil.close();
    }
  });

  it('an ERROR message in --json: the message field holds no C1 or bidi control either', async () => {
    const evil = await startEvil(key, async (peer) => {
      await peer.expectFrame('OPEN');
      await peer.send({ type: 'ERROR', code: ERRORS.NO_SPACE.wire, message: NASTY });
    });
    try {
      const r = await send(evil.port, ['--json']);
      assert.equal(r.code, 6, r.stderr);
      const j = readJsonLine(r.stdout);
      assert.equal(j['code'], 'NO_SPACE');
      assert.equal(j['message'], printable(NASTY));
      assert.doesNotMatch(r.stdout.trimEnd(), FORBIDDEN);
      assert.doesNotMatch(r.stdout, /\\u009b|\\u001b/i, 'not even as JSON escapes');
    } finally {
      await evil.close();
    }
  });

  it('a GOAWAY message, printed in the reconnect notices and the final error: escaped too', async () => {
    const evil = await startEvil(key, async (peer) => {
      await peer.send({ type: 'GOAWAY', code: ERRORS.SHUTTING_DOWN.wire, message: NASTY });
    });
    try {
      const r = await send(evil.port, ['--retries', '1']);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /reconnecting in/);
      assert.doesNotMatch(r.stderr, FORBIDDEN);
      assert.ok(r.stderr.includes(printable(NASTY)), r.stderr);
    } finally {
      await evil.close();
    }
  });
});
