// Which Node-runtime tricks the data path uses (DESIGN.md, "Where the CPU goes per GiB"). Each
// CLI's main calls tuneRuntime() once; nothing here runs at import. STX_TUNING=off turns every
// trick off (to measure what they buy: `npm run bench -- --tuning off`); a list keeps only those
// named, e.g. STX_TUNING=aligned-memory,young-gc. `npm run bench:micro` (bench/micro) measures
// each one with and without, on its own.

type TuningFeature =
  /** Page-aligned buffers for file reads and O_DIRECT writes (aligned-memory.ts). */
  | 'aligned-memory'
  /** Collect V8's young generation every few MiB of dropped buffers (young-gc.ts). */
  | 'young-gc'
  /** Keep freed memory in malloc's heap instead of trimming it (young-gc.ts keepFreedMemory). */
  | 'keep-freed-memory'
  /** Run the bundled command with V8's code cache of its earlier runs (send/code-cache.ts). */
  | 'code-cache';

const ALL: readonly TuningFeature[] = ['aligned-memory', 'young-gc', 'keep-freed-memory', 'code-cache'];

/**
 * In force now. Before tuneRuntime(), only aligned memory: it decides where buffers live, not
 * how the runtime behaves, and O_DIRECT needs it.
 */
let active: ReadonlySet<TuningFeature> = new Set<TuningFeature>(['aligned-memory']);

export function tuned(feature: TuningFeature): boolean {
  return active.has(feature);
}

/** The features STX_TUNING asks for (default: all); throws on a name it does not know. */
export function parseTuning(text: string | undefined): ReadonlySet<TuningFeature> {
  const value = (text ?? '').trim();
  if (value === '' || value === 'on') return new Set(ALL);
  if (value === 'off') return new Set();
  const wanted = new Set<TuningFeature>();
  for (const name of value.split(',').map((s) => s.trim())) {
    const feature = ALL.find((f) => f === name);
    if (feature === undefined) throw new Error(`STX_TUNING: unknown feature ${JSON.stringify(name)} (use on, off, or a list of ${ALL.join(', ')})`);
    wanted.add(feature);
  }
  return wanted;
}

/**
 * Applies STX_TUNING for this process and returns what is in force. `allowed` is what this
 * program uses at all (the daemon does not keep freed memory: config.ts YOUNG_GC_INTERVAL_BYTES).
 */
export function tuneRuntime(allowed: readonly TuningFeature[], env: NodeJS.ProcessEnv = process.env): ReadonlySet<TuningFeature> {
  const wanted = parseTuning(env['STX_TUNING']);
  active = new Set(allowed.filter((f) => wanted.has(f)));
  return active;
}
