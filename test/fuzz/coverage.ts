// V8 block coverage of the fuzzed sources, read from the JSON that NODE_V8_COVERAGE=<dir> makes
// a process write at exit (https://nodejs.org/api/cli.html#node_v8_coveragedir).
//
// The metric, per compiled file in dist/:
// - V8 reports, per function, a list of ranges [start, end) of the script text with an execution
//   count; ranges nest (a block inside a function, a function inside another), and the count of
//   a character is that of the innermost range holding it. A never-called function is one range
//   with count 0.
// - Only characters inside a function (any range but the script's own top-level one) count, and
//   of those only non-whitespace ones: module-level code runs once at import whatever the input,
//   and blank space is not code.
// - body coverage = counted characters whose count is > 0 / all counted characters. This is
//   block coverage weighted by the size of each block's text (comments inside a function weigh
//   as the code around them).
// - functions = functions with a count > 0 / all functions V8 reports in the file.
// - uncovered blocks = maximal runs of counted characters with count 0.
// Runs in several processes (or targets) merge per character: covered if covered in any.
import { readdirSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DIST_DIR, REPO_ROOT } from '../support/paths.js';

/** The sources the fuzz targets exercise, as compiled (relative to dist/). */
export function coveredFiles(): string[] {
  const proto = readdirSync(path.join(DIST_DIR, 'src', 'proto'))
    .filter((f) => f.endsWith('.js'))
    .map((f) => `src/proto/${f}`);
  return [...proto.sort(), 'src/crypto/record.js', 'src/crypto/channel.js', 'src/crypto/aead.js'];
}

/** Per character: 0 not counted (outside functions, or whitespace), 1 not executed, 2 executed. */
export interface FileCoverage {
  readonly file: string;
  readonly chars: Uint8Array;
  /** Function start offset → executed. */
  readonly functions: Map<number, boolean>;
}

export interface CoverageSummary {
  readonly file: string;
  readonly counted: number;
  readonly covered: number;
  readonly percent: number;
  readonly functions: number;
  readonly coveredFunctions: number;
  readonly uncoveredBlocks: number;
}

export interface V8Range {
  readonly startOffset: number;
  readonly endOffset: number;
  readonly count: number;
}
export interface V8Function {
  readonly functionName: string;
  readonly ranges: readonly V8Range[];
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

function asFunctions(x: unknown): V8Function[] {
  if (!Array.isArray(x)) return [];
  return x.filter((f): f is V8Function => isRecord(f) && typeof f.functionName === 'string' && Array.isArray(f.ranges));
}

/** One script's coverage from one dump (`functions` as V8 reports them for it). */
export function scriptCoverage(file: string, source: string, functions: readonly V8Function[]): FileCoverage {
  const counts = new Int32Array(source.length).fill(-1);
  const ranges: (V8Range & { top: boolean })[] = [];
  const fnState = new Map<number, boolean>();
  for (const fn of functions) {
    const [outer] = fn.ranges;
    if (outer === undefined) continue;
    const top = outer.startOffset === 0 && outer.endOffset >= source.length && fn.functionName === '';
    if (!top) fnState.set(outer.startOffset, outer.count > 0);
    fn.ranges.forEach((r, i) => ranges.push({ ...r, top: top && i === 0 }));
  }
  // Outer ranges first, so that nested (later) ones overwrite them: the innermost count wins.
  ranges.sort((a, b) => a.startOffset - b.startOffset || b.endOffset - a.endOffset);
  for (const r of ranges) {
    if (r.top) continue;
    counts.fill(r.count, r.startOffset, Math.min(r.endOffset, source.length));
  }
  const chars = new Uint8Array(source.length);
  for (let i = 0; i < source.length; i++) {
    const c = counts[i] ?? -1;
    if (c < 0 || /\s/.test(source[i] ?? ' ')) continue;
    chars[i] = c > 0 ? 2 : 1;
  }
  return { file, chars, functions: fnState };
}

/** Merges coverage of the same file: a character or function covered in any of them is covered. */
export function mergeCoverage(list: readonly FileCoverage[]): FileCoverage | null {
  const [first, ...rest] = list;
  if (first === undefined) return null;
  const chars = Uint8Array.from(first.chars);
  const functions = new Map(first.functions);
  for (const c of rest) {
    for (let i = 0; i < chars.length; i++) chars[i] = Math.max(chars[i] ?? 0, c.chars[i] ?? 0);
    for (const [k, v] of c.functions) functions.set(k, (functions.get(k) ?? false) || v);
  }
  return { file: first.file, chars, functions };
}

/** Coverage of `files` (relative to dist/) from every dump in `dir`. */
export function readCoverage(dir: string, files: readonly string[]): Map<string, FileCoverage> {
  const byUrl = new Map(files.map((f) => [new URL(`file://${path.join(DIST_DIR, f)}`).href, f]));
  const found = new Map<string, FileCoverage[]>();
  for (const dump of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
    const parsed: unknown = JSON.parse(readFileSync(path.join(dir, dump), 'utf8'));
    const result = isRecord(parsed) ? parsed.result : undefined;
    if (!Array.isArray(result)) continue;
    for (const script of result) {
      if (!isRecord(script) || typeof script.url !== 'string') continue;
      const file = byUrl.get(script.url);
      if (file === undefined) continue;
      const source = readFileSync(fileURLToPath(script.url), 'utf8');
      found.set(file, [...(found.get(file) ?? []), scriptCoverage(file, source, asFunctions(script.functions))]);
    }
  }
  const out = new Map<string, FileCoverage>();
  for (const [file, list] of found) {
    const merged = mergeCoverage(list);
    if (merged !== null) out.set(file, merged);
  }
  return out;
}

/** Maximal runs [start, end) of counted characters that never ran. */
function uncoveredRuns(c: FileCoverage): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= c.chars.length; i++) {
    const v = i < c.chars.length ? c.chars[i] : 2;
    if (v === 1 && start < 0) start = i;
    else if (v === 2 && start >= 0) {
      runs.push([start, i]);
      start = -1;
    }
  }
  return runs;
}

