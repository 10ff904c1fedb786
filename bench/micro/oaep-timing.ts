// Does the server's reply give away whether RSA-OAEP failed (issue 14, item 9; spec §7.1)? Three
// kinds of bad KEY_EXCHANGE + CLIENT_FINISHED, in turn, many times each; medians of the server's
// work (in this process) and of its reply time (a real stx-recv on 127.0.0.1):
//
//   oaep-fails      the ciphertext has one bit flipped: OAEP decoding fails
//   other-secret    it decrypts to 32 bytes other than the client keyed with: the record fails to open
//   wrong-finished  the right secret, CLIENT_FINISHED.verify wrong: the record opens, the MAC fails
//
// The first two are the oracle question (an attacker who alters a ciphertext does not know what
// it decrypts to); the third is where the issue saw ~80 µs. No timing is asserted anywhere.
//
//   node dist/bench/micro/oaep-timing.js [--samples N] [--bits 3072] [--no-daemon]
import { spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FrameChannel } from '../../src/crypto/channel.js';
import { ClientHandshake, ServerHandshake, type ClientKeys } from '../../src/crypto/handshake.js';
import { finishedMac } from '../../src/crypto/key-schedule.js';
import { oaepEncrypt } from '../../src/crypto/oaep.js';
import { encodeBody } from '../../src/proto/codec.js';
import { StxError } from '../../src/proto/errors.js';

type Kind = 'oaep-fails' | 'other-secret' | 'wrong-finished';
const KINDS: readonly Kind[] = ['oaep-fails', 'other-secret', 'wrong-finished'];

const RECV_CLI = fileURLToPath(new URL('../../src/recv/cli.js', import.meta.url));
/** The daemon's own limits on handshakes from one address would refuse a benchmark's hundreds. */
const DAEMON_FLAGS = ['--max-handshakes', '100000', '--max-handshakes-per-source', '100000', '--handshake-rate-per-source', '0'];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  const v = i < 0 ? NaN : Number(process.argv[i + 1]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** The client's side, altered for `kind`: a ClientHandshake whose KEY_EXCHANGE or FINISHED is wrong. */
function badClient(kind: Kind): ClientHandshake {
  switch (kind) {
    case 'oaep-fails':
      return new ClientHandshake({
        oaepEncrypt: (k, secret, label) => {
          const c = oaepEncrypt(k, secret, label);
          c[c.length - 40] = (c[c.length - 40] ?? 0) ^ 1;
          return c;
        },
      });
    case 'other-secret':
      return new ClientHandshake({ oaepEncrypt: (k, _secret, label) => oaepEncrypt(k, randomBytes(32), label) });
    case 'wrong-finished':
      return new ClientHandshake();
  }
}

/** The CLIENT_FINISHED body the client seals for `kind`. */
function finishedBody(kind: Kind, keys: ClientKeys): Buffer {
  if (kind !== 'wrong-finished') return keys.clientFinished;
  const verify = finishedMac(keys.keys.cFinishedKey, keys.transcriptHash);
  verify[0] = (verify[0] ?? 0) ^ 1;
  return encodeBody({ type: 'CLIENT_FINISHED', verify });
}

/** The cases in a random order: a case's place in the round must not bias its figures. */
function shuffled(): Kind[] {
  const out = [...KINDS];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j] ?? out[i] ?? 'oaep-fails', out[i] ?? 'oaep-fails'];
  }
  return out;
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

/** Median and quartiles in µs, from samples in ns. */
function summary(ns: number[]): { median: number; p25: number; p75: number } {
  const s = [...ns].sort((a, b) => a - b);
  return { median: quantile(s, 0.5) / 1000, p25: quantile(s, 0.25) / 1000, p75: quantile(s, 0.75) / 1000 };
}

function report(title: string, samples: Record<Kind, number[]>): void {
  process.stdout.write(`\n${title}\n\n| case | samples | median µs | p25–p75 µs | median − oaep-fails µs |\n|---|---:|---:|---:|---:|\n`);
  const base = summary(samples['oaep-fails']).median;
  for (const kind of KINDS) {
    const s = summary(samples[kind]);
    const diff = s.median - base;
    process.stdout.write(`| ${kind} | ${samples[kind].length} | ${s.median.toFixed(1)} | ${s.p25.toFixed(1)}–${s.p75.toFixed(1)} | ${diff >= 0 ? '+' : ''}${diff.toFixed(1)} |\n`);
  }
}

/**
 * The server's work from KEY_EXCHANGE + CLIENT_FINISHED to its ERROR, as the daemon does it:
 * the frames off the channel, onKeyExchange, the first record, onClientFinished, the ERROR sealed.
 */
