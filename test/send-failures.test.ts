// How stx-send fails (issue 10, rough edges 2, 3, 4): a refused connect or an unknown host before
// any handshake fails at once with exit 3 (it was retried for 24–29 s and reported as TIMEOUT);
// a malformed --fingerprint is a usage error before connecting; --json prints one object on
// failure too; and a refused connect after a handshake worked is retried within --retry-for.
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeFile, runSend, sha256File, spawnSend, startDaemon, tempDir, watchSend, type Daemon } from './support/procs.js';
import { startProxy, type CutProxy } from './support/proxy.js';
import { durableOnDisk, waitFor } from './support/partials.js';

const MiB = 1024 * 1024;
/** The issue asks for < 2 s; asserted with room for a loaded 2-core machine, the figure reported. */
const FAST_MS = 5000;

/** A port on 127.0.0.1 that refused connections a moment ago: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return addr.port;
}

/** stdout holds exactly one line, a JSON object; returns it. */
function onlyJson(stdout: string): Record<string, unknown> {
  const lines = stdout.split('\n').filter((l) => l !== '');
  assert.equal(lines.length, 1, `exactly one line on stdout: ${JSON.stringify(stdout)}`);
  const v: unknown = JSON.parse(lines[0] ?? '');
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`not an object: ${stdout}`);
  return Object.fromEntries(Object.entries(v));
}


/**
 * A plain forwarder on a fixed port that can be shut (connects are then refused) and opened again
 * on the same port: a server restarting, as the client sees it.
 */