export function summarize(c: FileCoverage): CoverageSummary {
  let counted = 0;
  let covered = 0;
  for (const v of c.chars) {
    if (v > 0) counted += 1;
    if (v === 2) covered += 1;
  }
  const fns = [...c.functions.values()];
  return {
    file: c.file,
    counted,
    covered,
    percent: counted === 0 ? 0 : (100 * covered) / counted,
    functions: fns.length,
    coveredFunctions: fns.filter(Boolean).length,
    uncoveredBlocks: uncoveredRuns(c).length,
  };
}

/** The TypeScript lines (via the file's source map) where never-executed code sits, e.g. "codec.ts:87-89". */
export function uncoveredSourceLines(c: FileCoverage): string[] {
  const jsPath = path.join(DIST_DIR, c.file);
  const source = readFileSync(jsPath, 'utf8');
  let map: SourceMap | null = null;
  try {
    const p: unknown = JSON.parse(readFileSync(`${jsPath}.map`, 'utf8'));
    if (isRecord(p)) {
      const text = (k: string): string => (typeof p[k] === 'string' ? p[k] : '');
      const list = (k: string): string[] => { const v = p[k]; return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []; };
      map = new SourceMap({ file: text('file'), version: Number(p.version), sources: list('sources'), sourcesContent: list('sourcesContent'), names: list('names'), mappings: text('mappings'), sourceRoot: text('sourceRoot') });
    }
  } catch {
    map = null;
  }
  const lineStarts = [0];
  for (let i = 0; i < source.length; i++) if (source[i] === '\n') lineStarts.push(i + 1);
  const position = (offset: number): { line: number; column: number } => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if ((lineStarts[mid] ?? 0) <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo, column: offset - (lineStarts[lo] ?? 0) };
  };
  const tsLine = (offset: number): string => {
    const p = position(offset);
    const entry: unknown = map?.findEntry(p.line, p.column);
    if (isRecord(entry) && typeof entry.originalLine === 'number' && typeof entry.originalSource === 'string') {
      return `${path.relative(REPO_ROOT, fileURLToPath(new URL(entry.originalSource, `file://${jsPath}`)))}:${entry.originalLine + 1}`;
    }
    return `${c.file}:${p.line + 1}`;
  };
  const out: string[] = [];
  for (const [start, end] of uncoveredRuns(c)) {
    const a = tsLine(start);
    const b = tsLine(end - 1);
    const [fileA, lineA] = a.split(':');
    const lineB = b.split(':')[1];
    const text = lineA === lineB || lineB === undefined ? a : `${fileA ?? ''}:${lineA ?? ''}-${lineB}`;
    if (out[out.length - 1] !== text) out.push(text);
  }
  return out;
}
