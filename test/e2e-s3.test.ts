// stx-recv on S3 with the real binaries (issue 16): two daemons serve one bucket of a real Ceph
// RADOS Gateway (support/ceph.ts) behind a TCP balancer (support/balancer.ts, as HAProxy in TCP
// mode). A tree uploaded through one is downloaded through the other; a client cut from daemon A
// resumes on daemon B from the durable offset; a client moved to B while A still holds its upload
// waits out HELD_ELSEWHERE; a client whose daemon is SIGKILLed finishes on the other once the dead
// one's lease ran out. The storage-level cases (storage-contract-s3.ts) run on the same cluster.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { after, before, describe, it } from 'node:test';
import { S3Backend } from '../src/storage/s3/backend.js';
import { createS3Client } from '../src/storage/s3/client.js';
import { logEvents } from './support/partials.js';
import { startBalancer, type Balancer } from './support/balancer.js';
import { startCeph, type CephCluster } from './support/ceph.js';
import { CONTRACT_BUCKET, s3StorageCases } from './storage-contract-s3.js';
import { makeFile, makeTree, readJsonLine, RECV_CLI, runGet as runGetAs, runSend, sha256File, spawnSend, startDaemon, tempDir, watchSend, type Daemon } from './support/procs.js';

const MiB = 1024 * 1024;
const host = '127.0.0.1';
/** The dead daemon's uploads go to the other this long after its last renewal at most. */
const LEASE = '2s';
const IDLE = '4s';

let ceph: CephCluster;
/** The storage-level cases' client (storage-contract-s3.ts), on this file's cluster. */
let contractClient: S3Client | undefined;
let tmp: { dir: string; cleanup: () => Promise<void> };
let a: Daemon;
let b: Daemon;
let balancer: Balancer;
let home: string;

const runGet = (args: string[]): ReturnType<typeof runGetAs> => runGetAs(args, home);

/** Waits (bounded: 20 s) until the store records some of partial `name` durable, and returns how much. */
async function someDurable(name: string): Promise<number> {
  const s3 = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, credentials: ceph });
  try {
    const store = new S3Backend({ client: s3, bucket: 'stx', prefix: 'backups/' });
    let durable = 0;
    const deadline = Date.now() + 20_000;
    for (let i = 0; i < 1_000 && durable === 0 && Date.now() < deadline; i++) {
      durable = Math.max(0, ...(await store.partials()).filter((p) => p.record.name === name).map((p) => p.record.durable));
      if (durable === 0) await delay(50);
    }
    assert.ok(durable > 0, `nothing of ${name} durable after ${balancer.bytesUp} bytes`);
    return durable;
  } finally {
    s3.destroy();
  }
}

before(async () => {
  ceph = await startCeph();
  Object.assign(process.env, ceph.env);
  const s3 = createS3Client({ endpoint: ceph.endpoint, region: ceph.region, credentials: ceph });
  await s3.send(new CreateBucketCommand({ Bucket: 'stx' }));
  await s3.send(new CreateBucketCommand({ Bucket: CONTRACT_BUCKET }));
  contractClient = s3;
  tmp = await tempDir('stx-s3-');
  home = path.join(tmp.dir, 'home');
  // One server key for both, as behind a load balancer: the client pins one fingerprint.
  const key = path.join(tmp.dir, 'srv', 'k.pem');
  // A connection half-open at a daemon is closed (and its lease let go) after IDLE.
  const flags = ['--s3-endpoint', ceph.endpoint, '--allow-download', '--s3-lease', LEASE, '--idle-timeout', IDLE, '--log-format', 'json'];
  a = await startDaemon('s3://stx/backups', key, flags);
  b = await startDaemon('s3://stx/backups', key, flags); // after A: the key file is made once
  // 4 MiB/s: the uploads below last about 4 s, so that they are cut well before their END.
  balancer = await startBalancer(a.port, 4 * MiB);
});

after(async () => {
  await balancer.close();
  await Promise.all([a.stop('SIGKILL'), b.stop('SIGKILL')]);
  contractClient?.destroy();
  await ceph.stop();
  await tmp.cleanup();
});

