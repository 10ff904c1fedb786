// The tree bench (issue 13 item 7, `npm run bench -- --tree`): whole trees, many small files,
// against `rsync -a` over ssh, `scp -r` and `tar c | ssh … tar x`, all to one private sshd on
// 127.0.0.1 (the ssh cipher of bench/baseline-ssh.ts), and stx-send to stx-recv. Two
// trees: 10,000 files of 4 KiB in 100 directories, and a mixed tree of 1,000 files from 1 KiB to
// 64 MiB (~1 GiB); `--tree-scale F` makes both F times as many files (F < 1 for a quick run).
// Runs are interleaved (every contender once, then again), each into a fresh directory (nothing
// is deleted until the end), the page cache is written back (`sync`) before each, and every file
// of every run is verified (path and SHA-256) against the source. Writes bench/RESULTS-tree.md (or into --out DIR).
//
// stx-recv runs as it is deployed and as sshd does: one daemon for every run (each run sends
// `--to` a directory of its own), started before the first and warmed by one untimed transfer
// of a tree shaped as the small one with other bytes (as a daemon that served last night's
// backup is). A fresh daemon's first transfer pays for compiling its code (V8 compiles the hot
// paths over the first thousands of files: ~1.5 CPU s more for 10,000 files of 4 KiB); the row
// "stx, fresh stx-recv per run" starts one for each run and shows that cost.
//
// Durability differs, and the table says so: stx answers a file only once it is fsync'd under
// its name (§9.11, batched); rsync, scp and tar never fsync.
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo, cpus, loadavg } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

import { startStxDaemon, type StxDaemon } from './contenders/stx.js';
import { ensureTools } from './lib/apt.js';
import { median } from './lib/measure.js';
import { freePort } from './lib/net.js';
import { commandLine, PROJECT_ROOT, stxCommands } from './lib/paths.js';

const execFileAsync = promisify(execFile);
const { sendCli: SEND_CLI } = stxCommands();
const SSH_CIPHER = 'aes256-gcm@openssh.com';
const KiB = 1024;
const MiB = 1024 * KiB;
/** One run of one contender on one tree may take this long before it counts as failed. */
const RUN_TIMEOUT_MS = 30 * 60 * 1000;
const SSHD_READY_MS = 10_000;
/** Room kept free besides the trees and their copies. */
const DISK_MARGIN_BYTES = 256 * MiB;

interface TreeSpec {
  readonly name: string;
  readonly label: string;
  /** Relative path and size of every file. */
  readonly files: readonly { readonly path: string; readonly size: number }[];
  /** Seeds the files' bytes (default: from the number of files). */
  readonly seed?: number;
}

/** A deterministic stream of numbers in [0, 1) (xorshift32). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function smallTree(scale: number): TreeSpec {
  const total = Math.max(100, Math.round(10_000 * scale));
  const dirs = Math.max(1, Math.round(total / 100));
  const files = Array.from({ length: total }, (_, i) => ({ path: `d${String(i % dirs).padStart(3, '0')}/f${String(i).padStart(5, '0')}`, size: 4 * KiB }));
  return { name: 'small', label: `${total} files of 4 KiB in ${dirs} directories`, files };
}

/**
 * 1,000 files: 90 % from 1 KiB to 1 MiB, 9 % from 1 to 16 MiB, 1 % from 16 to 64 MiB, each
 * log-uniform (expected total ~0.95 GiB), in 20 directories.
 */
function mixedTree(scale: number): TreeSpec {
  const total = Math.max(20, Math.round(1000 * scale));
  const next = random(1000);
  const logUniform = (lo: number, hi: number): number => Math.round(lo * (hi / lo) ** next());
  const files = Array.from({ length: total }, (_, i) => {
    const band = i % 100;
    const size = band === 0 ? logUniform(16 * MiB, 64 * MiB) : band < 10 ? logUniform(MiB, 16 * MiB) : logUniform(KiB, MiB);
    return { path: `m${String(i % 20).padStart(2, '0')}/file-${String(i).padStart(4, '0')}.bin`, size };
  });
  const bytes = files.reduce((n, f) => n + f.size, 0);
  return { name: 'mixed', label: `${total} files from 1 KiB to 64 MiB, ${(bytes / MiB).toFixed(0)} MiB`, files };
}

