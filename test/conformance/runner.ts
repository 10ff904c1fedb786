// Runs conformance cases against a server and reports them by spec section (spec/PROTOCOL.md §14).
import { randomBytes } from 'node:crypto';
import { RawClient, type RunContext } from './client.js';
import type { ConformanceCase } from './cases.js';

export interface CaseResult {
  readonly section: string;
  readonly name: string;
  readonly expect: readonly string[];
  readonly got: string;
  readonly pass: boolean;
  readonly ms: number;
}

export interface RunOptions {
  readonly host: string;
  readonly port: number;
  readonly fingerprint?: string | undefined;
  readonly waitMs?: number;
  readonly timerWaitMs?: number;
  /** Bound on one case, connection to verdict. */
  readonly caseTimeoutMs?: number;
  readonly onResult?: (r: CaseResult) => void;
}

/** Runs every case on its own connection, one after another; never throws for a failing case. */
export async function runConformance(cases: readonly ConformanceCase[], opts: RunOptions): Promise<CaseResult[]> {
  const ctx: RunContext = {
    host: opts.host,
    port: opts.port,
    fingerprint: opts.fingerprint,
    prefix: `conformance/${new Date().toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`,
    waitMs: opts.waitMs ?? 3000,
    timerWaitMs: opts.timerWaitMs ?? 75_000,
  };
  const caseTimeoutMs = opts.caseTimeoutMs ?? Math.max(30_000, ctx.timerWaitMs + 10_000);
  const results: CaseResult[] = [];
  for (const cc of cases) {
    const t0 = Date.now();
    let got: string;
    let client: RawClient | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      client = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
      const c = client;
      const timeout = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`case timed out after ${caseTimeoutMs} ms`), caseTimeoutMs)));
      got = await Promise.race([cc.run(c, ctx), timeout]);
    } catch (err) {
      got = `exception: ${err instanceof Error ? err.message : String(err)}`;
    } finally {
      clearTimeout(timer);
      client?.destroy();
    }
    const r: CaseResult = { section: cc.section, name: cc.name, expect: cc.expect, got, pass: cc.expect.includes(got), ms: Date.now() - t0 };
    results.push(r);
    opts.onResult?.(r);
  }
  return results;
}

/** "§9.1" < "§10.1" < "§11": numeric order of the section numbers. */
function sectionKey(section: string): number[] {
  return section.replace('§', '').split('.').map(Number);
}
function compareSections(a: string, b: string): number {
  const x = sectionKey(a);
  const y = sectionKey(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? -1) - (y[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** Section titles ("§2.1" → "Control payloads") from the spec's headings. */
export function sectionTitles(specText: string): Map<string, string> {
  const titles = new Map<string, string>();
  for (const m of specText.matchAll(/^#{2,3} (\d+(?:\.\d+)?)\.? (.+)$/gm)) {
    if (m[1] !== undefined && m[2] !== undefined) titles.set(`§${m[1]}`, m[2]);
  }
  return titles;
}

/** The h2spec-style report: failures in full, then one row per section, then the totals. */
export function report(results: readonly CaseResult[], titles: ReadonlyMap<string, string> = new Map()): string {
  const lines: string[] = [];
  const sections = [...new Set(results.map((r) => r.section))].sort(compareSections);
  for (const section of sections) {
    const rs = results.filter((r) => r.section === section);
    lines.push(`${section} ${titles.get(section) ?? ''}`.trimEnd());
    for (const r of rs) {
      lines.push(`  ${r.pass ? 'PASS' : 'FAIL'}  ${r.name}`);
      if (!r.pass) lines.push(`        expected ${r.expect.join(' | ')}`, `        got      ${r.got}`);
    }
  }
  lines.push('', '| section | title | cases | passed | failed |', '|---|---|---|---|---|');
  for (const section of sections) {
    const rs = results.filter((r) => r.section === section);
    const passed = rs.filter((r) => r.pass).length;
    lines.push(`| ${section} | ${titles.get(section) ?? ''} | ${rs.length} | ${passed} | ${rs.length - passed} |`);
  }
  const passed = results.filter((r) => r.pass).length;
  lines.push(`| all | | ${results.length} | ${passed} | ${results.length - passed} |`);
  return lines.join('\n');
}
