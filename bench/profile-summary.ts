// Where a process's CPU went, by category: the tables of DESIGN.md "Where the CPU goes per GiB".
//
//   perf record -e cpu-clock -F 999 -g -o recv.data -- node dist/src/recv/cli.js …   (one transfer)
//   node dist/bench/profile-summary.js recv.data [--hz 999]
//     CPU seconds per category, for the main thread and for all other threads (libuv pool, V8's).
//   node dist/bench/profile-summary.js DIR_OR_FILE.cpuprofile [--top 30]
//     self time per JavaScript function from `node --cpu-prof` (wall-clock samples: a thread that
//     is preempted keeps being charged, so on a busy machine prefer perf).
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';

const DEFAULT_HZ = 999;
const DEFAULT_TOP = 30;
/** perf script output can be large: one line per frame of every sample. */
const MAX_PERF_OUTPUT_BYTES = 2 * 1024 ** 3;

/** First rule that matches a sample's leaf symbol (and its DSO) names its category. */
const RULES: ReadonlyArray<readonly [string, (sym: string, dso: string) => boolean]> = [
  ['SHA-256', (s) => s.includes('sha256')],
  ['AES-GCM', (s) => /aesni|gcm|ghash/i.test(s)],
  ['memcpy', (s) => /memmove|memcpy/.test(s)],
  ['memset', (s) => s.includes('memset')],
  ['malloc/free', (s) => /malloc|_int_free|^free|cfree|unlink_chunk|malloc_consolidate|systrim/.test(s)],
  ['kernel: page-cache copy (buffered write)', (s, d) => d.includes('kernel') && s.includes('copy_folio_from_iter')],
  ['kernel: copy to/from user', (s, d) => d.includes('kernel') && /copy_to_iter|copy_from_iter|copy_page_to_iter|copy_user/.test(s)],
  ['kernel: page faults', (s, d) => d.includes('kernel') && /clear_page|page_fault|handle_mm_fault|do_anonymous|do_wp_page/.test(s)],
  ['kernel: TCP/IP', (s, d) => d.includes('kernel') && /tcp|skb|sock|inet|ip_|netif|net_rx|loopback|napi/.test(s)],
  ['kernel: filesystem/block', (s, d) => d.includes('kernel') && /ext4|jbd2|mpage|folio|filemap|xas_|blk|bio|iowrite|virtio|iomap/.test(s)],
  ['kernel: scheduler/locks', (s, d) => d.includes('kernel') && /schedule|finish_task_switch|futex|spin|rwsem|mutex/.test(s)],
  ['kernel: other', (_s, d) => d.includes('kernel')],
  ['V8 GC', (s) => /v8::internal::(Heap|Scavenger|Mark|Sweeper|Concurrent|Minor|Evacuat|ArrayBufferSweeper|PagedSpace|RememberedSet|Young|Full)|Scaveng/.test(s)],
  ['JavaScript (JIT code, builtins)', (s, d) => s.startsWith('Builtins_') || d.includes('perf-') || s.startsWith('JS:')],
  ['Node/V8/libuv C++', (s) => /^(node::|v8::|uv_|uv__)/.test(s)],
];

function category(sym: string, dso: string): string {
  return RULES.find(([, match]) => match(sym, dso))?.[0] ?? `other (${basename(dso)})`;
}

function perfSummary(file: string, hz: number): void {
  const r = spawnSync('perf', ['script', '-i', file, '-F', 'tid,ip,sym,dso'], { encoding: 'utf8', maxBuffer: MAX_PERF_OUTPUT_BYTES });
  if (r.status !== 0) throw new Error(`perf script failed: ${r.stderr}`);
  const byThread = new Map<string, Map<string, number>>();
  let thread: string | null = null;
  let leaf = false;
  for (const line of r.stdout.split('\n')) {
    const text = line.trim();
    if (text === '') {
      thread = null;
      continue;
    }
    if (thread === null && /^\d+$/.test(text)) {
      thread = text;
      leaf = true;
      continue;
    }
    if (thread === null || !leaf) continue;
    leaf = false; // only the first frame of a sample: its self time
    const m = /^[0-9a-f]+ (.*) \((.*)\)$/.exec(text);
    const cat = category(m?.[1] ?? text, m?.[2] ?? '');
    const counts = byThread.get(thread) ?? new Map<string, number>();
    counts.set(cat, (counts.get(cat) ?? 0) + 1);
    byThread.set(thread, counts);
  }
  const main = [...byThread.keys()].sort((a, b) => Number(a) - Number(b))[0];
  const rows = new Map<string, { main: number; other: number }>();
  for (const [tid, counts] of byThread) {
    for (const [cat, n] of counts) {
      const row = rows.get(cat) ?? { main: 0, other: 0 };
      if (tid === main) row.main += n / hz;
      else row.other += n / hz;
      rows.set(cat, row);
    }
  }
  const sum = (f: (x: { main: number; other: number }) => number): number => [...rows.values()].reduce((a, x) => a + f(x), 0);
  process.stdout.write(`| category | main thread s | other threads s |\n| --- | ---: | ---: |\n`);
  for (const [cat, v] of [...rows].sort((a, b) => b[1].main + b[1].other - (a[1].main + a[1].other))) {
    process.stdout.write(`| ${cat} | ${v.main.toFixed(2)} | ${v.other.toFixed(2)} |\n`);
  }
  process.stdout.write(`| **total** | **${sum((x) => x.main).toFixed(2)}** | **${sum((x) => x.other).toFixed(2)}** |\n`);
}

interface CpuProfile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number } }>;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

function isCpuProfile(v: unknown): v is CpuProfile {
  return typeof v === 'object' && v !== null && Array.isArray(Reflect.get(v, 'nodes')) && Array.isArray(Reflect.get(v, 'samples'));
}

function cpuProfileSummary(path: string, top: number): void {
  const files = statSync(path).isDirectory() ? readdirSync(path).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(path, f)) : [path];
  for (const file of files) {
    const profile: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (!isCpuProfile(profile)) throw new Error(`${file} is not a .cpuprofile`);
    const names = new Map(profile.nodes.map((n) => [n.id, `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url === '' ? '' : `${basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`}`]));
    const self = new Map<string, number>();
    let total = 0;
    profile.samples.forEach((id, i) => {
      const seconds = (profile.timeDeltas[i] ?? 0) / 1e6;
      total += seconds;
      const name = names.get(id) ?? '?';
      self.set(name, (self.get(name) ?? 0) + seconds);
    });
    process.stdout.write(`${file}: ${total.toFixed(2)} s sampled\n`);
    for (const [name, s] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(`${s.toFixed(3).padStart(8)} s ${((100 * s) / total).toFixed(1).padStart(5)}%  ${name}\n`);
    }
  }
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { hz: { type: 'string', default: String(DEFAULT_HZ) }, top: { type: 'string', default: String(DEFAULT_TOP) } },
});
const [target] = positionals;
if (target === undefined) {
  process.stderr.write('usage: node dist/bench/profile-summary.js PERF.DATA [--hz 999] | PROFILE.cpuprofile|DIR [--top 30]\n');
  process.exit(2);
}
if (target.endsWith('.cpuprofile') || statSync(target).isDirectory()) cpuProfileSummary(target, Number(values.top));
else perfSummary(target, Number(values.hz));
