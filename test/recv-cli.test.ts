// stx-recv's command line and start-up, with the real built daemon (issue 10, item 8 and 9):
// --out checks, the server key's permissions, one daemon per --out, SIGHUP re-reading
// --authorized-keys, --print-fingerprint, --version, --help and the log format.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { appendFile, chmod, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { authorizedKeyLine } from '../src/crypto/index.js';
import { generateIdentity, generateServerKey, saveIdentity } from '../src/keystore/index.js';
import { makeFile, RECV_CLI, runSend, startDaemon, tempDir } from './support/procs.js';
import { REPO_ROOT } from './support/paths.js';
import { logEvents } from './support/partials.js';
import { eventually } from './support/expect.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs stx-recv to completion (it must exit by itself: these are start-up failures and one-shot commands). */
function runRecv(args: string[], options: { env?: Record<string, string>; uid?: number; gid?: number } = {}): Run {
  const r = spawnSync(process.execPath, [RECV_CLI, ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, ...options.env },
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A server key file of the given mode (written directly: the daemon must not be the one to create it). */
async function writeServerKey(file: string, mode: number): Promise<void> {
  const pem = (await generateServerKey(2048)).export({ type: 'pkcs8', format: 'pem' }).toString();
  await writeFile(file, pem, { mode });
  await chmod(file, mode);
}

describe('stx-recv --out', () => {
  it('a file as --out: exit 1 naming the path, and no key is generated', async () => {
    const tmp = await tempDir();
    try {
      const file = path.join(tmp.dir, 'afile');
      await writeFile(file, 'x');
      const key = path.join(tmp.dir, 'k.pem');
      const r = runRecv(['--listen', '127.0.0.1:0', '--out', file, '--key', key]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr, `stx-recv: --out ${file} is a file, not a directory; give a directory (stx-recv creates it if only its last part is missing)\n`);
      assert.equal(existsSync(key), false);
    } finally {
      await tmp.cleanup();
    }
  });

  it('a missing parent: exit 1, says which parent and how to create it, and creates nothing', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'typo', 'deeper', 'out');
      const r = runRecv(['--listen', '127.0.0.1:0', '--out', out, '--key', path.join(tmp.dir, 'k.pem')]);
      assert.equal(r.code, 1, r.stderr);
      const parent = path.join(tmp.dir, 'typo', 'deeper');
      assert.equal(r.stderr, `stx-recv: --out ${out}: its parent directory ${parent} does not exist; check the path for a typo, or create the parent first (mkdir -p ${parent})\n`);
      assert.equal(existsSync(path.join(tmp.dir, 'typo')), false, 'no part of the typo is created');
    } finally {
      await tmp.cleanup();
    }
  });

  it('only the last component is created, with mode 0755 (less the umask)', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'incoming');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        // What mkdir with 0755 gives under this process's umask (which the daemon inherits).
        const sibling = path.join(tmp.dir, 'sibling');
        await mkdir(sibling, { mode: 0o755 });
        assert.equal((await stat(out)).mode & 0o777, (await stat(sibling)).mode & 0o777);
        assert.equal((await stat(out)).mode & 0o700, 0o700);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a directory this user cannot write: exit 1 naming it and what to do', async (t) => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'ro');
      await mkdir(out, { mode: 0o755 });
      const isRoot = process.getuid?.() === 0;
      let as: { uid?: number; gid?: number } = {};
      if (isRoot) {
        // Root may write anywhere: run the daemon as nobody against a directory root owns.
        as = { uid: 65534, gid: 65534 };
        await chmod(tmp.dir, 0o755);
        if (runRecv(['--help'], as).code !== 0) {
          t.skip(`running as root, and user 65534 cannot run ${RECV_CLI} (the checkout is not readable by it)`);
          return;
        }
      } else {
        await chmod(out, 0o555);
      }
      const key = path.join(tmp.dir, 'k.pem');
      const r = runRecv(['--listen', '127.0.0.1:0', '--out', out, '--key', key], as);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^stx-recv: --out ${out} is not writable by this user \\(uid \\d+, EACCES\\); make it writable \\(chown or chmod\\) or choose another directory\\n$`));
      assert.equal(existsSync(key), false);
      await chmod(out, 0o755);
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('server key permissions', () => {
  for (const mode of [0o644, 0o640, 0o604, 0o660]) {
    it(`a key of mode 0${mode.toString(8)} is refused like sshd does, with the chmod to run`, async () => {
      const tmp = await tempDir();
      try {
        const key = path.join(tmp.dir, 'k.pem');
        await writeServerKey(key, mode);
        const before = await readFile(key, 'utf8');
        const out = path.join(tmp.dir, 'out');
        const r = runRecv(['--listen', '127.0.0.1:0', '--out', out, '--key', key]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(
          r.stderr,
          `stx-recv: permissions 0${mode.toString(8)} for the server key ${key} are too open: a private key must be readable by its owner only; run: chmod 600 ${key}\n`,
        );
        assert.equal(await readFile(key, 'utf8'), before, 'the key is left as it was');
        assert.equal(existsSync(out), false, 'nothing is created before the key is accepted');
      } finally {
        await tmp.cleanup();
      }
    });
  }

  it('keys of mode 0600 and 0400 are accepted', async () => {
    const tmp = await tempDir();
    try {
      for (const mode of [0o600, 0o400]) {
        const key = path.join(tmp.dir, `k${mode.toString(8)}.pem`);
        await writeServerKey(key, mode);
        const d = await startDaemon(path.join(tmp.dir, `out${mode.toString(8)}`), key);
        assert.equal(await d.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('one stx-recv per --out', () => {
  it('a second daemon on the same --out exits 1 naming the PID and the lock; the first keeps serving', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const key = path.join(tmp.dir, 'k.pem');
      const d = await startDaemon(out, key);
      const lock = path.join(out, '.stx', 'lock');
      try {
        assert.equal(readFileSync(lock, 'ascii'), `${d.proc.pid}\n`);
        const r = runRecv(['--listen', '127.0.0.1:0', '--out', out, '--key', key]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(
          r.stderr,
          `stx-recv: another stx-recv (PID ${d.proc.pid}) is already serving ${out} (lock ${lock}); stop it first, or give this one another --out. If no such process is an stx-recv, remove ${lock}\n`,
        );
        assert.equal(readFileSync(lock, 'ascii'), `${d.proc.pid}\n`, 'the refused daemon leaves the lock alone');
        const src = path.join(tmp.dir, 'f.bin');
        await makeFile(src, 10_000, 3);
        assert.equal((await runSend(['127.0.0.1', String(d.port), src, '--quiet'], { STX_HOME: path.join(tmp.dir, 'home') })).code, 0);
      } finally {
        assert.equal(await d.stop(), 0);
      }
      assert.equal(existsSync(lock), false, 'a clean shutdown removes the lock');
    } finally {
      await tmp.cleanup();
    }
  });

  it('a stale lock (its PID is gone) is taken over', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const lock = path.join(out, '.stx', 'lock');
      await mkdir(path.dirname(lock), { recursive: true, mode: 0o700 });
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      const deadPid = Number(dead.stdout);
      assert.ok(deadPid > 0);
      await writeFile(lock, `${deadPid}\n`);
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        assert.equal(readFileSync(lock, 'ascii'), `${d.proc.pid}\n`);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a lock left by a SIGKILLed daemon is taken over by the next one', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const key = path.join(tmp.dir, 'k.pem');
      const first = await startDaemon(out, key);
      assert.equal(await first.stop('SIGKILL'), 'SIGKILL');
      const lock = path.join(out, '.stx', 'lock');
      assert.equal(readFileSync(lock, 'ascii'), `${first.proc.pid}\n`, 'SIGKILL leaves the lock behind');
      const second = await startDaemon(out, key);
      try {
        assert.equal(readFileSync(lock, 'ascii'), `${second.proc.pid}\n`);
      } finally {
        assert.equal(await second.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a lock naming a live process that is not stx-recv (a reused PID) is taken over', { skip: existsSync('/proc/self/cmdline') ? false : 'needs /proc to tell' }, async () => {
    const tmp = await tempDir();
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      const out = path.join(tmp.dir, 'out');
      const lock = path.join(out, '.stx', 'lock');
      await mkdir(path.dirname(lock), { recursive: true, mode: 0o700 });
      await writeFile(lock, `${sleeper.pid ?? 0}\n`);
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'));
      try {
        assert.equal(readFileSync(lock, 'ascii'), `${d.proc.pid}\n`);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    } finally {
      sleeper.kill('SIGKILL');
      await tmp.cleanup();
    }
  });
});

describe('SIGHUP re-reads --authorized-keys', () => {
  it('a key added to the file is accepted after SIGHUP; a file that does not parse keeps the old set and logs its line', async () => {
    const tmp = await tempDir();
    try {
      const alice = path.join(tmp.dir, 'alice');
      const bob = path.join(tmp.dir, 'bob');
      const aliceKey = generateIdentity();
      const bobKey = generateIdentity();
      await saveIdentity(path.join(alice, 'id_ed25519'), aliceKey);
      await saveIdentity(path.join(bob, 'id_ed25519'), bobKey);
      const auth = path.join(tmp.dir, 'authorized_keys');
      await writeFile(auth, `${authorizedKeyLine(aliceKey, 'alice')}\n`);
      const out = path.join(tmp.dir, 'out');
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem'), ['--authorized-keys', auth]);
      try {
        const src = path.join(tmp.dir, 'f.bin');
        await makeFile(src, 50_000, 4);
        const send = (home: string, as: string): ReturnType<typeof runSend> => runSend(['127.0.0.1', String(d.port), src, '--as', as, '--quiet'], { STX_HOME: home });
        assert.equal((await send(bob, 'b0.bin')).code, 5, 'bob is not listed yet');

        await appendFile(auth, `${authorizedKeyLine(bobKey, 'bob')}\n`);
        d.proc.kill('SIGHUP');
        assert.ok(await eventually(() => logEvents(d.stdout(), 'reload').length === 1), d.stdout());
        assert.equal(logEvents(d.stdout(), 'reload')[0]?.['authorized_keys'], 2);
        const b1 = await send(bob, 'b1.bin');
        assert.equal(b1.code, 0, b1.stderr);

        await appendFile(auth, 'stx-ed25519 not-base64!\n');
        d.proc.kill('SIGHUP');
        assert.ok(await eventually(() => logEvents(d.stdout(), 'reload_failed').length === 1), d.stdout());
        assert.equal(logEvents(d.stdout(), 'reload_failed')[0]?.['error'], `${auth}:3: the key must be the base64 of 32 bytes`);
        const b2 = await send(bob, 'b2.bin');
        assert.equal(b2.code, 0, `the previous set (with bob) is kept: ${b2.stderr}`);
        assert.equal((await send(alice, 'a.bin')).code, 0);
        assert.equal(d.proc.exitCode, null, 'SIGHUP does not stop the daemon');
      } finally {
        assert.equal(await d.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('a SIGHUP during start-up (while the server key is generated) does not end the daemon, and is served once it listens', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const auth = path.join(tmp.dir, 'authorized_keys');
      await writeFile(auth, `${authorizedKeyLine(generateIdentity())}\n`);
      const args = [RECV_CLI, '--listen', '127.0.0.1:0', '--out', out, '--key', path.join(tmp.dir, 'new.pem'), '--authorized-keys', auth];
      const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      try {
        // The lock exists once the handler is in; the 3072-bit key takes a while after that.
        assert.ok(await eventually(() => existsSync(path.join(out, '.stx', 'lock'))), stderr);
        proc.kill('SIGHUP');
        assert.ok(await eventually(() => /listening on/.test(stderr), 30_000), stderr);
        assert.ok(await eventually(() => /"event":"reload".*"authorized_keys":1/.test(stdout)), stdout);
        assert.equal(proc.exitCode, null);
        assert.equal(proc.signalCode, null);
      } finally {
        const exited = new Promise((resolve) => proc.once('exit', (code, sig) => resolve(code ?? sig)));
        proc.kill('SIGTERM');
        assert.equal(await exited, 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });

  it('without --authorized-keys SIGHUP logs that there is nothing to re-read and the daemon keeps running', async () => {
    const tmp = await tempDir();
    try {
      const d = await startDaemon(path.join(tmp.dir, 'out'), path.join(tmp.dir, 'k.pem'));
      try {
        d.proc.kill('SIGHUP');
        assert.ok(await eventually(() => logEvents(d.stdout(), 'reload').length === 1), d.stdout());
        assert.equal(d.proc.exitCode, null);
        assert.equal(d.proc.signalCode, null);
      } finally {
        assert.equal(await d.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('stx-recv one-shot commands', () => {
  it('--print-fingerprint prints the key fingerprint the daemon announces, without --listen or --out', async () => {
    const tmp = await tempDir();
    try {
      const key = path.join(tmp.dir, 'k.pem');
      const d = await startDaemon(path.join(tmp.dir, 'out'), key);
      assert.equal(await d.stop(), 0);
      const r = runRecv(['--print-fingerprint', '--key', key]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${d.fingerprint}\n`);
      const viaHome = runRecv(['--print-fingerprint'], { env: { STX_HOME: tmp.dir } });
      assert.equal(viaHome.code, 1, 'the default key is $STX_HOME/server_key.pem, which does not exist here');
    } finally {
      await tmp.cleanup();
    }
  });

  it('--print-fingerprint with no key: exit 1 naming the file, and generates nothing', async () => {
    const tmp = await tempDir();
    try {
      const key = path.join(tmp.dir, 'none.pem');
      const r = runRecv(['--print-fingerprint', '--key', key]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `stx-recv: no server key at ${key} (--print-fingerprint generates nothing); give --key FILE, or start stx-recv once to create it\n`);
      assert.equal(r.stdout, '');
      assert.equal(existsSync(key), false);
    } finally {
      await tmp.cleanup();
    }
  });

  it('--version and -V print the package version; --help and -h the usage; all exit 0', () => {
    const { version } = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = runRecv([flag]);
      assert.deepEqual([r.code, r.stdout], [0, `${version}\n`], flag);
    }
    for (const flag of ['--help', '-h']) {
      const r = runRecv([flag]);
      assert.equal(r.code, 0, flag);
      assert.match(r.stdout, /--print-fingerprint/);
      assert.match(r.stdout, /--log-format/);
    }
  });

  it('a missing --listen or --out, or a bad value, is a usage error (exit 2)', () => {
    for (const [args, message] of [
      [['--out', 'x'], 'Missing required argument: --listen [HOST:]PORT'],
      [['--listen', '0'], 'Missing required argument: --out DIR'],
      [['--listen', '70000', '--out', 'x'], '--listen wants [HOST:]PORT, got "70000"'],
      [['--listen', '0', '--out', 'x', '--idle-timeout', 'soon'], null],
      [['--listen', '0', '--out', 'x', '--log-format', 'xml'], null],
      // Node's timers wrap past 2^31 − 1 ms (~24.8 days) to 1 ms: every connection would time out at once.
      [['--listen', '0', '--out', 'x', '--idle-timeout', '30d'], '--idle-timeout: 30d is longer than a timer can wait (at most 24d 20h)'],
      [['--listen', '0', '--out', 'x', '--handshake-timeout', '25d'], '--handshake-timeout: 25d is longer than a timer can wait (at most 24d 20h)'],
    ] as const) {
      const r = runRecv([...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      if (message !== null) assert.equal(r.stderr, `stx-recv: ${message}\nRun 'stx-recv --help' for the options.\n`);
      assert.equal(existsSync('x'), false);
    }
  });
});