function serverWork(serverKey: KeyObject, kind: Kind): { wallNs: number; cpuNs: number } {
  const client = badClient(kind);
  const server = new ServerHandshake({ serverKey });
  const serverPreamble = server.onClientPreamble(client.preamble());
  const rx = new FrameChannel();
  rx.push(client.clientHello());
  const hello = rx.next();
  if (hello?.frame.type !== 'CLIENT_HELLO') throw new Error('no CLIENT_HELLO');
  const crx = new FrameChannel();
  crx.push(server.onClientHello(hello.raw, hello.frame));
  const sh = crx.next();
  if (sh?.frame.type !== 'SERVER_HELLO') throw new Error('no SERVER_HELLO');
  client.onServerPreamble(serverPreamble);
  client.onServerHello(sh.raw, sh.frame);
  const keys = client.finish();
  const wire = Buffer.concat([keys.keyExchange, ...keys.sealer.seal(finishedBody(kind, keys))]);

  const channel = FrameChannel.controlOnly();
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  channel.push(wire);
  try {
    const kx = channel.next();
    if (kx?.frame.type !== 'KEY_EXCHANGE') throw new Error('no KEY_EXCHANGE');
    const sk = server.onKeyExchange(kx.raw, kx.frame);
    channel.startOpening(sk.opener);
    channel.startSealing(sk.sealer);
    const fin = channel.next();
    if (fin?.frame.type !== 'CLIENT_FINISHED') throw new Error('no CLIENT_FINISHED');
    server.onClientFinished(fin.frame);
    throw new Error(`${kind}: the handshake succeeded`);
  } catch (err) {
    if (!(err instanceof StxError) || err.code !== 'HANDSHAKE_FAILED') throw err;
    channel.encode({ type: 'ERROR', code: err.wire, message: 'handshake failed' });
  }
  const wallNs = Number(process.hrtime.bigint() - start);
  const used = process.cpuUsage(cpu);
  return { wallNs, cpuNs: (used.user + used.system) * 1000 };
}

interface Daemon {
  readonly port: number;
  stop(): Promise<void>;
}

async function startDaemon(dir: string): Promise<Daemon> {
  const proc = spawn(process.execPath, [RECV_CLI, '--listen', '127.0.0.1:0', '--out', path.join(dir, 'out'), '--key', path.join(dir, 'key.pem'), '--log-level', 'error', ...DAEMON_FLAGS], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, STX_HOME: dir },
  });
  let err = '';
  const port = await new Promise<number>((resolve, reject) => {
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      const m = /listening on \S+:(\d+)/.exec(err);
      if (m?.[1] !== undefined) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`stx-recv exited (${String(code)}): ${err}`)));
  });
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

/** One bad handshake against the daemon: ns from writing KEY_EXCHANGE + CLIENT_FINISHED to the first byte (or close) back. */
function replyTime(port: number, kind: Kind): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = badClient(kind);
    const rx = new FrameChannel();
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let stage: 'hello' | 'reply' | 'done' = 'hello';
    let start = 0n;
    let pre: Buffer | null = null;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${kind}: no reply in 10 s`));
    }, 10_000);
    const finish = (): void => {
      if (stage !== 'reply') return;
      const ns = Number(process.hrtime.bigint() - start);
      stage = 'done';
      clearTimeout(timer);
      socket.destroy();
      resolve(ns);
    };
    socket.on('error', () => finish());
    socket.on('close', () => {
      if (stage === 'hello') {
        clearTimeout(timer);
        reject(new Error(`${kind}: closed before SERVER_HELLO`));
      }
      finish();
    });
    socket.on('data', (d: Buffer) => {
      if (stage === 'reply') {
        finish();
        return;
      }
      if (stage !== 'hello') return;
      rx.push(d);
      pre ??= rx.readPreamble();
      if (pre === null) return;
      const hello = rx.next();
      if (hello === null) return;
      if (hello.frame.type !== 'SERVER_HELLO') {
        stage = 'done';
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`${kind}: ${hello.frame.type} instead of SERVER_HELLO`));
        return;
      }
      client.onServerPreamble(pre);
      client.onServerHello(hello.raw, hello.frame);
      const keys = client.finish();
      const wire = Buffer.concat([keys.keyExchange, ...keys.sealer.seal(finishedBody(kind, keys))]);
      stage = 'reply';
      start = process.hrtime.bigint();
      socket.write(wire);
    });
    socket.once('connect', () => socket.write(Buffer.concat([client.preamble(), client.clientHello()])));
  });
}

const samples = arg('--samples', 1000);
const bits = arg('--bits', 3072);
const benchKey = generateKeyPairSync('rsa', { modulusLength: bits }).privateKey;
process.stdout.write(`Node ${process.version}, ${os.cpus().length} CPUs, RSA ${bits}, ${samples} samples per case, cases in turn in a random order\n`);

const wallIn: Record<Kind, number[]> = { 'oaep-fails': [], 'other-secret': [], 'wrong-finished': [] };
const cpuIn: Record<Kind, number[]> = { 'oaep-fails': [], 'other-secret': [], 'wrong-finished': [] };
for (let i = 0; i < samples + 20; i++) {
  for (const kind of shuffled()) {
    const { wallNs, cpuNs } = serverWork(benchKey, kind);
    if (i < 20) continue;
    wallIn[kind].push(wallNs);
    cpuIn[kind].push(cpuNs);
  }
}
report('Server work in this process, wall time (KEY_EXCHANGE + CLIENT_FINISHED → sealed ERROR)', wallIn);
report('The same, CPU time of this process', cpuIn);

if (!process.argv.includes('--no-daemon')) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stx-oaep-timing-'));
  const daemon = await startDaemon(dir);
  try {
    const wire: Record<Kind, number[]> = { 'oaep-fails': [], 'other-secret': [], 'wrong-finished': [] };
    for (let i = 0; i < samples + 20; i++) {
      for (const kind of shuffled()) {
        const ns = await replyTime(daemon.port, kind);
        if (i >= 20) wire[kind].push(ns);
      }
    }
    report('Reply time of a real stx-recv on 127.0.0.1 (its own key: RSA 3072)', wire);
  } finally {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
