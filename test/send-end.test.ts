// The end of the stream while a command holds its reading (src/send/connection.ts): a download
// whose disk lags stops taking frames, and the server's ERROR may then be among the frames still
// buffered when the connection ends. That ERROR is the failure, not "an incomplete frame".
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { ERRORS, StxError } from '../src/proto/errors.js';
import { Connection } from '../src/send/connection.js';
import { handshake } from '../src/send/handshake.js';
import { startEvilServer } from './hostile/evil-server.js';

describe('a connection that ends while its command holds its reading', () => {
  it("fails with the server's ERROR still buffered behind the held frames (IO_ERROR), not TRUNCATED", async () => {
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const evil = await startEvilServer(key, async (peer, serve) => {
      if (!(await serve())) return;
      await peer.expectFrame('GET');
      // All at once, then the end: what a server does when the file changed under a download.
      await peer.write(
        peer.sealFrame({ type: 'GET_OK', offset: 0, size: 1 << 20, mtime: 0, mode: 0o644 }),
        peer.sealFrame({ type: 'DATA', offset: 0, data: Buffer.alloc(1000, 1) }),
        peer.sealFrame({ type: 'DATA', offset: 1000, data: Buffer.alloc(1000, 2) }),
        peer.sealFrame({ type: 'ERROR', code: ERRORS.IO_ERROR.wire, message: 'changed while it was being sent' }),
      );
      peer.end();
    });
    const conn = await Connection.connect('127.0.0.1', evil.port, 5000);
    try {
      await handshake(conn, { host: '127.0.0.1', port: evil.port, fingerprint: evil.fingerprint, knownHostsFile: '/dev/null', ticketDir: null });
      const failed = new Promise<Error>((resolve) => conn.onFailure(resolve));
      const taken: string[] = [];
      // The disk lags from the first frame on: the command takes GET_OK and holds; what follows
      // stays buffered until the stream's end.
      conn.begin({ type: 'GET', name: 'f.bin', offset: 0 }, (frame) => {
        taken.push(frame.type);
        conn.holdReading();
      });
      // Released once, as a write that finished would; it takes one frame and holds again.
      await new Promise((r) => setTimeout(r, 200));
      conn.releaseReading();
      const err = await Promise.race([failed, new Promise<Error>((r) => setTimeout(() => r(new Error('no failure within 5 s')), 5000))]);
      assert.ok(taken.length < 4, `the command took ${taken.join(', ')}`);
      assert.ok(err instanceof StxError, String(err));
      assert.equal(err.code, 'IO_ERROR', err.message);
    } finally {
      conn.close();
      await evil.close();
    }
  });
});