describe('file descriptors (issue 14, item 6)', () => {
  it('a connection limit the open-file limit cannot honour is lowered at start, and said so', { timeout: 60_000 }, async () => {
    const tmp = await tempDir();
    try {
      // 256 descriptors: (256 − 64 reserved) / 3 per upload = 64 connections, not the default 1024.
      const d = await startDaemon(path.join(tmp.dir, 'out'), path.join(tmp.dir, 'k.pem'), [], 0, { fdLimit: 256 });
      try {
        assert.match(d.stderr(), /stx-recv: warning: serving at most 64 connections, not 1024: the open-file limit is 256 and each upload holds 3; raise it/);
      } finally {
        assert.equal(await d.stop(), 0);
      }
      // With room for them, nothing is said.
      const roomy = await startDaemon(path.join(tmp.dir, 'out2'), path.join(tmp.dir, 'k.pem'), ['--max-connections', '10'], 0, { fdLimit: 256 });
      try {
        assert.doesNotMatch(roomy.stderr(), /open-file limit/);
      } finally {
        assert.equal(await roomy.stop(), 0);
      }
    } finally {
      await tmp.cleanup();
    }
  });
});

describe('log format', () => {
  it('not a terminal: one JSON object per line on stdout; --log-format pretty: human-readable lines', async () => {
    const tmp = await tempDir();
    try {
      const key = path.join(tmp.dir, 'k.pem');
      const json = await startDaemon(path.join(tmp.dir, 'out1'), key);
      assert.equal(await json.stop(), 0);
      const lines = json.stdout().trim().split('\n');
      assert.ok(lines.length >= 2);
      for (const l of lines) assert.equal(typeof JSON.parse(l), 'object', l);

      const pretty = await startDaemon(path.join(tmp.dir, 'out2'), key, ['--log-format', 'pretty']);
      assert.equal(await pretty.stop(), 0);
      const text = pretty.stdout();
      assert.match(text, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] INFO: listening \{.*"port":\d+/m);
      assert.match(text, /INFO: shutting down/);
      assert.doesNotMatch(text, /^\{/m);
      assert.doesNotMatch(text, /\x1b\[/, 'no colours when stdout is not a terminal'); // eslint-disable-line no-control-regex
    } finally {
      await tmp.cleanup();
    }
  });

  const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
  it('on a terminal the default is human-readable (run under script(1) for a pty)', { skip: script.status === 0 ? false : 'script(1) from util-linux is not installed' }, async () => {
    const tmp = await tempDir();
    try {
      const key = path.join(tmp.dir, 'k.pem');
      await writeServerKey(key, 0o600);
      const err = path.join(tmp.dir, 'err');
      // The daemon's stdout is the pty; the shell stops it once it announced itself (bounded: 20 s).
      const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
      const cmd = [
        `${q(process.execPath)} ${q(RECV_CLI)} --listen 127.0.0.1:0 --out ${q(path.join(tmp.dir, 'out'))} --key ${q(key)} 2>${q(err)} & p=$!`,
        `for i in $(seq 200); do grep -q fingerprint ${q(err)} 2>/dev/null && break; sleep 0.1; done`,
        'kill -TERM $p; wait $p',
      ].join('; ');
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const shown = r.stdout.replace(/\x1b\[[0-9;]*m/g, ''); // eslint-disable-line no-control-regex
      assert.match(shown, /INFO: listening \{/);
      assert.doesNotMatch(shown, /^\{"level"/m);
    } finally {
      await tmp.cleanup();
    }
  });
});
