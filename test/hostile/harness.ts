// Shared set-up for the hostile suites: a real stx-recv in a temp tree laid out so that anything
// written outside --out is noticed, its memory (VmRSS / VmHWM from /proc), its connections (ss),
// its own account of why it closed a connection (its JSON log), and a normal upload with the real
// stx-send to prove it still serves after an attack.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { it } from 'node:test';
import { RawClient, type Outcome } from './raw-client.js';
import { makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir, type Daemon } from '../support/procs.js';

const MiB = 1024 * 1024;

/** Generous but real bound on the daemon's resident memory (peak included) under attack. */
export const RSS_BOUND_BYTES = 300 * MiB;

export interface Memory {
  readonly rssBytes: number;
  /** Peak resident set size since the process started (VmHWM). */
  readonly hwmBytes: number;
}

/** VmRSS and VmHWM of a live process, from /proc/<pid>/status. */
export function memoryOf(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    if (m?.[1] === undefined) throw new Error(`${key} missing from /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), hwmBytes: kib('VmHWM') };
}

/** The soft open-file limit this test process would hand to a child. */
export function fdLimit(): number {
  const text = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  return text === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(text);
}

/** Recv-Q (bytes received by the kernel, not yet read by the daemon) of each of its ESTABLISHED sockets on `port`. */
export function unreadOn(port: number): number[] {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Number(l.trim().split(/\s+/)[0] ?? 0));
}

/** ESTABLISHED TCP connections whose local port is `port` (the daemon's side of each client). */
export function establishedOn(port: number): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.trim() !== '').length;
}

/** Every path under `dir` (relative, sorted), not following links, skipping `skip` (relative). */
export function tree(dir: string, skip: readonly string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel === '' ? e.name : path.join(rel, e.name);
      if (skip.includes(r)) continue;
      out.push(e.isSymbolicLink() ? `${r} -> link` : e.isDirectory() ? `${r}/` : r);
      if (e.isDirectory()) walk(r);
    }
  };
  walk('');
  return out.sort();
}

export interface LogLine {
  readonly event?: string;
  readonly remote?: string;
  readonly code?: string;
  readonly reason?: string;
  readonly [k: string]: unknown;
}

/** The daemon's JSON log lines. */
export function logLines(d: Daemon): LogLine[] {
  const lines: LogLine[] = [];
  for (const line of d.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (typeof v === 'object' && v !== null) lines.push(v as LogLine);
    } catch {
      // A line still being written.
    }
  }
  return lines;
}

/**
 * The code the daemon logged when it closed the connection from 127.0.0.1:`clientPort`
 * ('none' for a close without an error), among its log lines from index `sinceLine` on (taken
 * before connecting), waiting up to `timeoutMs` for the line.
 */
export async function serverCloseCode(d: Daemon, clientPort: number, sinceLine = 0, timeoutMs = 5000): Promise<string> {
  const remote = `127.0.0.1:${clientPort}`;
  const end = Date.now() + timeoutMs;
  for (;;) {
    // Ports are reused: only lines logged after the connection was made count.
    const line = logLines(d)
      .slice(sinceLine)
      .find((l) => l.event === 'close' && l.remote === remote);
    if (line !== undefined) return line.code ?? 'none';
    if (Date.now() > end) return 'no close logged';
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Arena {
  /** The temp root: out/, outside/, srv/, home/, src/. */
  readonly root: string;
  /** --out. */
  readonly out: string;
  /** A directory outside --out that symlinks point at; must stay empty. */
  readonly outside: string;
  /** Where test input files go. */
  readonly src: string;
  readonly home: string;
  readonly daemon: Daemon;
  /** Runs stx-send against the daemon (pinned fingerprint) and returns its result. */
  send(file: string, extra?: string[], timeoutMs?: number): ReturnType<typeof runSend>;
  /** A normal upload with the real stx-send succeeds and arrives byte-identical. */
  assertServes(label: string): Promise<void>;
  /** Nothing was created outside --out, and `outside` is empty. */
  assertNothingOutside(): void;
  /** The daemon's peak and current RSS are below RSS_BOUND_BYTES. */
  assertMemoryBounded(label: string): Memory;
  /** Every file or link under --out (relative), outside .stx. */
  finalFiles(): string[];
  stop(): Promise<void>;
  /** The end of a suite: memory bound and nothing outside checked, then always stopped. */
  close(label: string, opts?: { memory?: boolean }): Promise<void>;
}

export interface ArenaOptions {
  /** Start the daemon under `ulimit -n` of this (see startDaemon). */
  readonly fdLimit?: number;
  /** Runs after out/ exists and before the daemon starts (e.g. to mount a filesystem on it). */
  readonly beforeStart?: (out: string) => void | Promise<void>;
  /** Runs after the daemon stopped and before the temp tree is removed (e.g. to unmount). */
  readonly afterStop?: (out: string) => void | Promise<void>;
}

/** Starts a daemon in a fresh arena. `flags` go to stx-recv (e.g. short timeouts). */
export async function startArena(flags: string[] = [], opts: ArenaOptions = {}): Promise<Arena> {
  const tmp = await tempDir('stx-hostile-');
  const root = tmp.dir;
  const out = path.join(root, 'out');
  const outside = path.join(root, 'outside');
  const src = path.join(root, 'src');
  const home = path.join(root, 'home');
  await Promise.all([mkdir(outside), mkdir(src), mkdir(home), mkdir(out)]);
  await opts.beforeStart?.(out);
  const spawnOptions = opts.fdLimit === undefined ? {} : { fdLimit: opts.fdLimit };
  let daemon: Daemon;
  try {
    daemon = await startDaemon(out, path.join(root, 'srv', 'server_key.pem'), ['--log-level', 'info', ...flags], 0, spawnOptions);
  } catch (err) {
    await opts.afterStop?.(out);
    await tmp.cleanup();
    throw err;
  }
  // stx-recv announces itself on stderr a moment before it installs its SIGTERM handler (see the
  // report); a test that stops it at once would kill it. Wait for its JSON line, then a little.
  await waitUntil(() => logLines(daemon).some((l) => l.event === 'listening'), 10_000);
  await new Promise((r) => setTimeout(r, 100));
  const before = tree(root, ['out', 'src', 'home']);
  let serves = 0;
  const send = (file: string, extra: string[] = [], timeoutMs = 60_000): ReturnType<typeof runSend> =>
    runSend(['127.0.0.1', String(daemon.port), file, '--fingerprint', daemon.fingerprint, '--quiet', '--json', ...extra], { STX_HOME: home }, timeoutMs);
  const arena: Arena = {
    root,
    out,
    outside,
    src,
    home,
    daemon,
    send,
    async assertServes(label: string) {
      const n = serves++;
      const file = path.join(src, `serves-${n}.bin`);
      const sha = await makeFile(file, 200_000 + n, 7000 + n);
      const name = `serves/after-${n}.bin`;
      const r = await send(file, ['--as', name, '--retries', '2', '--backoff', '50']);
      assert.equal(r.code, 0, `${label}: a normal upload right after failed: ${r.stderr}`);
      assert.equal((readJsonLine(r.stdout))['sha256'], sha, label);
      assert.equal(await sha256File(path.join(out, name)), sha, label);
    },
    assertNothingOutside() {
      assert.deepEqual(tree(root, ['out', 'src', 'home']), before, 'nothing appeared next to --out');
      assert.deepEqual(readdirSync(outside), [], 'the directory outside --out stays empty');
      for (const p of ['/escape.bin', '/abs.bin', '/x', path.join(root, 'x'), path.join(root, 'escape.bin')]) {
        assert.equal(existsSync(p), false, `${p} must not exist`);
      }
    },
    assertMemoryBounded(label: string) {
      const pid = daemon.proc.pid;
      assert.ok(pid !== undefined);
      const m = memoryOf(pid);
      assert.ok(m.hwmBytes < RSS_BOUND_BYTES, `${label}: daemon peak RSS ${(m.hwmBytes / MiB).toFixed(1)} MiB ≥ ${RSS_BOUND_BYTES / MiB} MiB`);
      assert.ok(m.rssBytes < RSS_BOUND_BYTES, `${label}: daemon RSS ${(m.rssBytes / MiB).toFixed(1)} MiB`);
      return m;
    },
    finalFiles() {
      return tree(out, ['.stx']).filter((p) => !p.endsWith('/'));
    },
    async stop() {
      const code = await daemon.stop('SIGTERM');
      try {
        await opts.afterStop?.(out);
      } finally {
        await tmp.cleanup();
      }
      assert.equal(code, 0, `stx-recv exit code after SIGTERM\n${daemon.stderr()}`);
    },
    async close(label: string, closeOpts: { memory?: boolean } = {}) {
      let failure: Error | undefined;
      try {
        if (closeOpts.memory !== false) arena.assertMemoryBounded(label);
        arena.assertNothingOutside();
      } catch (err) {
        failure = err instanceof Error ? err : new Error(String(err));
      }
      await arena.stop();
      if (failure !== undefined) throw failure;
    },
  };
  return arena;
}

/** Polls `cond` every 20 ms until true or `timeoutMs` passed; returns whether it became true. */
export async function waitUntil(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

/** Lists the partial upload files (.part/.json) the daemon holds. */
export function partials(out: string): string[] {
  const dir = path.join(out, '.stx', 'partials');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/**
 * The daemon still serves: a fresh raw connection completes the handshake and a small upload,
 * and the file arrives byte-identical. In-process and fast, for after every generated case; the
 * suites also run the real stx-send (Arena.assertServes) after each block of hand-written cases
 * (`itServesAfter`): one real client per block instead of one per case keeps the suites' process
 * starts (and CPU) down while still showing that stx-send gets through after every attack.
 */
export async function assertServesRaw(arena: Arena, label: string): Promise<void> {
  const data = randomBytes(1000 + (rawServes % 997));
  const name = `serves-raw/${rawServes++}.bin`;
  const c = await RawClient.connect(arena.daemon.port);
  try {
    const s = await c.handshake();
    assert.ok(s !== null, label);
    const sha = await c.upload(name, data);
    assert.equal(sha, createHash('sha256').update(data).digest('hex'), label);
  } catch (err) {
    assert.fail(`${label}: the daemon did not serve a normal upload right after: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    c.destroy();
  }
  assert.deepEqual(readFileSync(path.join(arena.out, name)), data, label);
}
let rawServes = 0;

