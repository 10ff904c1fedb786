// The long-link emulator behind `npm run bench -- --wan RTT,RATE`.
//
// Two network namespaces, made and removed by the bench (names unique per run), each with a TUN
// device; bench/lib/wan-link.c, compiled here with the machine's gcc, forwards every packet from
// one device to the other after RTT/2, through a RATE bottleneck with a drop-tail queue of one
// bandwidth-delay product (a router's buffer). This kernel has no netem; this way TCP's own windows,
// slow start and losses stay real, and nothing leaves the machine. Addresses come from the
// benchmarking range 198.18.0.0/15 (RFC 2544). Needs root, `ip`, /dev/net/tun and gcc.
// Where the kernel allows it the forwarder moves TSO super-packets (mode "gso", see wan-link.c),
// else one packet per system call (mode "packet"); either way it charges and counts wire bytes.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { startMeasured, describeExit } from './measure.js';
import { benchScript, PROJECT_ROOT } from './paths.js';
import type { Placement } from './placement.js';

const execFileAsync = promisify(execFile);

export const SERVER_ADDRESS = '198.18.0.1';
export const CLIENT_ADDRESS = '198.18.0.2';
/** The TUN device's name inside each namespace (each namespace is fresh, so one name serves). */
const DEVICE = 'wan0';
/** Ethernet's: what a long link carries. */
export const LINK_MTU = 1500;
/** The queue holds at least this many full packets, however small the bandwidth-delay product. */
const MIN_QUEUE_PACKETS = 64;
const FORWARDER_SOURCE = join(PROJECT_ROOT, 'bench', 'lib', 'wan-link.c');
const PROBE_SCRIPT = benchScript('wan-probe.js');
const IP_CANDIDATES = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'];
const GCC_CANDIDATES = ['/usr/bin/gcc', '/usr/local/bin/gcc', '/usr/bin/cc'];
const NETNS_DIR = '/run/netns';
const NAME_PREFIX = 'stxwan';
const IP_TIMEOUT_MS = 10_000;
const GCC_TIMEOUT_MS = 60_000;
/** The forwarder makes both devices within this, or it is broken. */
const FORWARDER_READY_TIMEOUT_MS = 10_000;
/** After SIGTERM it prints its counters and exits within this, or gets SIGKILL. */
const FORWARDER_STOP_TIMEOUT_MS = 5_000;
const PROBE_TIMEOUT_MS = 30_000;
const PROBE_COUNT = 10;
const MAX_RTT_MS = 10_000;
const MIN_RATE_BITS = 8_000;
const MAX_RATE_BITS = 10e9;

export interface LinkSpec {
  /** As given, e.g. "150ms,1gbit". */
  readonly label: string;
  readonly rttMs: number;
  readonly rateBitsPerSecond: number;
}

const RATE_UNITS: Readonly<Record<string, number>> = { '': 1, k: 1e3, m: 1e6, g: 1e9 };

/** "50ms,1gbit" → a spec; each of `texts` may also hold several pairs: "50ms,1gbit,150ms,100mbit". */
export function parseLinkSpecs(texts: readonly string[]): LinkSpec[] {
  const specs: LinkSpec[] = [];
  for (const text of texts) {
    const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
    if (parts.length === 0 || parts.length % 2 !== 0) throw new Error(`--wan ${text}: expected RTT,RATE pairs such as 50ms,1gbit`);
    for (let i = 0; i < parts.length; i += 2) {
      const rttText = parts[i] ?? '';
      const rateText = parts[i + 1] ?? '';
      const rtt = /^(\d+(?:\.\d+)?)(ms|s)$/i.exec(rttText);
      const rate = /^(\d+(?:\.\d+)?)([kmg]?)bit$/i.exec(rateText);
      const rateUnit = RATE_UNITS[(rate?.[2] ?? '').toLowerCase()];
      if (rtt === null) throw new Error(`--wan: bad RTT ${rttText} (e.g. 50ms, 0.15s)`);
      if (rate === null || rateUnit === undefined) throw new Error(`--wan: bad rate ${rateText} (e.g. 100mbit, 1gbit)`);
      const rttMs = Number(rtt[1]) * ((rtt[2] ?? '').toLowerCase() === 's' ? 1000 : 1);
      const rateBitsPerSecond = Math.round(Number(rate[1]) * rateUnit);
      if (!(rttMs >= 0 && rttMs <= MAX_RTT_MS)) throw new Error(`--wan: RTT must be 0..${MAX_RTT_MS} ms`);
      if (!(rateBitsPerSecond >= MIN_RATE_BITS && rateBitsPerSecond <= MAX_RATE_BITS)) throw new Error('--wan: rate must be 8kbit..10gbit');
      specs.push({ label: `${rttText},${rateText}`, rttMs, rateBitsPerSecond });
    }
  }
  return specs;
}