async function writeTree(root: string, spec: TreeSpec): Promise<Map<string, string>> {
  const manifest = new Map<string, string>();
  const next = random(spec.seed ?? spec.files.length + 7);
  const block = Buffer.alloc(MiB);
  for (const f of spec.files) {
    const file = join(root, f.path);
    await mkdir(join(file, '..'), { recursive: true });
    const fh = await open(file, 'w');
    const hash = createHash('sha256');
    try {
      for (let at = 0; at < f.size; at += block.length) {
        const n = Math.min(block.length, f.size - at);
        for (let i = 0; i < n; i += 4) block.writeUInt32LE((next() * 2 ** 32) >>> 0, i);
        await fh.write(block, 0, n);
        hash.update(block.subarray(0, n));
      }
    } finally {
      await fh.close();
    }
    manifest.set(f.path, hash.digest('hex'));
  }
  return manifest;
}

/** Whether `dir` holds exactly the manifest's files with their SHA-256 (nothing missing, nothing more). */
async function verify(dir: string, manifest: ReadonlyMap<string, string>): Promise<string | null> {
  const seen = new Set<string>();
  const walk = async (at: string): Promise<string | null> => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      const full = join(at, entry.name);
      if (entry.isDirectory()) {
        if (entry.name === '.stx' && at === dir) continue;
        const bad = await walk(full);
        if (bad !== null) return bad;
      } else {
        const rel = relative(dir, full);
        const want = manifest.get(rel);
        if (want === undefined) return `unexpected ${rel}`;
        const got = createHash('sha256').update(await readFile(full)).digest('hex');
        if (got !== want) return `${rel}: SHA-256 differs`;
        seen.add(rel);
      }
    }
    return null;
  };
  const bad = await walk(dir).catch((err: unknown) => `cannot read ${dir}: ${String(err)}`);
  if (bad !== null) return bad;
  return seen.size === manifest.size ? null : `${manifest.size - seen.size} files missing`;
}

interface Sshd {
  readonly port: number;
  readonly clientKey: string;
  stop(): void;
}

async function startSshd(dir: string): Promise<Sshd | string> {
  await mkdir(dir, { recursive: true });
  if (process.getuid?.() === 0) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = join(dir, 'host');
  const clientKey = join(dir, 'client');
  for (const key of [hostKey, clientKey]) await execFileAsync('/usr/bin/ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'stx-bench', '-f', key]);
  await writeFile(join(dir, 'ak'), await readFile(`${clientKey}.pub`));
  const port = await freePort();
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, 'pid')}`,
    `AuthorizedKeysFile ${join(dir, 'ak')}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no',
    'StrictModes no',
    'MaxStartups 100',
  ];
  await writeFile(join(dir, 'cfg'), `${config.join('\n')}\n`);
  const proc = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), SSHD_READY_MS);
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (/Server listening/.test(err)) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    proc.once('exit', () => resolve(false));
  });
  if (!ready) {
    proc.kill('SIGKILL');
    return `sshd did not start: ${err.slice(0, 300)}`;
  }
  return { port, clientKey, stop: () => proc.kill('SIGTERM') };
}

function sshCommand(sshd: Sshd): string {
  return [
    'ssh -F /dev/null',
    `-i ${sshd.clientKey}`,
    `-p ${sshd.port}`,
    `-c ${SSH_CIPHER}`,
    '-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o Compression=no',
  ].join(' ');
}

