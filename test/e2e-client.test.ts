// stx-send as a user meets it, against the real stx-recv (issue 10, rough edges 4, 5, 6): names
// sent in NFC and `--as dir/`, the --json success object, Ctrl-C telling how to resume, and what
// a terminal shows from the first moment.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeFile, readJsonLine, runSend, sha256File, spawnSend, startDaemon, tempDir, watchSend, SEND_CLI, type Daemon } from './support/procs.js';
import { startProxy } from './support/proxy.js';
import { durableOnDisk, waitFor } from './support/partials.js';

const MiB = 1024 * 1024;


describe('stx-send against stx-recv: names, --json, Ctrl-C, the terminal', () => {
  let tmp: { dir: string; cleanup: () => Promise<void> };
  let daemon: Daemon;
  let out: string;
  let home: string;
  let src: string;
  before(async () => {
    tmp = await tempDir();
    out = path.join(tmp.dir, 'out');
    home = path.join(tmp.dir, 'home');
    src = path.join(tmp.dir, 'src');
    await mkdir(src);
    daemon = await startDaemon(out, path.join(tmp.dir, 'srv', 'k.pem'));
  });
  after(async () => {
    await daemon.stop();
    await tmp.cleanup();
  });
  const send = (args: string[]): ReturnType<typeof runSend> =>
    runSend(['127.0.0.1', String(daemon.port), ...args, '--fingerprint', daemon.fingerprint, '--json', '--quiet'], { STX_HOME: home });

  it('an NFD file name (as macOS gives it) is sent in NFC; --json success has ok, host, port and server_fingerprint', async () => {
    const nfd = 'Cafe\u0301 cre\u0300me.bin';
    const nfc = nfd.normalize('NFC');
    assert.notEqual(nfd, nfc);
    const file = path.join(src, nfd);
    const sha = await makeFile(file, 5000, 3);
    const r = await send([file]);
    assert.equal(r.code, 0, r.stderr);
    const j = readJsonLine(r.stdout);
    assert.equal(j['ok'], true);
    assert.equal(j['name'], nfc);
    assert.equal(j['host'], '127.0.0.1');
    assert.equal(j['port'], daemon.port);
    assert.equal(j['server_fingerprint'], daemon.fingerprint);
    assert.equal(j['sha256'], sha);
    assert.equal(await sha256File(path.join(out, nfc)), sha);
    assert.equal(existsSync(path.join(out, nfd)), false);
  });

  it('--as dir/ puts the file into that directory under its own name (an NFD directory too)', async () => {
    const file = path.join(src, 'report.pdf');
    const sha = await makeFile(file, 3000, 4);
    const r = await send([file, '--as', 'inbox/2026/']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readJsonLine(r.stdout)['name'], 'inbox/2026/report.pdf');
    assert.equal(await sha256File(path.join(out, 'inbox', '2026', 'report.pdf')), sha);
    const r2 = await send([file, '--as', 'Ame\u0301lie/']);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await sha256File(path.join(out, 'Am\u00e9lie', 'report.pdf')), sha);
  });

  it('Ctrl-C: exit 130 with how to resume and what the server holds; the same command again resumes', async () => {
    const size = 128 * MiB;
    const file = path.join(src, 'interrupted.bin');
    const sha = await makeFile(file, size, 5);
    // Slow enough to interrupt midway.
    const proxy = await startProxy(daemon.port, { bytesPerSecond: 24 * MiB });
    try {
      const args = ['127.0.0.1', String(proxy.port), file, '--fingerprint', daemon.fingerprint];
      for (const json of [false, true]) {
        const watched = watchSend(spawnSend(json ? [...args, '--json'] : args, { STX_HOME: home }));
        const client = watched.proc;
        const killer = setTimeout(() => client.kill('SIGKILL'), 90_000);
        // What the server held before: the client hears at least that (OPEN_OK), or 16 MiB on a first run.
        const base = durableOnDisk(out);
        try {
          // Two checkpoints more, so that the ACK for the first has surely arrived: a loaded daemon's
          // first checkpoint can itself reach 32 MiB, and its ACK may still be on the way then.
          const seen = new Set<number>();
          await waitFor('two checkpoints, 32 MiB more durable', () => {
            const durable = durableOnDisk(out);
            if (durable > base) seen.add(durable);
            return seen.size >= 2 && durable >= base + 32 * MiB;
          });
          client.kill('SIGINT');
          assert.equal(await watched.exited, 130, watched.stderr());
        } finally {
          clearTimeout(killer);
        }
        const stdout = watched.stdout();
        const stderr = watched.stderr();
        if (json) {
          const lines = stdout.split('\n').filter((l) => l !== '');
          assert.equal(lines.length, 1, stdout);
          const j = readJsonLine(stdout);
          assert.equal(j['ok'], false);
          assert.equal(j['exit_code'], 130);
          const held = j['durable_bytes'];
          assert.ok(typeof held === 'number' && held >= base && held > 0 && held < size, `durable_bytes ${String(held)} (held before: ${base})`);
          assert.match(String(j['message']), /^interrupted: run the same command again: the server holds \d+ of 134217728 bytes \(\d+\.\d %\)$/);
        } else {
          const m = /stx-send: interrupted: run the same command again: the server holds (\d+) of (\d+) bytes \((\d+\.\d) %\)\n$/.exec(stderr);
          assert.ok(m !== null, stderr);
          const held = Number(m[1]);
          assert.equal(Number(m[2]), size);
          // At least one ACK (every 16 MiB or every second, §9.1): the first may come below 16 MiB.
          assert.ok(held > 0 && held >= base && held < size, `held ${held} (held before: ${base})`);
          assert.equal(m[3], ((held / size) * 100).toFixed(1));
        }
      }
    } finally {
      await proxy.close();
    }
    const again = await send([file]);
    assert.equal(again.code, 0, again.stderr);
    const j = readJsonLine(again.stdout);
    assert.ok(Number(j['resumed_from']) >= 32 * MiB, `resumed from ${String(j['resumed_from'])}`);
    assert.equal(await sha256File(path.join(out, 'interrupted.bin')), sha);
  });

  it('on a terminal: connecting and handshake show before the bar, which ends at 100 % within 80 columns', async (t) => {
    const file = path.join(src, `${'a-rather-long-file-name-'.repeat(6)}.tar`);
    await makeFile(file, 2 * MiB, 6);
    // script(1) gives stx-send a pseudo-terminal; its size is unset here, so the width is the default 80.
    const cmd = [process.execPath, SEND_CLI, '127.0.0.1', String(daemon.port), file, '--fingerprint', daemon.fingerprint].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const r = await new Promise<{ code: number | null; text: string }>((resolve) => {
      const p = spawn('script', ['-qfec', cmd, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STX_HOME: home } });
      let text = '';
      p.stdout.setEncoding('utf8').on('data', (s: string) => (text += s));
      p.stderr.setEncoding('utf8').on('data', (s: string) => (text += s));
      const killer = setTimeout(() => p.kill('SIGKILL'), 60_000);
      p.on('close', (code) => {
        clearTimeout(killer);
        resolve({ code, text });
      });
    });
    assert.equal(r.code, 0, r.text);
    t.diagnostic(JSON.stringify(r.text));
    const draws = r.text
      .split('\r')
      .map((l) => l.replaceAll('\x1b[K', '').replace(/^\n|\n$/g, ''))
      .filter((l) => l.trim() !== '');
    const connecting = draws.findIndex((l) => l.includes(`connecting to 127.0.0.1:${daemon.port}…`));
    const handshake = draws.findIndex((l) => l.includes(`handshake with 127.0.0.1:${daemon.port}…`));
    const full = draws.findIndex((l) => / 100% {2}/.test(l));
    assert.ok(connecting >= 0 && handshake > connecting && full > handshake, JSON.stringify(draws));
    for (const l of draws.filter((x) => !x.startsWith('stx-send: '))) {
      assert.ok(l.length <= 79, `${l.length} columns: ${l}`);
      assert.match(l, /^a-rather-.*….*\.tar/, 'the name is shortened in the middle');
    }
    assert.match(draws[full] ?? '', / 100% +(--|\d+(\.\d+)? [KMGT]?i?B)\/s {2}ETA +(--:--|\d\d:\d\d) +2\.00 MiB\/2\.00 MiB$/);
  });
});
