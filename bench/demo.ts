// `npm run demo`: a real run on this machine. Starts stx-recv on 127.0.0.1, uploads a generated
// file with stx-send through a proxy that cuts the connection midway, and shows the resume and
// the verified SHA-256.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeFile, sha256File, startDaemon, SEND_CLI } from '../test/support/procs.js';
import { startProxy } from '../test/support/proxy.js';

const MiB = 1024 * 1024;
const SIZE = Number(process.env['STX_DEMO_MIB'] ?? 256) * MiB;

function say(text: string): void {
  process.stdout.write(`\n== ${text}\n`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stx-demo-'));
  const out = path.join(dir, 'recv');
  const home = path.join(dir, 'client-home');
  try {
    say(`generating a ${SIZE / MiB} MiB file`);
    const src = path.join(dir, 'payload.bin');
    const sha = await makeFile(src, SIZE, Date.now());
    process.stdout.write(`   ${src}\n   sha256 ${sha}\n`);

    say(`starting: stx-recv --listen 127.0.0.1:0 --out ${out}`);
    const daemon = await startDaemon(out, path.join(dir, 'server-home', 'server_key.pem'));
    process.stdout.write(daemon.stderr().replace(/^/gm, '   '));

    // A proxy between client and daemon that cuts the connection once, 40% into the file, and
    // keeps the pace at 256 MiB/s so the cut lands mid-transfer on any machine.
    const proxy = await startProxy(daemon.port, { cutAt: [Math.floor(SIZE * 0.4)], bytesPerSecond: 256 * MiB });
    say(`starting: stx-send 127.0.0.1 <proxy port ${proxy.port}> ${path.basename(src)}  (the proxy cuts the connection at 40%)`);
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [SEND_CLI, '127.0.0.1', String(proxy.port), src, '--json', '--backoff', '100'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, STX_HOME: home },
      });
      child.stderr.on('data', (d: Buffer) => process.stdout.write(d.toString().replace(/^/gm, '   ')));
      child.stdout.on('data', (d: Buffer) => process.stdout.write(`   result: ${d.toString()}`));
      child.on('exit', resolve);
    });
    await proxy.close();
    if (code !== 0) throw new Error(`stx-send exited ${String(code)}`);
    process.stdout.write(`   the proxy cut the connection ${proxy.cuts} time(s); ${(proxy.bytesUp / MiB).toFixed(1)} MiB crossed it for a ${SIZE / MiB} MiB file\n`);

    say('checking the received file');
    const got = await sha256File(path.join(out, path.basename(src)));
    process.stdout.write(`   sent     ${sha}\n   received ${got}\n`);
    if (got !== sha) throw new Error('the received file differs');
    process.stdout.write('   identical.\n');

    say('stopping stx-recv (SIGTERM)');
    const exit = await daemon.stop('SIGTERM');
    process.stdout.write(`   exit ${String(exit)}\n`);
    const events = daemon
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"event":"open"') || l.includes('"event":"upload"'));
    say("the daemon's log of the upload (one JSON line per event)");
    for (const l of events) process.stdout.write(`   ${l}\n`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