// The storage contract and the several-daemons cases at the storage level, on this cluster.
s3StorageCases(() => {
  if (contractClient === undefined) throw new Error('no cluster');
  return { ceph, client: contractClient };
});

describe('stx-recv --store s3://, two daemons on one bucket', () => {
  it('a tree uploaded through daemon A comes back whole through daemon B: paths, sizes, modes, mtimes, SHA-256', async () => {
    const src = path.join(tmp.dir, 'src', 'tree');
    const files: [string, number, number, number][] = [
      ['big.bin', 9 * MiB + 3, 0o640, 1_600_000_000_250],
      ['empty', 0, 0o600, 1_500_000_000_000],
      ['deep/er/x.txt', 5, 0o644, 1_700_000_000_750],
    ];
    await makeTree(src, files);
    const sent = await runSend([host, String(a.port), src, '--json', '--quiet'], { STX_HOME: home });
    assert.equal(sent.code, 0, sent.stderr);
    const to = path.join(tmp.dir, 'got');
    const got = await runGet([host, String(b.port), 'tree', '--to', to, '--json', '--quiet']);
    assert.equal(got.code, 0, got.stderr);
    for (const [name, size, mode, mtime] of files) {
      const mine = path.join(src, name);
      const theirs = path.join(to, 'tree', name);
      const st = await lstat(theirs);
      assert.deepEqual([st.size, st.mode & 0o777, Math.round(st.mtimeMs)], [size, mode, mtime], name);
      assert.equal(await sha256File(theirs), await sha256File(mine), name);
    }
    assert.deepEqual((await readdir(path.join(to, 'tree'))).sort(), ['big.bin', 'deep', 'empty']);
  });

  describe('through the balancer', () => {
    it('a client cut from daemon A resumes on daemon B from the durable offset, and the file is whole', async () => {
      const src = path.join(tmp.dir, 'cut.bin');
      const size = 16 * MiB;
      const sha = await makeFile(src, size, 7);
      balancer.target = a.port;
      const client = watchSend(spawnSend([host, String(balancer.port), src, '--json', '--quiet', '--backoff', '100', '--retries', '30'], { STX_HOME: home }));
      const durable = await someDurable('cut.bin').catch((err: unknown) => {
        client.proc.kill('SIGKILL');
        throw err;
      });
      balancer.target = b.port;
      balancer.cutAll();
      const r = await client.result;
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['sha256'], sha);
      assert.ok(Number(json['reconnects']) >= 1);
      const opens = logEvents(b.stdout(), 'open').filter((e) => e['name'] === 'cut.bin');
      assert.ok(opens.some((e) => Number(e['offset']) >= durable), `daemon B resumed from ${JSON.stringify(opens.map((e) => e['offset']))}, ${durable} were durable`);
      console.log(`cut from A: ${durable} of ${size} bytes durable when cut; B resumed at ${JSON.stringify(opens.map((e) => e['offset']))}; ${balancer.bytesUp} bytes up through the balancer in all; ${String(json['reconnects'])} reconnects`);
      const to = path.join(tmp.dir, 'got-cut');
      const got = await runGet([host, String(a.port), 'cut.bin', '--to', to, '--quiet']);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(await sha256File(path.join(to, 'cut.bin')), sha);
    });

    it('a client moved to daemon B while A still holds its upload (A has not noticed the cut) is refused HELD_ELSEWHERE, waits, and resumes on B once A lets go', async () => {
      const src = path.join(tmp.dir, 'moved.bin');
      const size = 16 * MiB; // not done before the cut: 4 s at the balancer's 4 MiB/s
      const sha = await makeFile(src, size, 9);
      balancer.target = a.port;
      const client = watchSend(spawnSend([host, String(balancer.port), src, '--json', '--quiet', '--backoff', '200', '--retries', '40'], { STX_HOME: home }));
      const durable = await someDurable('moved.bin').catch((err: unknown) => {
        client.proc.kill('SIGKILL');
        throw err;
      });
      balancer.target = b.port;
      // A's connection stays open (half-open): A holds the lease and renews it until its idle timeout.
      balancer.cutClients();
      const r = await client.result;
      assert.equal(r.code, 0, r.stderr);
      const json = readJsonLine(r.stdout);
      assert.equal(json['sha256'], sha);
      assert.ok(Number(json['held_elsewhere']) >= 1, `held_elsewhere ${String(json['held_elsewhere'])}`);
      assert.ok(Number(json['held_elsewhere_seconds']) > 0, `held_elsewhere_seconds ${String(json['held_elsewhere_seconds'])}`);
      const refused = logEvents(b.stdout(), 'close').filter((e) => e['code'] === 'HELD_ELSEWHERE' && String(e['reason']).includes('moved.bin'));
      assert.equal(refused.length, Number(json['held_elsewhere']), 'each refusal is one the client counted');
      const opens = logEvents(b.stdout(), 'open').filter((e) => e['name'] === 'moved.bin');
      assert.ok(opens.some((e) => Number(e['offset']) >= durable), `daemon B resumed from ${JSON.stringify(opens.map((e) => e['offset']))}, ${durable} were durable`);
    });

    it("daemon A SIGKILLed mid-upload: the client finishes on daemon B once A's lease ran out", async () => {
      const src = path.join(tmp.dir, 'killed.bin');
      const size = 16 * MiB;
      const sha = await makeFile(src, size, 8);
      balancer.target = a.port;
      const client = watchSend(spawnSend([host, String(balancer.port), src, '--json', '--quiet', '--backoff', '200', '--retries', '40'], { STX_HOME: home }));
      const durable = await someDurable('killed.bin').catch((err: unknown) => {
        client.proc.kill('SIGKILL');
        throw err;
      });
      balancer.target = b.port;
      await a.stop('SIGKILL');
      const killed = Date.now();
      const r = await client.result;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readJsonLine(r.stdout)['sha256'], sha);
      const opens = logEvents(b.stdout(), 'open').filter((e) => e['name'] === 'killed.bin');
      assert.ok(opens.some((e) => Number(e['offset']) >= durable), `daemon B resumed from ${JSON.stringify(opens.map((e) => e['offset']))}, ${durable} were durable`);
      console.log(`A SIGKILLed: ${durable} of ${size} bytes durable then; B resumed at ${JSON.stringify(opens.map((e) => e['offset']))}; the client finished ${((Date.now() - killed) / 1000).toFixed(1)} s after the kill (lease ${LEASE})`);
      const to = path.join(tmp.dir, 'got-killed');
      const got = await runGet([host, String(b.port), 'killed.bin', '--to', to, '--quiet']);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(await sha256File(path.join(to, 'killed.bin')), sha);
    });
  });
});

