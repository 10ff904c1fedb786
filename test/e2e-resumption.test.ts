// Resumption end to end (spec/PROTOCOL.md §7.5, revision 1.13): stx-send keeps a ticket in
// $STX_HOME/tickets and the next run resumes with it (no RSA); every ticket the daemon must not
// take costs a full handshake, never a failure; a key taken out of --authorized-keys (SIGHUP) is
// refused; a server that does not know tickets (revision 1.12) is dialled again without them.
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { appendFile, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { authorizedKeyLine, TicketKey } from '../src/crypto/index.js';
import { generateIdentity, saveIdentity, TicketStore } from '../src/keystore/index.js';
import { makeFile, runSend, sha256File, startDaemon, tempDir, type Daemon } from './support/procs.js';
import { eventually } from './support/expect.js';

/** The daemon's `authenticated` log events, in order: whether each handshake resumed. */
function resumedFlags(d: Daemon): boolean[] {
  const flags: boolean[] = [];
  for (const line of d.stdout().split('\n')) {
    if (!line.includes('"event":"authenticated"')) continue;
    const e: unknown = JSON.parse(line);
    if (typeof e === 'object' && e !== null && 'resumed' in e) flags.push(e.resumed === true);
  }
  return flags;
}

async function ticketFiles(home: string): Promise<string[]> {
  try {
    return (await readdir(path.join(home, 'tickets'))).filter((n) => !n.startsWith('.'));
  } catch {
    return [];
  }
}

describe('resumption with stx-send and stx-recv (§7.5)', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let daemon: Daemon;
  let keyFile: string;
  let out: string;
  let src: string;
  before(async () => {
    tmp = await tempDir();
    out = path.join(tmp.dir, 'out');
    keyFile = path.join(tmp.dir, 'srv', 'k.pem');
    src = path.join(tmp.dir, 'f.bin');
    await makeFile(src, 300_000, 5);
    daemon = await startDaemon(out, keyFile);
  });
  after(async () => {
    await daemon.stop();
    await tmp.cleanup();
  });
  const send = (home: string, as: string, d: Daemon = daemon): ReturnType<typeof runSend> =>
    runSend(['127.0.0.1', String(d.port), src, '--as', as, '--quiet'], { STX_HOME: home });

  it('the second run resumes (no KEY_EXCHANGE); tickets are 0600 in a 0700 directory and used once', async () => {
    const home = path.join(tmp.dir, 'home-a');
    const before = resumedFlags(daemon).length;
    const first = await send(home, 'a1.bin');
    assert.equal(first.code, 0, first.stderr);
    const [t1, ...more] = await ticketFiles(home);
    assert.ok(t1 !== undefined && more.length === 0, 'one ticket kept');
    assert.equal((await stat(path.join(home, 'tickets'))).mode & 0o777, 0o700);
    assert.equal((await stat(path.join(home, 'tickets', t1))).mode & 0o777, 0o600);
    const second = await send(home, 'a2.bin');
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(resumedFlags(daemon).slice(before), [false, true]);
    assert.equal(await sha256File(path.join(out, 'a2.bin')), await sha256File(src));
    const now = await ticketFiles(home);
    assert.equal(now.length, 1, 'the used ticket is gone, the new one kept');
    assert.ok(!now.includes(t1), 'a ticket is used once');
  });

  it('--no-tickets: no ticket offered, none asked for or kept; a kept one stays unused', async () => {
    const home = path.join(tmp.dir, 'home-n');
    const at = resumedFlags(daemon).length;
    const plain = await runSend(['127.0.0.1', String(daemon.port), src, '--as', 'n1.bin', '--quiet', '--no-tickets'], { STX_HOME: home });
    assert.equal(plain.code, 0, plain.stderr);
    assert.deepEqual(await ticketFiles(home), [], 'nothing kept');
    assert.equal((await send(home, 'n2.bin')).code, 0);
    const [kept] = await ticketFiles(home);
    assert.ok(kept !== undefined, 'without the flag a ticket is kept');
    const again = await runSend(['127.0.0.1', String(daemon.port), src, '--as', 'n3.bin', '--quiet', '--no-tickets'], { STX_HOME: home });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(resumedFlags(daemon).slice(at), [false, false, false]);
    assert.deepEqual(await ticketFiles(home), [kept], 'the kept ticket was neither used nor replaced');
  });

  it('a tampered, an expired, or another server key\'s ticket: full handshake, the upload goes through', async () => {
    const home = path.join(tmp.dir, 'home-b');
    assert.equal((await send(home, 'b0.bin')).code, 0);
    // Tampered: one bit of the ticket flipped in the file.
    const [name] = await ticketFiles(home);
    assert.ok(name !== undefined);
    const file = path.join(home, 'tickets', name);
    const doc = JSON.parse(await readFile(file, 'utf8')) as { ticket: string; psk: string };
    const ticket = Buffer.from(doc.ticket, 'base64');
    ticket[30] = (ticket[30] ?? 0) ^ 1;
    await writeFile(file, JSON.stringify({ ...doc, ticket: ticket.toString('base64') }));
    let at = resumedFlags(daemon).length;
    const tampered = await send(home, 'b1.bin');
    assert.equal(tampered.code, 0, tampered.stderr);
    assert.deepEqual(resumedFlags(daemon).slice(at), [false]);

    // Expired: sealed by this very server key 8 days ago, kept by the client as still good.
    for (const n of await ticketFiles(home)) await rename(path.join(home, 'tickets', n), path.join(tmp.dir, `gone-${n}`));
    const key = new TicketKey(createPrivateKey(await readFile(keyFile, 'utf8')), 7 * 24 * 3600);
    const psk = Buffer.alloc(32, 7);
    const old = key.seal({ issuedAt: Math.floor(Date.now() / 1000) - 8 * 24 * 3600, identity: null, psk });
    new TicketStore(path.join(home, 'tickets')).save(daemon.fingerprint, null, old, psk, 3600);
    at = resumedFlags(daemon).length;
    const expired = await send(home, 'b2.bin');
    assert.equal(expired.code, 0, expired.stderr);
    assert.deepEqual(resumedFlags(daemon).slice(at), [false]);

    // Another server's ticket, kept under this server's fingerprint: that key cannot open it.
    const other = await startDaemon(path.join(tmp.dir, 'out-other'), path.join(tmp.dir, 'srv-other', 'k.pem'));
    try {
      const otherHome = path.join(tmp.dir, 'home-other');
      assert.equal((await send(otherHome, 'o.bin', other)).code, 0);
      const [otherTicket] = await ticketFiles(otherHome);
      assert.ok(otherTicket !== undefined);
      const otherDoc = JSON.parse(await readFile(path.join(otherHome, 'tickets', otherTicket), 'utf8')) as { ticket: string; psk: string };
      for (const n of await ticketFiles(home)) await rename(path.join(home, 'tickets', n), path.join(tmp.dir, `gone2-${n}`));
      new TicketStore(path.join(home, 'tickets')).save(daemon.fingerprint, null, Buffer.from(otherDoc.ticket, 'base64'), Buffer.from(otherDoc.psk, 'base64'), 3600);
      at = resumedFlags(daemon).length;
      const foreign = await send(home, 'b3.bin');
      assert.equal(foreign.code, 0, foreign.stderr);
      assert.deepEqual(resumedFlags(daemon).slice(at), [false]);
    } finally {
      await other.stop();
    }
  });

  it('a key taken out of --authorized-keys (SIGHUP) does not resume: AUTH_REFUSED', async () => {
    const auth = path.join(tmp.dir, 'authorized_keys');
    const alice = generateIdentity();
    const bob = generateIdentity();
    const aliceHome = path.join(tmp.dir, 'alice');
    await saveIdentity(path.join(aliceHome, 'id_ed25519'), alice);
    await writeFile(auth, `${authorizedKeyLine(alice, 'alice')}\n`);
    const d = await startDaemon(path.join(tmp.dir, 'out-auth'), path.join(tmp.dir, 'srv-auth', 'k.pem'), ['--authorized-keys', auth]);
    try {
      assert.equal((await send(aliceHome, 'x1.bin', d)).code, 0);
      assert.equal((await send(aliceHome, 'x2.bin', d)).code, 0);
      assert.deepEqual(resumedFlags(d), [false, true], 'a listed key resumes');
      await writeFile(auth, `${authorizedKeyLine(bob, 'bob')}\n`);
      d.proc.kill('SIGHUP');
      assert.ok(await eventually(() => d.stdout().includes('"event":"reload"')), d.stdout());
      const refused = await send(aliceHome, 'x3.bin', d);
      assert.equal(refused.code, 5, `AUTH_REFUSED: ${refused.stderr}`);
      assert.match(refused.stderr, /AUTH_REFUSED/);
      assert.deepEqual(resumedFlags(d), [false, true], 'no third handshake got in');
      await appendFile(auth, `${authorizedKeyLine(alice, 'alice')}\n`);
    } finally {
      await d.stop();
    }
  });

  it('a connection refused over --max-handshakes keeps its ticket: the retry resumes', async () => {
    const d = await startDaemon(path.join(tmp.dir, 'out-busy'), path.join(tmp.dir, 'srv-busy', 'k.pem'), ['--max-handshakes', '1']);
    try {
      const home = path.join(tmp.dir, 'home-busy');
      assert.equal((await send(home, 'y1.bin', d)).code, 0);
      // One connection that never says a word holds the one handshake place.
      const hold = net.connect(d.port, '127.0.0.1');
      await new Promise((resolve) => hold.once('connect', resolve));
      await new Promise((r) => setTimeout(r, 200));
      const sending = runSend(['127.0.0.1', String(d.port), src, '--as', 'y2.bin', '--quiet', '--retries', '20', '--backoff', '100'], { STX_HOME: home });
      assert.ok(await eventually(() => d.stdout().includes('TOO_MANY_CONNECTIONS')), 'the first attempt is refused');
      hold.destroy();
      const r = await sending;
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(resumedFlags(d), [false, true], 'the retry resumed with the ticket the refused attempt gave back');
    } finally {
      await d.stop();
    }
  });

  it('a server that answers the ticket fields with MALFORMED_FRAME (revision 1.12) gets the full handshake without them', async () => {
    // A stand-in for a 1.12 server in front of ours: a CLIENT_HELLO with `tickets` is refused as
    // a 1.12 server refuses an unknown key (§2.1), in plaintext, before SERVER_HELLO.
    const seen: boolean[] = [];
    const stub = net.createServer((c) => {
      c.once('data', (first: Buffer) => {
        const asks = first.includes(Buffer.from('tickets', 'ascii'));
        seen.push(asks);
        if (asks) {
          const message = Buffer.from('unknown key tickets', 'ascii');
          // preamble, then ERROR {code: 5, message}: fixmap of 2, "code" 5, "message" str8.
          const payload = Buffer.concat([Buffer.from([0x82, 0xa4]), Buffer.from('code'), Buffer.from([0x05, 0xa7]), Buffer.from('message'), Buffer.from([0xd9, message.length]), message]);
          const frame = Buffer.concat([Buffer.alloc(4), Buffer.from([0x20]), payload]);
          frame.writeUInt32BE(frame.length - 4, 0);
          c.end(Buffer.concat([Buffer.from('STX\0', 'latin1'), Buffer.from([0, 1, 0, 0]), frame]));
          return;
        }
        const up = net.connect(daemon.port, '127.0.0.1', () => {
          up.write(first);
          c.pipe(up).pipe(c);
        });
        up.on('error', () => c.destroy());
        c.on('error', () => up.destroy());
      });
    });
    await new Promise<void>((resolve) => stub.listen(0, '127.0.0.1', resolve));
    const address = stub.address();
    assert.ok(address !== null && typeof address === 'object');
    try {
      const home = path.join(tmp.dir, 'home-old');
      const r = await runSend(['127.0.0.1', String(address.port), src, '--as', 'old.bin', '--quiet', '--fingerprint', daemon.fingerprint], { STX_HOME: home });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(seen, [true, false], 'asked once, then reconnected without the fields');
      assert.equal(await sha256File(path.join(out, 'old.bin')), await sha256File(src));
    } finally {
      await new Promise((resolve) => stub.close(resolve));
    }
  });
});