class Door {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}

  async open(): Promise<void> {
    const server = net.createServer((c) => {
      const u = net.connect(this.target, '127.0.0.1');
      this.sockets.add(c).add(u);
      c.pipe(u);
      u.pipe(c);
      const end = (): void => {
        c.destroy();
        u.destroy();
        this.sockets.delete(c);
        this.sockets.delete(u);
      };
      c.on('error', end).on('close', end);
      u.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    const addr = server.address();
    if (addr === null || typeof addr === 'string') throw new Error('no port');
    this.port = addr.port;
    this.server = server;
  }

  /** Stops listening and resets every connection through it. */
  async shut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

describe('stx-send fails fast where retrying cannot help', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let file: string;
  before(async () => {
    tmp = await tempDir();
    file = path.join(tmp.dir, 'small.bin');
    await makeFile(file, 1000, 1);
  });
  after(() => tmp.cleanup());
  const env = (): Record<string, string> => ({ STX_HOME: path.join(tmp.dir, 'home') });

  it('a refused connection: exit 3 at once, naming host, port and reason, with no retries', async (t) => {
    const port = await closedPort();
    const t0 = Date.now();
    const r = await runSend(['127.0.0.1', String(port), file], env(), 60_000);
    const ms = Date.now() - t0;
    t.diagnostic(`refused: exit ${r.code} after ${ms} ms`);
    assert.equal(r.code, 3, r.stderr);
    assert.ok(ms < FAST_MS, `exited after ${ms} ms`);
    assert.ok(r.stderr.includes(`cannot connect to 127.0.0.1:${port}: connection refused`), r.stderr);
    assert.doesNotMatch(r.stderr, /reconnecting|TIMEOUT|it resumes/);
    assert.match(r.stderr, /Check that stx-recv is running/);
  });

  it('an unknown host (.invalid never resolves): exit 3 at once, naming the host', async (t) => {
    const t0 = Date.now();
    const r = await runSend(['stx-test.invalid', '5656', file, '--handshake-timeout', '3s'], env(), 60_000);
    const ms = Date.now() - t0;
    t.diagnostic(`unknown host: exit ${r.code} after ${ms} ms`);
    assert.equal(r.code, 3, r.stderr);
    assert.ok(ms < FAST_MS, `exited after ${ms} ms`);
    assert.match(r.stderr, /cannot connect to stx-test\.invalid:5656: (unknown host "stx-test\.invalid"|the name "stx-test\.invalid" could not be resolved)/);
    assert.doesNotMatch(r.stderr, /reconnecting/);
  });

  it('--json: a refused connection is one JSON object on stdout with ok, code, message, exit_code, durable_bytes, host, port', async () => {
    const port = await closedPort();
    const r = await runSend(['127.0.0.1', String(port), file, '--json'], env(), 60_000);
    assert.equal(r.code, 3, r.stderr);
    const j = onlyJson(r.stdout);
    assert.deepEqual(Object.keys(j).sort(), ['code', 'durable_bytes', 'exit_code', 'host', 'message', 'ok', 'port']);
    assert.equal(j['ok'], false);
    assert.equal(j['exit_code'], 3);
    assert.equal(j['host'], '127.0.0.1');
    assert.equal(j['port'], port);
    assert.equal(j['durable_bytes'], null, 'nothing is known about the server');
    assert.equal(j['code'], 'CONNECT_FAILED');
    assert.match(String(j['message']), /connection refused/);
  });

  it('a tree: a refused connection is final too (the dial starts before the walk and its error is the run\'s), and an empty tree never needed one', async () => {
    const port = await closedPort();
    const tree = path.join(tmp.dir, 'tree');
    await mkdir(path.join(tree, 'a'), { recursive: true });
    await makeFile(path.join(tree, 'a', 'one.bin'), 1000, 2);
    await makeFile(path.join(tree, 'two.bin'), 5000, 3);
    const t0 = Date.now();
    const r = await runSend(['127.0.0.1', String(port), tree, '--json'], env(), 60_000);
    const ms = Date.now() - t0;
    assert.equal(r.code, 3, r.stderr);
    assert.ok(ms < FAST_MS, `exited after ${ms} ms`);
    const j = onlyJson(r.stdout);
    assert.equal(j['code'], 'CONNECT_FAILED');
    assert.equal(j['files'], 0);
    assert.doesNotMatch(r.stderr, /reconnecting/);
    // Nothing to send: the run is done (exit 0) whatever the dial under way ends with.
    const empty = path.join(tmp.dir, 'empty');
    await mkdir(empty);
    const r0 = await runSend(['127.0.0.1', String(port), `${empty}/`, '--json'], env(), 60_000);
    assert.equal(r0.code, 0, r0.stderr);
  });

  it('--json: a usage error is one JSON object too (exit 2)', async () => {
    const r = await runSend(['127.0.0.1', 'notaport', file, '--json'], env());
    assert.equal(r.code, 2, r.stderr);
    const j = onlyJson(r.stdout);
    assert.equal(j['ok'], false);
    assert.equal(j['exit_code'], 2);
    assert.equal(j['code'], 'USAGE');
    assert.match(String(j['message']), /not a port/);
  });

  it('a timeout longer than a Node timer can wait is a usage error, not a timer that fires at once', async () => {
    for (const flag of ['--idle-timeout', '--handshake-timeout']) {
      const r = await runSend(['127.0.0.1', '1', file, flag, '30d', '--json'], env());
      assert.equal(r.code, 2, r.stderr);
      const j = onlyJson(r.stdout);
      assert.equal(j['code'], 'USAGE');
      assert.equal(j['message'], `${flag}: 30d is longer than a timer can wait (at most 24d 20h)`);
    }
  });

  describe('a malformed --fingerprint is a usage error (exit 2), found before connecting', () => {
    let server: net.Server;
    let port = 0;
    let accepted = 0;
    before(async () => {
      server = net.createServer((s) => {
        accepted++;
        s.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const addr = server.address();
      if (addr === null || typeof addr === 'string') throw new Error('no port');
      port = addr.port;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const good = 'SHA256:O9UlaE9oA7VAMXz64RECuVfVF5ErVjQYhCFP9uP8AHc';
    for (const [label, fp] of [
      ['abc', 'abc'],
      ['missing SHA256:', good.slice('SHA256:'.length)],
      ['42 base64 characters', good.slice(0, -1)],
      ['44 base64 characters', `${good}A`],
      ['padded', `${good}=`],
      ['not base64', `SHA256:${'*'.repeat(43)}`],
      ['a last character with bits past 256', `${good.slice(0, -1)}d`],
      ['lower-case prefix', `sha256:${good.slice('SHA256:'.length)}`],
    ] as const) {
      it(label, async () => {
        const r = await runSend(['127.0.0.1', String(port), file, '--fingerprint', fp], env());
        assert.equal(r.code, 2, r.stderr);
        assert.match(r.stderr, /--fingerprint .* is not a fingerprint/);
        assert.doesNotMatch(r.stderr, /intercepting/);
        assert.equal(accepted, 0, 'no connection was made');
      });
    }
  });
});

describe('a refused connect after a handshake worked is a server restarting: retried within --retry-for', () => {
  const size = 64 * MiB;
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let daemon: Daemon;
  let proxy: CutProxy;
  let src: string;
  before(async () => {
    tmp = await tempDir();
    daemon = await startDaemon(path.join(tmp.dir, 'out'), path.join(tmp.dir, 'srv', 'k.pem'));
    // Slow enough that the door can be shut mid-upload.
    proxy = await startProxy(daemon.port, { bytesPerSecond: 24 * MiB });
    src = path.join(tmp.dir, 'big.bin');
    await makeFile(src, size, 7);
  });
  after(async () => {
    await proxy.close();
    await daemon.stop();
    await tmp.cleanup();
  });

  /**
   * Starts an upload through a door, shuts the door once 32 MiB are durable (so the client has
   * surely heard the ACK for 16), reopens it after `closedMs` (or never).
   */
  async function run(name: string, flags: string[], closedMs: number | null): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const out = path.join(tmp.dir, 'out');
    const door = new Door(proxy.port);
    await door.open();
    const watched = watchSend(spawnSend(['127.0.0.1', String(door.port), src, '--as', name, '--backoff', '100', ...flags], { STX_HOME: path.join(tmp.dir, 'home') }));
    const client = watched.proc;
    const killer = setTimeout(() => client.kill('SIGKILL'), 90_000);
    try {
      await waitFor('32 MiB durable', () => durableOnDisk(out) >= 32 * MiB);
      await door.shut();
      if (closedMs !== null) {
        await new Promise((r) => setTimeout(r, closedMs));
        await door.open();
      }
      return await watched.result;
    } finally {
      clearTimeout(killer);
      client.kill('SIGKILL');
      await door.shut();
    }
  }

  it('--retries 1 --retry-for 60s: refused for 2 s, then the upload resumes and completes', async () => {
    const r = await run('retry-for.bin', ['--retries', '1', '--retry-for', '60s'], 2000);
    assert.equal(r.code, 0, r.stderr);
    const refused = r.stderr.split('\n').filter((l) => /connection refused.*reconnecting in .*--retry-for/.test(l));
    assert.ok(refused.length >= 2, `refused connects were retried past --retries 1:\n${r.stderr}`);
    assert.equal(await sha256File(path.join(tmp.dir, 'out', 'retry-for.bin')), await sha256File(src));
  });

  it('without --retry-for, --retries 2 gives up (exit 3) and --json says how much the server holds', async () => {
    const r = await run('gives-up.bin', ['--retries', '2', '--json'], null);
    assert.equal(r.code, 3, r.stderr);
    const j = onlyJson(r.stdout);
    assert.equal(j['ok'], false);
    assert.equal(j['code'], 'TIMEOUT');
    assert.equal(j['exit_code'], 3);
    assert.match(String(j['message']), /gave up after 3 attempts .*connection refused/);
    const durable = j['durable_bytes'];
    assert.ok(typeof durable === 'number' && durable >= 16 * MiB && durable < size, `durable_bytes ${String(durable)}`);
  });
});
