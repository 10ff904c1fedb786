// src/runtime/read-stop.ts on real sockets: a connection the daemon stops reading holds no further
// socket chunk, where a plain pause() still reads one into the stream's buffer (issue 15: 1000
// uploads at once held 772 such chunks of up to 64 KiB).
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startReading, stopReading } from '../src/runtime/read-stop.js';
import { tuneRuntime } from '../src/runtime/tuning.js';

const KiB = 1024;

/** A connected pair on 127.0.0.1: the server's side flowing, then stopped by `stop`; returns what it buffered after the client sent 256 KiB. */
async function bufferedAfterStop(stop: (socket: net.Socket) => void): Promise<{ buffered: number; received: number }> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  const client = net.connect(address.port, '127.0.0.1');
  const [socket] = (await once(server, 'connection')) as [net.Socket];
  let received = 0;
  socket.on('data', (chunk: Buffer) => (received += chunk.length));
  try {
    stop(socket);
    client.write(Buffer.alloc(256 * KiB, 7));
    // Bounded wait for the bytes to reach the server's kernel buffer (and, unless stopped, Node).
    await sleep(300);
    const buffered = socket.readableLength;
    startReading(socket);
    for (let i = 0; i < 100 && received < 256 * KiB; i++) await sleep(20);
    return { buffered, received };
  } finally {
    client.destroy();
    socket.destroy();
    server.close();
  }
}

describe('read-stop', () => {
  it('a socket stopped with stopReading() reads nothing more until started again, then everything arrives', async () => {
    tuneRuntime(['read-stop'], {});
    const stopped = await bufferedAfterStop((socket) => stopReading(socket));
    assert.equal(stopped.buffered, 0, 'nothing read into the stream while stopped');
    assert.equal(stopped.received, 256 * KiB);
  });

  it('with the trick off (STX_TUNING) it is a plain pause(), which still reads a chunk', async () => {
    tuneRuntime(['read-stop'], { STX_TUNING: 'off' });
    try {
      const paused = await bufferedAfterStop((socket) => stopReading(socket));
      assert.ok(paused.buffered > 0, `a paused socket buffered ${paused.buffered} bytes`);
      assert.equal(paused.received, 256 * KiB);
    } finally {
      tuneRuntime(['read-stop'], {});
    }
  });
});