/** Drop-tail queue size: one bandwidth-delay product, at least MIN_QUEUE_PACKETS packets. */
export function queueBytes(spec: LinkSpec): number {
  const bdp = Math.round((spec.rateBitsPerSecond / 8) * (spec.rttMs / 1000));
  return Math.max(bdp, MIN_QUEUE_PACKETS * LINK_MTU);
}

const firstExisting = (paths: readonly string[]): string | undefined => paths.find((p) => existsSync(p));

/** Null when links can be emulated here, else why not. */
export function wanUnavailable(): string | null {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root (network namespaces and TUN devices)');
  if (firstExisting(IP_CANDIDATES) === undefined) missing.push('ip (Debian package iproute2)');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (a kernel with TUN)');
  if (firstExisting(GCC_CANDIDATES) === undefined) missing.push('gcc (to build bench/lib/wan-link.c)');
  if (!existsSync(FORWARDER_SOURCE)) missing.push(FORWARDER_SOURCE);
  return missing.length === 0 ? null : `the link emulator needs ${missing.join(', ')}`;
}

function ipPath(): string {
  const ip = firstExisting(IP_CANDIDATES);
  if (ip === undefined) throw new Error('ip not found');
  return ip;
}

async function ip(args: readonly string[]): Promise<void> {
  await execFileAsync(ipPath(), [...args], { timeout: IP_TIMEOUT_MS });
}

/** Compiles the forwarder into `dir`; returns its path. */
export async function buildForwarder(dir: string): Promise<string> {
  const gcc = firstExisting(GCC_CANDIDATES);
  if (gcc === undefined) throw new Error('gcc not found');
  const out = join(dir, 'wan-link');
  await execFileAsync(gcc, ['-O2', '-Wall', '-o', out, FORWARDER_SOURCE], { timeout: GCC_TIMEOUT_MS });
  return out;
}

/** One direction's counters from the forwarder. */
export interface DirectionCounters {
  /** MTU-sized packets on the wire (in "gso" mode, a super-packet counts as its segments). */
  readonly packets: number;
  /** IP bytes on the wire: each packet's headers and payload. */
  readonly bytes: number;
  /** Reads from the device: packets in "packet" mode, super-packets (or single packets) in "gso" mode. */
  readonly frames: number;
  /** Dropped because the bottleneck's queue was full: the losses TCP reacts to. */
  readonly queueDrops: number;
  /** Dropped because the forwarder's own ring was full (should stay 0). */
  readonly ringDrops: number;
  /** Not accepted by the far device (should stay 0 but for the first packets before it is up). */
  readonly writeDrops: number;
  /** Wire bytes of the packets dropped (queue, ring or device): bytes − dropBytes crossed the link. */
  readonly dropBytes: number;
  readonly maxBacklogBytes: number;
}

/** How the forwarder moves packets: TSO super-packets through offloading TUN devices, or one by one. */
export type ForwarderMode = 'gso' | 'packet';

export interface LinkCounters {
  readonly toServer: DirectionCounters;
  readonly toClient: DirectionCounters;
  /** The forwarder's own CPU time (user + system), both directions. */
  readonly forwarderCpuSeconds: number;
}

