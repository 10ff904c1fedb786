// The server connection (src/recv/connection.ts) without a socket or a daemon: it runs over an
// in-memory transport, against a real client built from src/crypto (ClientHandshake,
// FrameChannel) and a real Store in a temp dir. Covers the server's frame and state rules
// (§11.1), a whole upload, and that every pooled body buffer is back once a connection closed.
import assert from 'node:assert/strict';
import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { FrameChannel } from '../src/crypto/channel.js';
import { ClientHandshake, type ClientKeys } from '../src/crypto/index.js';
import { generateServerKey } from '../src/keystore/index.js';
import { encodeFrame } from '../src/proto/codec.js';
import { codeFromWire } from '../src/proto/errors.js';
import { FRAME_TYPES, type Frame, type FrameName } from '../src/proto/frames.js';
import { MAX_DATA_CHUNK_BYTES } from '../src/proto/limits.js';
import { SERVER_RECEIVE, type ServerState } from '../src/proto/states.js';
import { packFrame } from '../src/proto/pack.js';
import { MAX_UNREAD_OUTPUT_RECORDS } from '../src/recv/config.js';
import { Connection, type Transport } from '../src/recv/connection.js';
import { Store } from '../src/recv/store.js';
import { BodyPool } from '../src/transfer/body-pool.js';
import { sampleFrame } from './hostile/raw-client.js';

/** Bound on waiting for the server's next word; only a broken connection ever reaches it. */
const WAIT_MS = 10_000;
const MiB = 1024 * 1024;
/** Bound on the server's writes awaited for one frame (a frame of 1 MiB arrives in one write here). */
const MAX_WAKES = 10_000;

/** The one buffer MemoryTransport.sharedReads reads into. */
const SHARED_READ_BUFFER = Buffer.alloc(64 * 1024);

/**
 * The server's end of an in-memory connection. Bytes go each way on a later turn of the event
 * loop, as on a socket; while paused, the client's bytes wait here, as in the kernel's buffer.
 */
class MemoryTransport extends EventEmitter implements Transport {
  readonly remoteAddress = 'memory';
  readonly remotePort = 1;
  destroyed = false;
  /** After stall(): the server's writes are kept here, as in a socket whose peer stopped reading. */
  #stalled = false;
  #held = 0;
  /** Records written since stall(). */
  writesHeld = 0;
  #paused = false;
  #inbox: Buffer[] = [];
  #clientEnded = false;
  #serverEnded = false;
  #flushing = false;
  #onDelivered: (() => void) | null = null;

  constructor(private readonly client: TestClient) {
    super();
  }

  get writableLength(): number {
    return this.#held;
  }
  /** As net.Socket's, past its 16 KiB high-water mark. */
  get writableNeedDrain(): boolean {
    return this.#held >= 16 * 1024;
  }