const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** Runs `command` in sh, timed; resolves to the wall seconds, or the reason it failed. */
function timed(command: string, env: NodeJS.ProcessEnv = process.env): Promise<number | string> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const proc = spawn('sh', ['-c', command], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (err += err.length < 4000 ? d : ''));
    const timer = setTimeout(() => proc.kill('SIGKILL'), RUN_TIMEOUT_MS);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code === 0 ? (performance.now() - t0) / 1000 : `exit ${code ?? 'signal'}: ${err.slice(0, 300)}`);
    });
  });
}

interface Contender {
  readonly name: string;
  /** Copies `src` (a directory named `tree`) so that it arrives as `dest/tree`; seconds or why not. */
  run(src: string, dest: string, work: string): Promise<number | string>;
}

/**
 * stx-send to one stx-recv that serves every run, started at the first and warmed by an untimed
 * transfer of `warmUp` (a tree of other files). Its --out is the directory every run's `dest` is
 * made in; each run sends `--to` its own.
 */
class RunningStx implements Contender {
  readonly name = 'stx';
  #daemon: Promise<StxDaemon | { failed: string }> | null = null;

  constructor(private readonly warmUp: () => Promise<string>) {}

  async run(src: string, dest: string, work: string): Promise<number | string> {
    const env = { ...process.env, STX_HOME: join(work, 'stx-home') };
    this.#daemon ??= this.#start(dirname(dest), env);
    const daemon = await this.#daemon;
    if ('failed' in daemon) return daemon.failed;
    return timed(`${sendCommand(daemon, src)} --to ${quote(basename(dest))}`, env);
  }

  async #start(out: string, env: NodeJS.ProcessEnv): Promise<StxDaemon | { failed: string }> {
    const daemon = await startStxDaemon(out, env, RUN_TIMEOUT_MS, undefined, ['--log-level', 'warn']);
    if ('failed' in daemon) return daemon;
    const warm = await timed(`${sendCommand(daemon, await this.warmUp())} --to warm-up`, env);
    return typeof warm === 'string' ? { failed: `warm-up transfer: ${warm}` } : daemon;
  }

  async stop(): Promise<void> {
    if (this.#daemon === null) return;
    const daemon = await this.#daemon;
    if ('failed' in daemon) return;
    await daemon.proc.signal('SIGTERM');
    await daemon.proc.done;
  }
}

function sendCommand(daemon: StxDaemon, src: string): string {
  const [program, args] = commandLine(SEND_CLI, ['127.0.0.1', String(daemon.port), src, '--fingerprint', daemon.fingerprint, '--quiet']);
  return [program, ...args].map(quote).join(' ');
}

function contenders(sshd: Sshd | string, rsyncReady: boolean, running: RunningStx): Contender[] {
  const target = `${userInfo().username}@127.0.0.1`;
  const list: Contender[] = [
    running,
    {
      name: 'stx, fresh stx-recv per run',
      run: async (src, dest, work) => {
        const env = { ...process.env, STX_HOME: join(work, 'stx-home') };
        const daemon = await startStxDaemon(dest, env, RUN_TIMEOUT_MS, undefined, ['--log-level', 'warn']);
        if ('failed' in daemon) return daemon.failed;
        try {
          return await timed(sendCommand(daemon, src), env);
        } finally {
          await daemon.proc.signal('SIGTERM');
          await daemon.proc.done;
        }
      },
    },
  ];
  if (typeof sshd === 'string') return list;
  const ssh = sshCommand(sshd);
  if (rsyncReady) list.push({ name: 'rsync -a (ssh)', run: (src, dest) => timed(`rsync -a -e ${quote(ssh)} ${quote(src)} ${target}:${quote(dest)}/`) });
  list.push({
    name: 'scp -r',
    run: (src, dest) =>
      timed(
        `scp -O -q -r -F /dev/null -i ${quote(sshd.clientKey)} -P ${sshd.port} -c ${SSH_CIPHER} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR ${quote(src)} ${target}:${quote(dest)}/`,
      ),
  });
  list.push({ name: 'tar c over ssh, tar x', run: (src, dest) => timed(`tar cf - -C ${quote(join(src, '..'))} tree | ${ssh} ${target} ${quote(`tar xf - -C ${quote(dest)}`)}`) });
  return list;
}