export interface RttProbe {
  /** TCP connect: one round trip (SYN, SYN-ACK) plus process overhead. */
  readonly connectMs: number;
  readonly medianMs: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface Link {
  readonly spec: LinkSpec;
  readonly queueBytes: number;
  readonly mode: ForwarderMode;
  /** The server side in one namespace, the client in the other, talking over the link. */
  readonly placement: Placement;
  /** Round trips of a one-byte TCP echo through the link. */
  probeRtt(): Promise<RttProbe>;
  /**
   * Cuts every TCP connection from the client namespace to the server, as a link failure would:
   * `ss -K` destroys the client's sockets, and each sends a reset to the server. Returns how many.
   */
  cut(): Promise<number>;
  /**
   * Starts sampling the bytes the link delivers to the server (the server device's rx_bytes, every
   * SAMPLE_INTERVAL_S); stop() ends it and says how busy the link was (null if it got no samples).
   */
  watch(): { stop(): Promise<LinkBusy | null> };
  /** Stops the forwarder, removes both namespaces; the forwarder's counters, or null if it gave none. */
  close(): Promise<LinkCounters | null>;
}

/** How busy the link toward the server was during one transfer. */
export interface LinkBusy {
  /** IP bytes delivered to the server between start and stop. */
  readonly bytes: number;
  /**
   * IP bytes per second over the middle half of those bytes (from the 25 % to the 75 % mark): the
   * rate once start-up is over and before the tail, whatever the contender does at either end.
   */
  readonly middleBytesPerSecond: number;
}

const SAMPLE_INTERVAL_S = '0.05';
const BASH_CANDIDATES = ['/bin/bash', '/usr/bin/bash'];

/** The 25 %–75 % rate of a series of [seconds, cumulative bytes] samples. */
export function linkBusy(samples: readonly (readonly [number, number])[]): LinkBusy | null {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (first === undefined || last === undefined || last[1] <= first[1]) return null;
  const total = last[1] - first[1];
  /** When the cumulative count first reached `fraction` of the total (interpolated between samples). */
  const at = (fraction: number): number => {
    const target = first[1] + fraction * total;
    for (let i = 1; i < samples.length; i++) {
      const [t1, b1] = samples[i] ?? first;
      if (b1 < target) continue;
      const [t0, b0] = samples[i - 1] ?? first;
      return b1 === b0 ? t1 : t0 + ((target - b0) / (b1 - b0)) * (t1 - t0);
    }
    return last[0];
  };
  const t25 = at(0.25);
  const t75 = at(0.75);
  return {
    bytes: total,
    middleBytesPerSecond: t75 > t25 ? (0.5 * total) / (t75 - t25) : Number.NaN,
  };
}

const SS_CANDIDATES = ['/usr/bin/ss', '/bin/ss', '/usr/sbin/ss', '/sbin/ss'];

interface Open {
  readonly names: readonly string[];
  readonly forwarder: ChildProcess;
}

/** Links not yet closed: removed synchronously if the process exits or is interrupted first. */
const open = new Set<Open>();
let sequence = 0;

/**
 * Synchronously, for an interrupted bench: kills every process still inside this process's
 * namespaces (servers and clients it started there) and every forwarder, and removes the namespaces.
 */
export function closeAllLinksSync(): void {
  for (const link of open) {
    for (const name of link.names) {
      const pids = spawnSync(ipPath(), ['netns', 'pids', name], { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }).stdout;
      for (const pid of pids.split('\n').map(Number).filter((p) => Number.isInteger(p) && p > 1)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
    link.forwarder.kill('SIGKILL');
    for (const name of link.names) spawnSync(ipPath(), ['netns', 'delete', name], { timeout: IP_TIMEOUT_MS });
  }
  open.clear();
}

/** Namespaces left by an earlier bench that was killed outright (its pid no longer runs). */
export async function removeStaleNamespaces(log: (line: string) => void): Promise<void> {
  const { stdout } = await execFileAsync(ipPath(), ['netns', 'list'], { timeout: IP_TIMEOUT_MS });
  for (const line of stdout.split('\n')) {
    const m = new RegExp(`^(${NAME_PREFIX}-(\\d+)-\\d+-[sc])\\b`).exec(line);
    const name = m?.[1];
    const pid = Number(m?.[2]);
    if (name === undefined || pid === process.pid || existsSync(`/proc/${pid}`)) continue;
    log(`wan: removing namespace ${name} left by process ${pid}`);
    await ip(['netns', 'delete', name]);
  }
}

function parseCounters(stdout: string): LinkCounters | null {
  const line = stdout.split('\n').find((l) => l.startsWith('{'));
  if (line === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  const direction = (key: string): DirectionCounters | null => {
    const d: unknown = typeof value === 'object' && value !== null ? Reflect.get(value, key) : undefined;
    if (typeof d !== 'object' || d === null) return null;
    const n = (field: string): number => Number(Reflect.get(d, field));
    const counters = {
      packets: n('packets'),
      bytes: n('bytes'),
      frames: n('frames'),
      queueDrops: n('queueDrops'),
      ringDrops: n('ringDrops'),
      writeDrops: n('writeDrops'),
      dropBytes: n('dropBytes'),
      maxBacklogBytes: n('maxBacklogBytes'),
    };
    return Object.values(counters).every(Number.isFinite) ? counters : null;
  };
  // The forwarder's device A is the server's, B the client's.
  const toClient = direction('aToB');
  const toServer = direction('bToA');
  const forwarderCpuSeconds = Number(typeof value === 'object' && value !== null ? Reflect.get(value, 'cpuSeconds') : NaN);
  return toClient === null || toServer === null || !Number.isFinite(forwarderCpuSeconds) ? null : { toServer, toClient, forwarderCpuSeconds };
}

/** The first line of `child`'s stdout, or null on exit or after `timeoutMs`. */
function firstLine(child: ChildProcess, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let text = '';
    const finish = (line: string | null): void => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
      resolve(line);
    };
    const onData = (chunk: string): void => {
      text += chunk;
      const end = text.indexOf('\n');
      if (end >= 0) finish(text.slice(0, end));
    };
    const onExit = (): void => finish(null);
    const timer = setTimeout(() => finish(null), timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.once('exit', onExit);
  });
}

export interface LinkOptions {
  /** One packet per system call even where the kernel offers segmentation offload (to compare). */
  readonly perPacket?: boolean;
}

/** Two fresh namespaces joined by the emulated link, both sides addressed and up. */
export async function openLink(spec: LinkSpec, forwarderPath: string, options: LinkOptions = {}): Promise<Link> {
  const base = `${NAME_PREFIX}-${process.pid}-${++sequence}`;
  const server = `${base}-s`;
  const client = `${base}-c`;
  const queue = queueBytes(spec);
  const made: string[] = [];
  let entry: Open | undefined;
  let mode: ForwarderMode;
  try {
    for (const name of [server, client]) {
      await ip(['netns', 'add', name]);
      made.push(name);
    }
    const oneWayUs = Math.round((spec.rttMs * 1000) / 2);
    const args = [join(NETNS_DIR, server), join(NETNS_DIR, client), DEVICE, String(oneWayUs), String(spec.rateBitsPerSecond), String(queue)];
    if (options.perPacket === true) args.push('packet');
    const forwarder = spawn(forwarderPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    entry = { names: made, forwarder };
    open.add(entry);
    let stderr = '';
    forwarder.stderr.setEncoding('utf8').on('data', (t: string) => (stderr = (stderr + t).slice(-4096)));
    const ready = /^ready (gso|packet)$/.exec((await firstLine(forwarder, FORWARDER_READY_TIMEOUT_MS)) ?? '');
    if (ready === null) throw new Error(`the link forwarder did not start: ${stderr.trim()}`);
    mode = ready[1] === 'gso' ? 'gso' : 'packet';
    for (const [name, local, peer] of [
      [server, SERVER_ADDRESS, CLIENT_ADDRESS],
      [client, CLIENT_ADDRESS, SERVER_ADDRESS],
    ] as const) {
      await ip(['-n', name, 'link', 'set', 'lo', 'up']);
      await ip(['-n', name, 'address', 'add', local, 'peer', `${peer}/32`, 'dev', DEVICE]);
      await ip(['-n', name, 'link', 'set', DEVICE, 'mtu', String(LINK_MTU), 'up']);
    }
  } catch (err) {
    if (entry !== undefined) await stop(entry);
    else for (const name of made) await ip(['netns', 'delete', name]).catch(() => undefined);
    throw err;
  }
  const it = entry;
  const placement: Placement = {
    host: SERVER_ADDRESS,
    command: (side, command, args) => [ipPath(), ['netns', 'exec', side === 'server' ? server : client, command, ...args]],
  };
  const cut = async (): Promise<number> => {
    const ss = firstExisting(SS_CANDIDATES);
    if (ss === undefined) throw new Error('ss not found (Debian package iproute2)');
    const { stdout } = await execFileAsync(ipPath(), ['netns', 'exec', client, ss, '-K', '-t', 'dst', SERVER_ADDRESS], { timeout: IP_TIMEOUT_MS });
    // A header line, then one line per socket destroyed.
    return Math.max(0, stdout.split('\n').filter((l) => l.trim() !== '').length - 1);
  };
  const watch = (): { stop(): Promise<LinkBusy | null> } => {
    const bash = firstExisting(BASH_CANDIDATES) ?? 'bash';
    // One long-lived sampler in the server's namespace (its /sys shows that namespace's devices);
    // bash's own clock stamps each sample, so a late read on a busy machine does not skew the rate.
    const loop = `f=/sys/class/net/${DEVICE}/statistics/rx_bytes; while read -r b < $f; do echo "$EPOCHREALTIME $b"; sleep ${SAMPLE_INTERVAL_S}; done`;
    const sampler = spawn(ipPath(), ['netns', 'exec', server, bash, '-c', loop], { stdio: ['ignore', 'pipe', 'ignore'] });
    const samples: [number, number][] = [];
    let text = '';
    sampler.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const lines = text.split('\n');
      text = lines.pop() ?? '';
      for (const line of lines) {
        const [t, b] = line.split(' ').map(Number);
        if (t !== undefined && b !== undefined && Number.isFinite(t) && Number.isFinite(b)) samples.push([t, b]);
      }
    });
    const exited = new Promise<void>((resolve) => sampler.once('close', () => resolve()));
    return {
      stop: async () => {
        // One more sample period so the last bytes are counted, then stop it.
        await new Promise((resolve) => setTimeout(resolve, 2 * Number(SAMPLE_INTERVAL_S) * 1000));
        sampler.kill('SIGTERM');
        const killer = setTimeout(() => sampler.kill('SIGKILL'), FORWARDER_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(killer);
        return linkBusy(samples);
      },
    };
  };
  return { spec, queueBytes: queue, mode, placement, probeRtt: () => probeRtt(placement), cut, watch, close: () => stop(it) };
}

/** SIGTERM the forwarder, read its counters, delete the namespaces. */
async function stop(entry: Open): Promise<LinkCounters | null> {
  const { forwarder, names } = entry;
  let stdout = '';
  forwarder.stdout?.setEncoding('utf8').on('data', (t: string) => (stdout += t));
  const exited = new Promise<void>((resolve) => {
    if (forwarder.exitCode !== null || forwarder.signalCode !== null) resolve();
    else forwarder.once('close', () => resolve());
  });
  forwarder.kill('SIGTERM');
  const killer = setTimeout(() => forwarder.kill('SIGKILL'), FORWARDER_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(killer);
  for (const name of names) await ip(['netns', 'delete', name]);
  open.delete(entry);
  return parseCounters(stdout);
}

async function probeRtt(place: Placement): Promise<RttProbe> {
  const server = startMeasured(...place.command('server', process.execPath, [PROBE_SCRIPT, 'server', '--host', place.host]), {
    timeoutMs: PROBE_TIMEOUT_MS,
  });
  try {
    const ready = await server.waitForMatch('stdout', /listening on \S+:(\d+)/, PROBE_TIMEOUT_MS);
    if (ready === null) throw new Error(describeExit('the RTT probe server did not listen;', await server.done));
    const args = [PROBE_SCRIPT, 'rtt', '--host', place.host, '--port', ready[1] ?? '', '--count', String(PROBE_COUNT)];
    const client = await startMeasured(...place.command('client', process.execPath, args), { timeoutMs: PROBE_TIMEOUT_MS }).done;
    if (client.exitCode !== 0) throw new Error(describeExit('the RTT probe', client));
    const result: unknown = JSON.parse(client.stdout.trim().split('\n').pop() ?? '');
    const connectMs = Number(typeof result === 'object' && result !== null ? Reflect.get(result, 'connectMs') : NaN);
    const raw: unknown = typeof result === 'object' && result !== null ? Reflect.get(result, 'rttMs') : undefined;
    const rtts = (Array.isArray(raw) ? (raw as unknown[]) : []).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
    if (rtts.length === 0 || !Number.isFinite(connectMs)) throw new Error(`the RTT probe printed ${client.stdout.trim()}`);
    return {
      connectMs,
      medianMs: rtts[Math.floor(rtts.length / 2)] ?? NaN,
      minMs: rtts[0] ?? NaN,
      maxMs: rtts[rtts.length - 1] ?? NaN,
    };
  } finally {
    await server.signal('SIGTERM');
    await server.done;
  }
}