  // ---- what the connection calls ----
  write(bytes: Buffer): boolean {
    if (this.destroyed || this.#serverEnded) return false;
    if (this.#stalled) {
      this.#held += bytes.length;
      this.writesHeld++;
      return !this.writableNeedDrain;
    }
    const copy = Buffer.from(bytes);
    setImmediate(() => this.client.receive(copy));
    return true;
  }
  cork(): void {
    // Writes are delivered one by one; holding them changes nothing the client sees.
  }
  uncork(): void {
    // As cork().
  }
  end(): void {
    if (this.#serverEnded) return;
    this.#serverEnded = true;
    setImmediate(() => {
      this.client.serverEnded();
      if (this.#clientEnded) this.destroy();
    });
  }
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.#serverEnded = true;
    setImmediate(() => {
      this.client.serverEnded();
      this.emit('close');
    });
  }
  pause(): void {
    this.#paused = true;
  }
  resume(): void {
    this.#paused = false;
    this.#schedule();
  }
  setTimeout(): void {
    // Idle time is a socket's business; these tests never sit idle.
  }

  // ---- what the client calls ----
  /** The client stops reading: what the server writes from now on stays in the transport. */
  stall(): void {
    this.#stalled = true;
  }
  fromClient(bytes: Buffer): void {
    if (this.#clientEnded || this.destroyed) return;
    this.#inbox.push(bytes);
    this.#schedule();
  }
  clientEnd(): void {
    this.#clientEnded = true;
    this.#schedule();
  }
  /** The peer vanishes: a reset, as a socket reports one. */
  reset(): void {
    if (this.destroyed) return;
    this.emit('error', Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
    this.destroy();
  }

  /**
   * Set: the server's reads go to `sink.receiveShared` in pieces of `pieceBytes`, each in one
   * buffer that is overwritten as soon as the call returns, as the daemon's shared read buffer is
   * by the next read of any connection (src/recv/reads.ts).
   */
  sharedReads: { sink: Connection; pieceBytes: number } | null = null;

  /** One chunk as pieces through the shared buffer; a piece left behind by a pause waits in the inbox. */
  #readShared(chunk: Buffer, { sink, pieceBytes }: { sink: Connection; pieceBytes: number }): void {
    for (let at = 0; at < chunk.length; at += pieceBytes) {
      if (this.#paused || this.destroyed) {
        this.#inbox.unshift(chunk.subarray(at));
        return;
      }
      const n = chunk.copy(SHARED_READ_BUFFER, 0, at, Math.min(at + pieceBytes, chunk.length));
      sink.receiveShared(SHARED_READ_BUFFER.subarray(0, n));
      SHARED_READ_BUFFER.fill(0xa5);
    }
  }

  /** Resolves once the server read everything the client wrote. */
  delivered(): Promise<void> {
    if (this.#inbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#onDelivered = resolve));
  }

  #schedule(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    setImmediate(() => {
      this.#flushing = false;
      while (!this.#paused && !this.destroyed) {
        const chunk = this.#inbox.shift();
        if (chunk === undefined) break;
        if (this.sharedReads === null) this.emit('data', chunk);
        else this.#readShared(chunk, this.sharedReads);
      }
      if (this.#inbox.length === 0) {
        this.#onDelivered?.();
        this.#onDelivered = null;
      }
      if (this.#inbox.length === 0 && this.#clientEnded && !this.destroyed && !this.#paused) {
        this.emit('end');
        if (this.#serverEnded) this.destroy();
      }
    });
  }
}

type Received = { readonly frame: Frame; readonly raw: Buffer } | { readonly closed: true };

/** A client of our own parts: ClientHandshake and FrameChannel, nothing mocked. */
class TestClient {
  readonly transport: MemoryTransport = new MemoryTransport(this);
  readonly rx = new FrameChannel();
  readonly tx = new FrameChannel();
  #ended = false;
  #wake: (() => void) | null = null;
  keys: ClientKeys | null = null;

  receive(bytes: Buffer): void {
    this.rx.push(bytes);
    this.#poke();
  }
  serverEnded(): void {
    this.#ended = true;
    this.#poke();
  }
  #poke(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
  /** Until the server sends something or ends (only a broken connection waits WAIT_MS). */
  #wait(what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} in ${WAIT_MS} ms`)), WAIT_MS);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  write(...pieces: readonly Buffer[]): void {
    this.transport.fromClient(Buffer.concat(pieces));
  }
  /** `frame` as this client sends it now: plaintext, or sealed once it has keys. */
  frame(frame: Frame): Buffer {
    if (frame.type === 'DATA' && this.tx.sealing) return Buffer.concat(this.tx.encodeData(frame.offset, frame.data));
    return Buffer.concat(this.tx.encode(frame));
  }
  send(...frames: readonly Frame[]): void {
    this.write(...frames.map((f) => this.frame(f)));
  }

  async preamble(): Promise<Buffer> {
    for (let i = 0; i < MAX_WAKES; i++) {
      const got = this.rx.readPreamble();
      if (got !== null) return got;
      if (this.#ended) throw new Error('the server closed before its preamble');
      await this.#wait('server preamble');
    }
    throw new Error('no server preamble');
  }
  /** The next frame, or `closed` once the server ended without one. */
  async next(): Promise<Received> {
    for (let i = 0; i < MAX_WAKES; i++) {
      const got = this.rx.next();
      if (got !== null) return got;
      if (this.#ended) return { closed: true };
      await this.#wait('frame');
    }
    throw new Error('no frame');
  }
  async expect<T extends FrameName>(type: T): Promise<Extract<Frame, { type: T }>> {
    for (let i = 0; i < 1000; i++) {
      const got = await this.next();
      if ('closed' in got) throw new Error(`the server closed before ${type}`);
      if (got.frame.type === 'PROGRESS' || got.frame.type === 'ACK') {
        if (type === got.frame.type) return got.frame as Extract<Frame, { type: T }>;
        continue;
      }
      assert.equal(got.frame.type, type, `expected ${type}, got ${JSON.stringify(got.frame, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`);
      return got.frame as Extract<Frame, { type: T }>;
    }
    throw new Error(`no ${type} among 1000 frames`);
  }
  /** How the connection ended: the ERROR's code, or CLOSED when the server said nothing. */
  async outcome(): Promise<{ readonly code: string; readonly message: string }> {
    for (let i = 0; i < 1000; i++) {
      const got = await this.next();
      if ('closed' in got) return { code: 'CLOSED', message: '' };
      if (got.frame.type === 'ERROR') return { code: codeFromWire(got.frame.code) ?? `#${got.frame.code}`, message: got.frame.message };
    }
    throw new Error('no end among 1000 frames');
  }

  /** The handshake up to `stop` (§6); the whole of it by default. */
  async handshake(stop: 'preamble' | 'server_hello' | 'key_exchange' | 'done' = 'done'): Promise<void> {
    const hs = new ClientHandshake();
    if (stop === 'preamble') {
      this.write(hs.preamble());
      hs.onServerPreamble(await this.preamble());
      return;
    }
    this.write(hs.preamble(), hs.clientHello());
    hs.onServerPreamble(await this.preamble());
    const hello = await this.next();
    if ('closed' in hello || hello.frame.type !== 'SERVER_HELLO') throw new Error('expected SERVER_HELLO');
    hs.onServerHello(hello.raw, hello.frame);
    if (stop === 'server_hello') return;
    const keys = hs.finish();
    this.keys = keys;
    this.write(keys.keyExchange);
    this.tx.startSealing(keys.sealer);
    this.rx.startOpening(keys.opener);
    if (stop === 'key_exchange') return;
    this.write(...this.tx.sealBody(keys.clientFinished));
    const fin = await this.next();
    if ('closed' in fin || fin.frame.type !== 'SERVER_FINISHED') throw new Error('expected SERVER_FINISHED');
    hs.verifyServerFinished(fin.frame);
  }
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** Bytes whose 1 MiB chunks arrive as long records, opened into pooled buffers (§8). */
function fileOf(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i += 4096) b.writeUInt32BE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

function chunks(data: Buffer, from = 0): Frame[] {
  const out: Frame[] = [];
  for (let at = from; at < data.length; at += MAX_DATA_CHUNK_BYTES) {
    out.push({ type: 'DATA', offset: at, data: data.subarray(at, Math.min(at + MAX_DATA_CHUNK_BYTES, data.length)) });
  }
  return out;
}

let dir: string;
let store: Store;
let serverKey: KeyObject;
let nextId = 1;
const log = pino({ level: 'silent' });

before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'stx-conn-'));
  store = new Store(path.join(dir, 'out'), { bodies: new BodyPool() });
  await store.init();
  serverKey = await generateServerKey(2048);
});
after(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** A fresh connection over memory with its client. */
function connect(allowDownload = false): { client: TestClient; conn: Connection } {
  const client = new TestClient();
  const conn = new Connection(
    client.transport,
    { serverKey, authorizedKeys: null, store, appendOnly: false, maxFileBytes: undefined, handshakeTimeoutMs: WAIT_MS, idleTimeoutMs: WAIT_MS, allowDownload, log },
    nextId++,
    () => undefined,
  );
  return { client, conn };
}

/** Waits until the connection let go of everything; then no pooled buffer may be out. */
async function assertAllBack(conn: Connection): Promise<void> {
  await conn.whenReleased();
  assert.ok(conn.closed);
  assert.equal(store.openUploads, 0, 'no upload lock held');
  assert.equal(store.bodies.outstanding, 0, 'every pooled body buffer is back in the pool');
}

describe('a server connection over an in-memory transport', () => {
  it('runs a whole upload: OPEN_OK, DATA in pooled buffers, DONE with the SHA-256; the file is published', async () => {
    const { client, conn } = connect();
    await client.handshake();
    assert.equal(conn.stateName, 'Ready');
    const data = fileOf(3 * MiB + 12_345, 1);
    client.send({ type: 'OPEN', name: 'whole.bin', size: data.length, mtime: 1_700_000_000_000, mode: 0o640 });
    assert.equal((await client.expect('OPEN_OK')).offset, 0);
    assert.equal(conn.stateName, 'Receiving');
    client.send(...chunks(data), { type: 'PING', seq: 9 });
    assert.equal((await client.expect('PONG')).seq, 9);
    client.send({ type: 'END', sha256: sha256(data) });
    const done = await client.expect('DONE');
    assert.equal(done.size, data.length);
    assert.deepEqual(done.sha256, sha256(data));
    assert.equal(conn.stateName, 'Ready');
    assert.deepEqual(await readFile(path.join(dir, 'out', 'whole.bin')), data);
    client.transport.clientEnd();
    assert.equal((await client.outcome()).code, 'CLOSED');
    await assertAllBack(conn);
  });

  it('reads into one buffer reused after every read (recv/reads.ts): the handshake, records split across reads and the upload survive it', async () => {
    const { client, conn } = connect();
    // 7 bytes a read: every frame and record, and every record's length, arrives in pieces.
    client.transport.sharedReads = { sink: conn, pieceBytes: 7 };
    await client.handshake();
    assert.equal(conn.stateName, 'Ready');
    const data = randomBytes(200 * 1024 + 3);
    client.send({ type: 'OPEN', name: 'shared-reads.bin', size: data.length, mtime: 1_700_000_000_000, mode: 0o640 });
    assert.equal((await client.expect('OPEN_OK')).offset, 0);
    client.send(...chunks(data), { type: 'PING', seq: 3 }, { type: 'END', sha256: sha256(data) });
    assert.equal((await client.expect('PONG')).seq, 3);
    assert.deepEqual((await client.expect('DONE')).sha256, sha256(data));
    assert.deepEqual(await readFile(path.join(dir, 'out', 'shared-reads.bin')), data);
    client.transport.clientEnd();
    assert.equal((await client.outcome()).code, 'CLOSED');
    await assertAllBack(conn);
  });

  it('DATA before OPEN_OK (pipelined behind OPEN) is UNEXPECTED_FRAME in Opening; a DATA-sized record there is FRAME_TOO_LARGE', async () => {
    {
      const { client, conn } = connect();
      await client.handshake();
      client.send({ type: 'OPEN', name: 'early.bin', size: 10, mtime: 1, mode: 0o600 }, { type: 'DATA', offset: 0, data: Buffer.from('0123456789') });
      const o = await client.outcome();
      assert.equal(o.code, 'UNEXPECTED_FRAME');
      assert.equal(o.message, 'DATA received in state Opening');
      await assertAllBack(conn);
    }
    {
      // Only Receiving admits records longer than a control frame (§8): nothing makes the server hold 1 MiB before.
      const { client, conn } = connect();
      await client.handshake();
      const data = fileOf(2 * MiB, 2);
      client.send({ type: 'OPEN', name: 'early.bin', size: data.length, mtime: 1, mode: 0o600 }, ...chunks(data));
      assert.equal((await client.outcome()).code, 'FRAME_TOO_LARGE');
      await assertAllBack(conn);
    }
  });

  it('a listing to a client that stopped reading waits at MAX_UNREAD_OUTPUT_RECORDS records, not at 4 MiB of tiny records', async () => {
    const FILES = 1000;
    const listed = path.join(dir, 'out', 'many');
    await mkdir(listed, { recursive: true });
    await Promise.all(Array.from({ length: FILES }, (_, i) => writeFile(path.join(listed, `f${String(i).padStart(4, '0')}`), 'x')));
    const { client, conn } = connect(true);
    await client.handshake();
    client.transport.stall();
    client.send({ type: 'LIST', prefix: 'many' });
    // Until the listing has written and then stopped: 200 ms without a new record (at most 10 s).
    let seen = 0;
    let still = 0;
    for (let i = 0; i < 500 && still < 10; i++) {
      await new Promise((r) => setTimeout(r, 20));
      const now = client.transport.writesHeld;
      still = now > 0 && now === seen ? still + 1 : 0;
      seen = now;
    }
    assert.ok(seen > 0, 'the listing wrote entries');
    assert.equal(conn.stateName, 'Listing');
    // 1000 entries are ~65 KiB, far below 4 MiB: counted in bytes alone, all of them went out. It
    // waits once past MAX_UNREAD_OUTPUT_RECORDS records and the socket's 16 KiB high-water mark
    // (below that mark no 'drain' would come): one record past whichever is reached last.
    const { writesHeld, writableLength } = client.transport;
    assert.ok(writesHeld <= MAX_UNREAD_OUTPUT_RECORDS + 1 || writableLength <= 16 * 1024 + 512, `${writesHeld} LIST_ENTRY records (${writableLength} bytes) written to a client that reads nothing`);
    assert.ok(writesHeld < FILES / 2, `${writesHeld} of ${FILES} entries written`);
    client.transport.reset();
    await conn.whenReleased();
    await rm(listed, { recursive: true, force: true });
  });

  it('END twice: the second arrives in Verifying and is UNEXPECTED_FRAME', async () => {
    const { client, conn } = connect();
    await client.handshake();
    const data = fileOf(MiB + 100, 3);
    client.send({ type: 'OPEN', name: 'twice.bin', size: data.length, mtime: 1, mode: 0o600 });
    await client.expect('OPEN_OK');
    client.send(...chunks(data), { type: 'END', sha256: sha256(data) }, { type: 'END', sha256: sha256(data) });
    assert.equal((await client.outcome()).code, 'UNEXPECTED_FRAME');
    await assertAllBack(conn);
  });

  it('a mid-upload failure (DATA at a wrong offset after pooled chunks) gives its code and gives every buffer back', async () => {
    const { client, conn } = connect();
    await client.handshake();
    const data = fileOf(4 * MiB, 4);
    client.send({ type: 'OPEN', name: 'bad-offset.bin', size: data.length, mtime: 1, mode: 0o600 });
    await client.expect('OPEN_OK');
    const [first, second] = chunks(data);
    assert.ok(first !== undefined && second !== undefined && second.type === 'DATA');
    client.send(first, second, { ...second, offset: 0 });
    assert.equal((await client.outcome()).code, 'BAD_OFFSET');
    await assertAllBack(conn);
  });

  it('a peer that vanishes mid-record: the upload is released, the half-opened record buffer given back', async () => {
    const { client, conn } = connect();
    await client.handshake();
    const data = fileOf(3 * MiB, 5);
    client.send({ type: 'OPEN', name: 'vanish.bin', size: data.length, mtime: 1, mode: 0o600 });
    await client.expect('OPEN_OK');
    const frames = chunks(data).map((f) => client.frame(f));
    const [a, b] = frames;
    assert.ok(a !== undefined && b !== undefined);
    // A whole record, then half of the next: the server is inside it when the peer goes.
    client.write(a, b.subarray(0, b.length >> 1));
    await client.transport.delivered();
    assert.ok(store.bodies.outstanding > 0, 'the server holds pooled buffers when the peer goes');
    client.transport.reset();
    await assertAllBack(conn);
  });

  it('a handshake out of order: KEY_EXCHANGE before CLIENT_HELLO, CLIENT_HELLO twice', async () => {
    {
      const { client, conn } = connect();
      await client.handshake('preamble');
      client.write(encodeFrame(sampleFrame('KEY_EXCHANGE')));
      const o = await client.outcome();
      assert.equal(o.code, 'UNEXPECTED_FRAME');
      assert.match(o.message, /KEY_EXCHANGE received in state AwaitClientHello/);
      await assertAllBack(conn);
    }
    {
      const { client, conn } = connect();
      await client.handshake('server_hello');
      client.write(encodeFrame(sampleFrame('CLIENT_HELLO')));
      // Between SERVER_HELLO and KEY_EXCHANGE the server has no keys to say anything with (§6).
      assert.equal((await client.outcome()).code, 'CLOSED');
      await assertAllBack(conn);
    }
  });
});

/** How to put a fresh connection into each state, and send `frame` there (§11.1). */
const DRIVERS: Record<ServerState, ((c: TestClient, frame: Frame, n: number) => Promise<void>) | null> = {
  AwaitClientHello: async (c, frame) => {
    await c.handshake('preamble');
    c.write(encodeFrame(frame));
  },
  AwaitKeyExchange: async (c, frame) => {
    await c.handshake('server_hello');
    c.write(encodeFrame(frame));
  },
  AwaitClientFinished: async (c, frame) => {
    await c.handshake('key_exchange');
    c.send(frame);
  },
  // Confirming lasts no longer than it takes to send SERVER_FINISHED: nothing arrives in it.
  Confirming: null,
  Ready: async (c, frame) => {
    await c.handshake();
    c.send(frame);
  },
  Opening: async (c, frame, n) => {
    await c.handshake();
    c.send({ type: 'OPEN', name: `states/opening-${n}.bin`, size: 10, mtime: 1, mode: 0o600 }, frame);
  },
  Receiving: async (c, frame, n) => {
    await c.handshake();
    c.send({ type: 'OPEN', name: `states/receiving-${n}.bin`, size: 10, mtime: 1, mode: 0o600 });
    await c.expect('OPEN_OK');
    c.send(frame);
  },
  Verifying: async (c, frame, n) => {
    await c.handshake();
    const data = Buffer.from(`verifying ${n}`);
    c.send({ type: 'OPEN', name: `states/verifying-${n}.bin`, size: data.length, mtime: 1, mode: 0o600 });
    await c.expect('OPEN_OK');
    c.send({ type: 'DATA', offset: 0, data }, { type: 'END', sha256: sha256(data) }, frame);
  },
  // Nothing is received in Making: what follows MKDIR or SYMLINK is carried out in Ready, after MADE (§9.8, 1.11).
  Making: null,
  Putting: async (c, frame, n) => {
    await c.handshake();
    c.send({ type: 'PUT', name: `states/putting-${n}.bin`, size: 10, mtime: 1, mode: 0o600 }, frame);
  },
  Packing: async (c, frame, n) => {
    await c.handshake();
    const b32 = Buffer.alloc(32, 7);
    c.send(packFrame([{ name: `states/packing-${n}.bin`, size: 10, mtime: 1, mode: 0o600, sha256: b32 }]), frame);
  },
  // A listing or a download runs to its end by itself and reads only PING, PONG and ERROR meanwhile;
  // test/e2e-download.test.ts sends frames into them over a socket.
  Listing: null,
  Locating: null,
  Serving: null,
  // Nothing is received in Claiming: what follows RANGE is carried out in Ranging, after RANGE_OK (§9.13 step 2, 1.12).
  Claiming: null,
  Ranging: async (c, frame, n) => {
    await c.handshake();
    c.send({ type: 'RANGE', name: `states/ranging-${n}.bin`, size: 10, mtime: 1, mode: 0o600, start: 0, end: 10 });
    await c.expect('RANGE_OK');
    c.send(frame);
  },
  // Nothing is received in Settling: what follows RANGE_END is carried out in Ready, after RANGE_DONE (§9.13 step 2, 1.10).
  Settling: null,
  Closed: null,
};

/** States a command passes through without waiting for the client (no driver can hold one). */
const SELF_RUNNING: ReadonlySet<ServerState> = new Set<ServerState>(['Listing', 'Locating', 'Serving']);

describe('every frame in every state where §11.1 has no row for it → UNEXPECTED_FRAME, and the connection closes', () => {
  const all = Object.keys(FRAME_TYPES) as FrameName[];
  let n = 0;
  for (const [state, drive] of Object.entries(DRIVERS) as [ServerState, (typeof DRIVERS)[ServerState]][]) {
    if (drive === null) continue;
    const allowed = new Set(SERVER_RECEIVE.filter(([s]) => s === state).map(([, f]) => f));
    const illegal = all.filter((f) => !allowed.has(f) && f !== 'ERROR');
    it(`${state}: ${illegal.join(', ')}`, async () => {
      for (const type of illegal) {
        const { client, conn } = connect();
        await drive(client, sampleFrame(type), n++);
        const o = await client.outcome();
        // Without keys (after SERVER_HELLO, before KEY_EXCHANGE) the server closes without a word (§6).
        assert.equal(o.code, state === 'AwaitKeyExchange' ? 'CLOSED' : 'UNEXPECTED_FRAME', `${type} in ${state}: ${o.message}`);
        if (o.code !== 'CLOSED') assert.equal(o.message, `${type} received in state ${state}`);
        await assertAllBack(conn);
      }
    });
  }

  it('ERROR from the client closes without an answer, in every state it can reach', async () => {
    for (const [state, drive] of Object.entries(DRIVERS) as [ServerState, (typeof DRIVERS)[ServerState]][]) {
      if (drive === null) continue;
      const { client, conn } = connect();
      await drive(client, sampleFrame('ERROR'), n++);
      assert.equal((await client.outcome()).code, 'CLOSED', state);
      await assertAllBack(conn);
    }
  });

  it('a driver for every state that has receive rows', () => {
    const withRows = new Set(SERVER_RECEIVE.map(([s]) => s));
    for (const s of withRows) if (!SELF_RUNNING.has(s)) assert.notEqual(DRIVERS[s], null, s);
  });
});

describe('BodyPool and BodyLease', () => {
  const BODY = 1 + 8 + MAX_DATA_CHUNK_BYTES;

  it('counts buffers out; giving one back twice, or one never taken, throws', () => {
    const pool = new BodyPool(2, 4);
    const a = pool.take(BODY);
    const small = pool.take(100);
    assert.equal(pool.outstanding, 2);
    pool.give(a);
    pool.give(small);
    assert.equal(pool.outstanding, 0);
    assert.throws(() => pool.give(a), /not out/);
    assert.throws(() => pool.give(small), /not out/);
    assert.throws(() => pool.give(Buffer.alloc(BODY)), /not out/);
    assert.equal(pool.outstanding, 0);
  });

  it('a lease gives its buffer back on the last release, and refuses a release past zero', () => {
    const pool = new BodyPool(2, 4);
    const lease = pool.lease(pool.take(BODY));
    lease.retain();
    assert.equal(lease.holders, 2);
    lease.release();
    assert.equal(pool.outstanding, 1, 'one holder left: still out');
    lease.release();
    assert.equal(pool.outstanding, 0);
    assert.throws(() => lease.release(), /released more often than held/);
    assert.throws(() => lease.retain(), /retained after/);
    assert.throws(() => pool.lease(lease.buffer), /not out/);
  });
});