interface Outcome {
  readonly contender: string;
  readonly tree: string;
  readonly seconds: number[];
  readonly failures: string[];
}

function parseScale(argv: readonly string[]): { scale: number; runs: number; outDir: string } {
  const at = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const scale = Number(at('--tree-scale') ?? '1');
  const runs = Number(at('--tree-runs') ?? '2');
  if (!(scale > 0 && scale <= 1) || !Number.isInteger(runs) || runs < 1 || runs > 20) throw new Error('--tree-scale takes a number in (0, 1], --tree-runs 1 to 20');
  return { scale, runs, outDir: at('--out') ?? join(PROJECT_ROOT, 'bench') };
}

export async function runTreeBench(argv: readonly string[], log: (line: string) => void): Promise<number> {
  const { scale, runs, outDir } = parseScale(argv);
  const sshMissing = await ensureTools(
    [
      { path: '/usr/sbin/sshd', pkg: 'openssh-server' },
      { path: '/usr/bin/ssh', pkg: 'openssh-client' },
      { path: '/usr/bin/scp', pkg: 'openssh-client' },
    ],
    'the tree bench',
  );
  const rsyncMissing = await ensureTools([{ path: '/usr/bin/rsync', pkg: 'rsync' }], 'the tree bench');
  const work = await mkdtemp(join(tmpdir(), 'stx-tree-bench-'));
  const sshd = sshMissing === null ? await startSshd(join(work, 'sshd')) : `skipped: ${sshMissing}`;
  if (typeof sshd === 'string') log(`ssh contenders ${sshd}`);
  if (rsyncMissing !== null) log(`rsync skipped: ${rsyncMissing}`);
  const running = new RunningStx(async () => {
    const root = join(work, 'src-warm-up', 'tree');
    // The small tree's shape with other bytes: what a daemon that served last night's backup saw.
    await writeTree(root, { ...smallTree(scale), name: 'warm-up', seed: 0x5eed });
    return root;
  });
  const all = contenders(sshd, rsyncMissing === null, running);
  const outcomes: Outcome[] = [];
  try {
    // Every run's copy stays until the end (below): the sources and all copies must fit at once.
    const trees = [smallTree(scale), mixedTree(scale)];
    const needed = trees.reduce((n, t) => n + (1 + runs * all.length) * t.files.reduce((b, f) => b + Math.max(f.size, 4 * KiB), 0), 0);
    const { bavail, bsize } = await statfs(work);
    if (bavail * bsize < needed + DISK_MARGIN_BYTES) {
      throw new Error(`not enough free space in ${work}: ${runs} runs of ${all.length} contenders keep ${(needed / 2 ** 30).toFixed(1)} GiB of copies until the end`);
    }
    for (const spec of trees) {
      const src = join(work, `src-${spec.name}`, 'tree');
      log(`${spec.name} tree: writing ${spec.label}`);
      const manifest = new Map([...(await writeTree(src, spec))].map(([k, v]) => [`tree/${k}`, v]));
      const byName = new Map(all.map((c) => [c.name, { contender: c.name, tree: spec.label, seconds: [] as number[], failures: [] as string[] }]));
      for (let run = 1; run <= runs; run++) {
        for (const [i, c] of all.entries()) {
          // A fresh directory per run, all removed only at the end: on ext4, files created within
          // a minute or so of deleting many others cost several times as much (the inode
          // allocator skips and re-reads each recently deleted inode), so removing the last run's
          // tree here would slow the next run by seconds, whoever it is.
          const dest = join(work, 'dest', `${spec.name}-${run}-${i}`);
          await mkdir(dest, { recursive: true });
          await execFileAsync('sync');
          const got = await c.run(src, dest, work);
          const record = byName.get(c.name);
          if (record === undefined) continue;
          if (typeof got === 'string') {
            record.failures.push(got);
            log(`${spec.name} run ${run} ${c.name}: FAILED ${got}`);
            continue;
          }
          const bad = await verify(dest, manifest);
          if (bad !== null) {
            record.failures.push(`verification: ${bad}`);
            log(`${spec.name} run ${run} ${c.name}: ${got.toFixed(2)} s, VERIFICATION FAILED ${bad}`);
          } else {
            record.seconds.push(got);
            log(`${spec.name} run ${run} ${c.name}: ${got.toFixed(2)} s, ${manifest.size} files verified`);
          }
        }
      }
      outcomes.push(...byName.values());
    }
  } finally {
    if (typeof sshd !== 'string') sshd.stop();
    await running.stop();
    await rm(work, { recursive: true, force: true });
  }
  const markdown = report(outcomes, { scale, runs });
  await mkdir(outDir, { recursive: true });
  const written = join(outDir, 'RESULTS-tree.md');
  await writeFile(written, markdown);
  log(markdown);
  log(`wrote ${written}`);
  return outcomes.every((o) => o.failures.length === 0) ? 0 : 1;
}