/**
 * A test that runs last in its block: the real stx-send uploads a file after all the block's
 * cases have run against the same daemon (each case already checked with a raw client).
 */
export function itServesAfter(arena: () => Arena, what: string): void {
  it(`the real stx-send still uploads after ${what}`, () => arena().assertServes(`after ${what}`));
}

/** A case's test name: its name and the code (or codes) it must end with. */
export function caseTitle(hc: HostileCase): string {
  return `${hc.name} → ${[hc.expect].flat().join(',')}`;
}

/** One hostile exchange and what must come of it. */
export interface HostileCase {
  readonly name: string;
  /** What the client sees (Outcome.code), or the codes the spec allows for it. */
  readonly expect: Outcome['code'] | readonly Outcome['code'][];
  /** What the daemon logs as its close code; by default the same as `expect` ('none' if expect is CLOSED). */
  readonly server?: string;
  /** Drives the exchange on a fresh connection and returns how it ended. */
  readonly run: (c: RawClient) => Promise<Outcome>;
  /** Marks a case that exposes a known bug or spec mismatch (node:test todo). */
  readonly todo?: string;
}

/**
 * Runs one case: its outcome, the daemon's logged reason, that the connection is closed, that
 * the daemon still serves, and that nothing appeared outside --out.
 */
export async function runCase(arena: Arena, hc: HostileCase, serves: 'raw' | 'send' = 'raw'): Promise<Outcome> {
  const mark = logLines(arena.daemon).length;
  const c = await RawClient.connect(arena.daemon.port);
  let outcome: Outcome;
  try {
    outcome = await hc.run(c);
    const allowed: readonly Outcome['code'][] = typeof hc.expect === 'string' ? [hc.expect] : hc.expect;
    assert.ok(allowed.includes(outcome.code), `${hc.name}: client saw ${outcome.code} via ${outcome.via} (${outcome.message}), expected ${allowed.join(' or ')}`);
    assert.ok(await c.waitClosed(5000), `${hc.name}: the daemon closes the connection`);
    const logged = await serverCloseCode(arena.daemon, c.localPort, mark);
    assert.equal(logged, hc.server ?? (outcome.code === 'CLOSED' ? 'none' : outcome.code), `${hc.name}: the daemon's logged close code`);
  } finally {
    c.destroy();
  }
  if (serves === 'raw') await assertServesRaw(arena, hc.name);
  else await arena.assertServes(hc.name);
  arena.assertNothingOutside();
  return outcome;
}
