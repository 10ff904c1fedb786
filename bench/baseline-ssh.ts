// scp and sftp baselines against a private sshd on 127.0.0.1 (or the placement's host), cipher
// aes256-gcm@openssh.com.
//
// Each run starts its own sshd (-D -e: no daemon, log to stderr) under GNU time with its own
// config, host key and authorized client key, transfers once, waits for sshd to reap the
// connection's processes, then stops it. So the "receiver" figures are the whole server side:
// the listener plus everything it forked and reaped for this one connection (the re-executed
// per-connection sshd, its privilege-separated child, and scp -t or sftp-server). CPU is their
// sum; peak RSS is the largest single one of them. The sshd start-up (~10 ms CPU) is included.
// The "sender" figures are the client (scp or sftp) plus the ssh it forks.
import { execFile } from 'node:child_process';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { userInfo } from 'node:os';
import { promisify } from 'node:util';

import type { RunResult } from './contenders/types.js';
import { READY_TIMEOUT_MS, transferTimeoutMs } from './contenders/types.js';
import { ensureTools } from './lib/apt.js';
import { describeExit, startMeasured, waitForNoChildren, type MeasuredProcess } from './lib/measure.js';
import { freePort } from './lib/net.js';
import { LOCAL, type Placement } from './lib/placement.js';
import type { TestFile } from './lib/testfile.js';

const execFileAsync = promisify(execFile);

const SSH_CIPHER = 'aes256-gcm@openssh.com';
const SSHD = '/usr/sbin/sshd';
const SCP = '/usr/bin/scp';
const SFTP = '/usr/bin/sftp';
const SSH = '/usr/bin/ssh';
const SSH_KEYGEN = '/usr/bin/ssh-keygen';
/** Debian's default sftp subsystem; internal-sftp if it is missing. */
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
/** sshd needs this to exist when started as root (privilege separation). */
const PRIVSEP_DIR = '/run/sshd';
/** A port picked by freePort() can be taken before sshd binds it: try a few. */
const SSHD_START_ATTEMPTS = 3;
/** After the client exits, how long sshd may take to reap the connection's processes. */
const SSHD_REAP_TIMEOUT_MS = 10_000;
const KEYGEN_TIMEOUT_MS = 30_000;

type SshTool = 'scp' | 'sftp';

/** Null if scp/sftp can be measured (installing OpenSSH with apt-get if needed), else why not. */
export function sshAvailable(): Promise<string | null> {
  return ensureTools(
    [
      { path: SSHD, pkg: 'openssh-server' },
      { path: SSH, pkg: 'openssh-client' },
      { path: SCP, pkg: 'openssh-client' },
      { path: SFTP, pkg: 'openssh-client' },
      { path: SSH_KEYGEN, pkg: 'openssh-client' },
    ],
    'the scp/sftp baselines',
  );
}

export async function sshVersion(): Promise<string> {
  // `ssh -V` prints to stderr.
  const { stderr } = await execFileAsync(SSH, ['-V']).catch(() => ({ stderr: 'unknown' }));
  return stderr.trim();
}

interface SshSetup {
  readonly clientKey: string;
  readonly configPath: string;
  readonly destDir: string;
}

