// A one-node Ceph for the S3 tests (issue 16): one ceph-mon, one ceph-osd on memstore (data in
// RAM) and radosgw's beast frontend, all on 127.0.0.1 in a temporary directory, with `auth = none`
// inside the cluster and one RGW user whose keys the tests sign with. One cluster per test file:
// start it in before(), stop it in after(). Stopping is SIGKILL (0.2 s; SIGTERM takes ~14 s) and
// removes the directory; the processes are killed on exit too, so a crashed test leaves none.
//
// Needs Debian's ceph-mon, ceph-osd and radosgw packages (.ci/run installs them when missing).
// What each option is for (measured on the development machine, issue 16):
// - `ms mon client mode = secure crc`: with auth none radosgw hangs on its mon session without it;
// - `paxos propose interval` 0.01: the mon otherwise commits once a second (≈ 15 s more to start);
// - `mon allow pool size one`, `osd pool default size = 1`: one OSD holds every pool;
// - one placement group per pool: radosgw creates ~8 pools at start, and peering 32 PGs each on
//   one loaded OSD took seconds.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface CephCluster {
  /** radosgw's S3 endpoint, http://127.0.0.1:PORT. */
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** Any region does; the SDK wants one. */
  readonly region: string;
  /** Milliseconds from start() to the S3 user existing. */
  readonly startMs: number;
  /** The environment an stx-recv child needs to reach it (AWS_* variables). */
  readonly env: Readonly<Record<string, string>>;
  /** SIGKILLs the daemons and removes the directory. Idempotent. */
  stop(): Promise<void>;
}

/** The binaries the cluster needs, missing ones listed (empty: all there). */
export function missingCephBinaries(): string[] {
  return ['monmaptool', 'osdmaptool', 'ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin'].filter(
    (bin) => spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status !== 0,
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(cmd: string, args: string[], dir: string): void {
  const t0 = Date.now();
  const result = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', timeout: 60_000 });
  if (process.env['STX_CEPH_DEBUG'] !== undefined) process.stderr.write(`${cmd} ${Date.now() - t0} ms\n`);
  if (result.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr}${result.stdout}`);
}

const START_TIMEOUT_MS = 60_000;

/** Whether radosgw answers GET / with 200 (no keep-alive: an idle socket would hold the test process). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** Starts a fresh one-node cluster with an S3 user; rejects (after stopping it) if it does not come up. */
export async function startCeph(): Promise<CephCluster> {
  const missing = missingCephBinaries();
  if (missing.length > 0) {
    throw new Error(`Ceph is not installed (missing ${missing.join(', ')}): apt-get install --no-install-recommends ceph-mon ceph-osd radosgw (.ci/run does)`);
  }
  const started = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'stx-ceph-'));
  const mine = new Set<ChildProcess>();
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    const exits = [...mine].map((child) => (child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve))));
    for (const child of mine) {
      child.kill('SIGKILL');
      children.delete(child);
    }
    const timer = new AbortController();
    await Promise.race([Promise.all(exits), delay(5_000, undefined, { signal: timer.signal }).catch(() => undefined)]);
    timer.abort();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [monPort, rgwPort] = [await freePort(), await freePort()];
    const fsid = randomUUID();
    const conf = path.join(dir, 'ceph.conf');
    writeFileSync(
      conf,
      `[global]
fsid = ${fsid}
mon host = v2:127.0.0.1:${monPort}
public addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = secure crc
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
paxos propose interval = 0.01
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
mon data = ${dir}/mon
osd data = ${dir}/osd
osd objectstore = memstore
memstore device bytes = 4294967296
keyring = ${dir}/keyring
debug rgw = 0/0
debug ms = 0/0
debug osd = 0/0
debug objecter = 0/0
debug rados = 0/0
debug monc = 0/0
debug mon = 0/0
debug paxos = 0/0
debug memstore = 0/0
debug auth = 0/0
debug filestore = 0/0
debug journal = 0/0
rgw enable ops log = false
rgw enable usage log = false
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1
rgw data = ${dir}/rgw
rgw dns name = 127.0.0.1
`,
    );
    for (const sub of ['run', 'log', 'mon', 'osd', 'rgw']) spawnSync('mkdir', ['-p', path.join(dir, sub)]);
    const common = ['-c', conf];
    run('monmaptool', ['--create', '--add', 'a', `v2:127.0.0.1:${monPort}`, '--fsid', fsid, 'monmap'], dir);
    run('osdmaptool', [...common, '--createsimple', '1', '--clobber', 'osdmap'], dir);
    run('ceph-mon', [...common, '--mkfs', '-i', 'a', '--monmap', 'monmap', '--osdmap', 'osdmap'], dir);
    const daemon = (cmd: string, args: string[]): void => {
      const out = openSync(path.join(dir, 'log', `${cmd}.out`), 'a');
      const child = spawn(cmd, [...common, '-f', ...args], { cwd: dir, stdio: ['ignore', out, out] });
      closeSync(out);
      mine.add(child);
      children.add(child);
    };
    daemon('ceph-mon', ['-i', 'a']);
    // The OSD's mkfs asks the running mon for the cluster's maps.
    run('ceph-osd', [...common, '-i', '0', '--mkfs', '--osd-uuid', randomUUID(), '--monmap', 'monmap'], dir);
    daemon('ceph-osd', ['-i', '0']);
    daemon('radosgw', ['-n', 'client.rgw']);
    const endpoint = `http://127.0.0.1:${rgwPort}`;
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (let tries = 0; ; tries++) {
      const up = await answers(rgwPort);
      if (up) break;
      const dead = [...mine].find((child) => child.exitCode !== null || child.signalCode !== null);
      if (dead !== undefined) throw new Error(`${dead.spawnfile} exited (${dead.exitCode ?? dead.signalCode}); logs in ${dir}/log`);
      if (Date.now() > deadline || tries > 2_000) throw new Error(`radosgw did not answer within ${START_TIMEOUT_MS} ms`);
      await delay(50);
    }
    const accessKeyId = 'STXTEST' + randomUUID().replaceAll('-', '').slice(0, 13).toUpperCase();
    const secretAccessKey = randomUUID().replaceAll('-', '');
    run('radosgw-admin', [...common, 'user', 'create', '--uid=stx', '--display-name=stx', `--access-key=${accessKeyId}`, `--secret=${secretAccessKey}`], dir);
    const region = 'default';
    return {
      endpoint,
      accessKeyId,
      secretAccessKey,
      region,
      startMs: Date.now() - started,
      env: { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_REGION: region },
      stop,
    };
  } catch (err) {
    // Keep the logs of a cluster that failed to start, for whoever reads the error.
    const logs = path.join(os.tmpdir(), `stx-ceph-failed-${process.pid}`);
    spawnSync('cp', ['-r', path.join(dir, 'log'), logs]);
    await stop();
    throw err instanceof Error ? new Error(`${err.message} (logs: ${logs})`) : err;
  }
}