function report(outcomes: readonly Outcome[], run: { scale: number; runs: number }): string {
  const lines = [
    '# Tree bench (`npm run bench -- --tree`)',
    '',
    `${new Date().toISOString()}, ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, load average ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} at the end; scale ${run.scale}, ${run.runs} interleaved runs per contender, each into a fresh directory (nothing deleted until the end: on ext4 without a journal, creating files within ~1-6 minutes of deleting many costs much more, as the kernel's inode allocator skips recently deleted inodes; so a bench run right after another's clean-up is slower for every contender). Every run's files verified (path and SHA-256).`,
    'stx answers each file only once it is fsync\'d under its final name (batched, spec §9.11); rsync, scp and tar do not fsync.',
    'stx: one stx-recv serves every run, as one sshd serves the others (started before the first run and warmed by one untimed transfer of a tree shaped as the small one, with other bytes); "stx, fresh stx-recv per run" starts a new daemon for each run (its first transfer compiles the daemon\'s code).',
    '',
  ];
  for (const tree of [...new Set(outcomes.map((o) => o.tree))]) {
    const rows = outcomes.filter((o) => o.tree === tree);
    const best = (o: Outcome): number => (o.seconds.length === 0 ? Infinity : median(o.seconds));
    const stx = rows.find((o) => o.contender === 'stx');
    const others = rows.filter((o) => !o.contender.startsWith('stx'));
    const fastestOther = Math.min(...others.map(best));
    lines.push(`## ${tree}`, '', '| contender | wall s (median) | runs (s) | failed runs | vs stx |', '| --- | ---: | --- | ---: | ---: |');
    for (const o of rows) {
      const m = best(o);
      const ratio = stx === undefined || !Number.isFinite(best(stx)) || !Number.isFinite(m) ? '—' : `${(m / best(stx)).toFixed(2)}×`;
      lines.push(`| ${o.contender} | ${Number.isFinite(m) ? m.toFixed(2) : '—'} | ${o.seconds.map((s) => s.toFixed(2)).join(', ')} | ${o.failures.length} | ${ratio} |`);
    }
    if (stx !== undefined && Number.isFinite(best(stx)) && Number.isFinite(fastestOther)) {
      lines.push('', `stx is ${(fastestOther / best(stx)).toFixed(2)}× as fast as the fastest other contender (median wall time).`);
    }
    const failures = rows.flatMap((o) => o.failures.map((f) => `- ${o.contender}: ${f}`));
    if (failures.length > 0) lines.push('', 'Failures:', ...failures);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}