async function setUp(workdir: string, host: string, port: number): Promise<SshSetup> {
  const dir = join(workdir, 'ssh');
  const destDir = join(workdir, 'dest');
  await mkdir(dir, { recursive: true });
  await mkdir(destDir, { recursive: true });
  if (process.getuid?.() === 0) await mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host_ed25519');
  const clientKey = join(dir, 'client_ed25519');
  for (const key of [hostKey, clientKey]) {
    await execFileAsync(SSH_KEYGEN, ['-q', '-t', 'ed25519', '-N', '', '-C', 'stx-bench', '-f', key], {
      timeout: KEYGEN_TIMEOUT_MS,
    });
  }
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, await readFile(`${clientKey}.pub`));
  const configPath = join(dir, 'sshd_config');
  const config = [
    `Port ${port}`,
    `ListenAddress ${host}`,
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${authorizedKeys}`,
    // We run as root here; key-only login for it.
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    // Temp dirs and keys are not laid out the way StrictModes wants.
    'StrictModes no',
    'PrintMotd no',
    'LogLevel INFO',
    `Subsystem sftp ${existsSync(SFTP_SERVER) ? SFTP_SERVER : 'internal-sftp'}`,
  ];
  await writeFile(configPath, `${config.join('\n')}\n`);
  return { clientKey, configPath, destDir };
}

function clientOptions(setup: SshSetup): string[] {
  return [
    '-F', '/dev/null', // no user or system client config
    '-i', setup.clientKey,
    '-c', SSH_CIPHER,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=no',
    '-o', 'UserKnownHostsFile=/dev/null',
    '-o', 'Compression=no',
    '-o', 'LogLevel=ERROR',
  ];
}

interface Sshd {
  readonly proc: MeasuredProcess;
  readonly setup: SshSetup;
  readonly port: number;
}

async function startSshd(workdir: string, timeoutMs: number, place: Placement): Promise<Sshd | string> {
  let lastFailure = 'sshd was not started';
  for (let attempt = 1; attempt <= SSHD_START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const setup = await setUp(join(workdir, `attempt-${attempt}`), place.host, port);
    const proc = startMeasured(...place.command('server', SSHD, ['-D', '-e', '-f', setup.configPath]), { timeoutMs });
    const ready = await proc.waitForMatch('stderr', /Server listening on \S+ port \d+/, READY_TIMEOUT_MS);
    if (ready !== null) return { proc, setup, port };
    await proc.signal('SIGKILL');
    lastFailure = describeExit('sshd could not start;', await proc.done);
  }
  return lastFailure;
}

/** One scp or sftp upload of `file`. Never throws for an sshd that won't start: says so instead. */
export async function runSsh(tool: SshTool, file: TestFile, workdir: string, place: Placement = LOCAL): Promise<RunResult> {
  const timeoutMs = transferTimeoutMs(file.size);
  const sshd = await startSshd(workdir, timeoutMs, place);
  if (typeof sshd === 'string') return { kind: 'failed', reason: sshd };
  const { proc: server, setup, port } = sshd;
  const receivedPath = join(setup.destDir, 'received.bin');
  const target = `${userInfo().username}@${place.host}`;
  let args: string[];
  switch (tool) {
    case 'scp':
      // -O: the classic SCP protocol. OpenSSH ≥ 9.0 scp otherwise speaks SFTP, which would make
      // it a second sftp run; the classic protocol streams without per-request round trips.
      args = ['-O', '-q', '-P', String(port), ...clientOptions(setup), file.path, `${target}:${receivedPath}`];
      break;
    case 'sftp': {
      const batch = join(workdir, 'sftp-batch');
      await writeFile(batch, `put "${file.path}" "${receivedPath}"\n`);
      args = ['-q', '-P', String(port), ...clientOptions(setup), '-b', batch, target];
      break;
    }
    default: {
      const unknown: never = tool;
      throw new Error(`unknown ssh tool ${String(unknown)}`);
    }
  }
  const t0 = performance.now();
  const client = await startMeasured(...place.command('client', tool === 'scp' ? SCP : SFTP, args), { timeoutMs }).done;
  const wallSeconds = (performance.now() - t0) / 1000;

  // The per-connection processes must be reaped by the listener for their rusage to count.
  const listener = await server.childPid();
  const reaped = listener !== undefined && (await waitForNoChildren(listener, SSHD_REAP_TIMEOUT_MS));
  await server.signal('SIGTERM');
  const serverExit = await server.done;

  if (client.exitCode !== 0 || client.rusage === null) {
    return { kind: 'failed', reason: describeExit(tool, client) };
  }
  if (serverExit.rusage === null) return { kind: 'failed', reason: describeExit('sshd', serverExit) };
  if (!reaped) return { kind: 'failed', reason: 'sshd did not reap its connection processes in time' };
  return {
    kind: 'ok',
    wallSeconds,
    sender: client.rusage,
    receiver: serverExit.rusage,
    receivedPath,
    notes: [`cipher ${SSH_CIPHER}`],
  };
}