describe('stx-recv --store: command line', () => {
  const recv = (args: string[]): { status: number | null; stderr: string } => {
    const r = spawnSync(process.execPath, [RECV_CLI, '--listen', '127.0.0.1:0', '--key', path.join(tmp.dir, 'srv', 'k.pem'), ...args], { encoding: 'utf8', timeout: 30_000 });
    return { status: r.status, stderr: r.stderr };
  };

  it('refuses --store without --s3-endpoint, with --out, or naming no bucket (exit 2); a bucket that does not exist fails the start (exit 1)', () => {
    const cases: [string[], number, RegExp][] = [
      [['--store', 's3://stx'], 2, /--store needs --s3-endpoint/],
      [['--store', 's3://stx', '--s3-endpoint', ceph.endpoint, '--out', tmp.dir], 2, /--out and --store are alternatives/],
      [['--store', 'stx', '--s3-endpoint', ceph.endpoint], 2, /s3:\/\/BUCKET/],
      [['--store', 's3://stx/../x', '--s3-endpoint', ceph.endpoint], 2, /not a key prefix/],
      [['--out', tmp.dir, '--s3-endpoint', ceph.endpoint], 2, /--s3-endpoint goes with --store/],
      [['--store', 's3://stx', '--s3-endpoint', ceph.endpoint, '--max-memory', '16M'], 2, /with --store, --max-memory must be at least 32M/],
      [['--store', 's3://no-such-bucket', '--s3-endpoint', ceph.endpoint], 1, /no-such-bucket/],
    ];
    for (const [args, status, message] of cases) {
      const r = recv(args);
      assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
