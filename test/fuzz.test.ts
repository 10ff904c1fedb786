// The fuzz targets of test/fuzz, each for a short, bounded, fixed-seed run (so CI finds at once
// what the fuzzer finds at once), and the parts of the harness whose mistakes would hide bugs:
// the reference model checked against the spec's vectors, the oracle, the coverage metric, the
// regression writer and the `npm run fuzz` entry point.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeBody, encodeBody, StxError } from '../src/proto/index.js';
import { mergeCoverage, scriptCoverage, summarize } from './fuzz/coverage.js';
import { compareOutcome, FuzzFailure, sameFields, typedCode } from './fuzz/oracle.js';
import { referenceBody } from './fuzz/reference-body.js';
import { RefMachine } from './fuzz/reference-machine.js';
import { appendRegression } from './fuzz/regressions.js';
import { runTarget } from './fuzz/runner.js';
import { addSealed, sealBodies, type SealedSet } from './fuzz/sealed.js';
import { TARGETS } from './fuzz/targets.js';
import { referencePlaintext } from './fuzz/targets/plaintext-stream.js';
import { checkAuthentic } from './fuzz/targets/record-channel.js';
import { jsonToValue } from './support/json-frames.js';
import { DIST_DIR } from './support/paths.js';
import { field, str, vectorFiles } from './support/vectors.js';

const SEED = 0x57c1;
/** Per target: at most this long and this many inputs, and at least this many executions. */
const SECONDS = 2;
const MAX_RUNS = 4000;
const MIN_EXECS = 150;

describe('fuzz targets, 2 s each with a fixed seed', () => {
  TARGETS.forEach((t, i) => {
    it(`${t.name}: no failure, at least ${MIN_EXECS} executions`, () => {
      const r = t.use((target) => runTarget(target, { seconds: SECONDS, seed: SEED + i, maxRuns: MAX_RUNS, shrinkSeconds: 5 }));
      const f = r.failure;
      assert.equal(f, null, f === null ? '' : `${f.message}\n${f.counterexample}\nreplay: seed ${f.seed}, path "${f.path}"`);
      assert.ok(r.execs >= MIN_EXECS, `${t.name} ran only ${r.execs} executions`);
    });
  });
});

describe('the reference model agrees with spec/vectors', () => {
  it('frames-valid*: every body is accepted with the vector frame', () => {
    let n = 0;
    for (const { vectors } of vectorFiles('frames-valid')) {
      for (const v of vectors) {
        const verdict = referenceBody(Buffer.from(str(v, 'body_hex'), 'hex'));
        assert.equal(verdict.kind, 'accept', str(v, 'body_hex'));
        const expected = jsonToValue(field(v, 'frame'));
        assert.ok(typeof expected === 'object' && expected !== null);
        assert.ok(sameFields(new Map(Object.entries(expected)), verdict.frame), str(v, 'body_hex'));
        n += 1;
      }
    }
    assert.ok(n >= 15);
  });

  it('frames-invalid*: every input fails with the vector code', () => {
    let n = 0;
    for (const { file, vectors } of vectorFiles('frames-invalid')) {
      for (const v of vectors) {
        const bytes = Buffer.from(str(v, 'hex'), 'hex');
        let code: string;
        if (str(v, 'phase') === 'body') {
          const verdict = referenceBody(bytes);
          code = verdict.kind === 'reject' ? verdict.code : 'accepted';
        } else {
          const last = referencePlaintext(bytes).at(-1);
          code = last === undefined ? 'no error' : last.kind === 'error' ? last.code : last.verdict.kind === 'reject' ? last.verdict.code : 'no error';
        }
        assert.equal(code, str(v, 'error'), `${file}: ${str(v, 'name')}`);
        n += 1;
      }
    }
    assert.ok(n >= 30);
  });

  it('states*: every sequence ends where the vector says', () => {
    for (const { file, vectors } of vectorFiles('states')) {
      for (const v of vectors) {
        const r = field(v, 'resumption');
        const m = new RefMachine(str(v, 'machine') === 'server' ? 'server' : 'client', r === undefined ? undefined : { tickets: field(r, 'tickets') === true, resumed: field(r, 'resumed') === true });
        const steps = field(v, 'steps');
        assert.ok(Array.isArray(steps));
        let code: string | null = null;
        for (const step of steps) {
          assert.ok(Array.isArray(step) && typeof step[1] === 'string');
          code = step[0] === 'recv' ? m.receive(step[1]) : m.send(step[1]);
          if (code !== null) break;
        }
        const expected = field(v, 'error');
        if (typeof expected === 'string') assert.equal(code, expected, `${file}: ${str(v, 'name')}`);
        else assert.equal(m.state, str(v, 'final'), `${file}: ${str(v, 'name')}`);
      }
    }
  });
});

describe('the oracle', () => {
  const ping = (seq: number): Buffer => encodeBody({ type: 'PING', seq });
  const frame = decodeBody(ping(1));

  it('fails on a frame the reference rejects or decodes otherwise, and on a wrong code', () => {
    assert.throws(() => compareOutcome({ frames: [frame], code: null }, [{ kind: 'body', verdict: { kind: 'reject', code: 'MALFORMED_FRAME' } }]), FuzzFailure);
    assert.throws(() => compareOutcome({ frames: [frame], code: null }, [{ kind: 'body', verdict: referenceBody(ping(2)) }]), FuzzFailure);
    assert.throws(() => compareOutcome({ frames: [], code: 'DECRYPT_FAILED' }, [{ kind: 'error', code: 'TRUNCATED' }]), FuzzFailure);
    assert.throws(() => compareOutcome({ frames: [frame], code: null }, []), FuzzFailure);
    compareOutcome({ frames: [frame], code: null }, [{ kind: 'body', verdict: referenceBody(ping(1)) }]);
  });

  it('passes a typed error through and fails on any other exception', () => {
    assert.equal(typedCode(() => decodeBody(Buffer.alloc(0))), 'MALFORMED_FRAME');
    assert.throws(() => typedCode(() => void JSON.parse('{')), FuzzFailure);
    assert.ok(!(new FuzzFailure('x') instanceof StxError));
  });

  it('calls an altered record, or a genuine one at another seq, a forgery', () => {
    const key = Buffer.alloc(32, 1);
    const iv = Buffer.alloc(12, 2);
    const sealed: SealedSet = new Map();
    const [record, second] = sealBodies(key, iv, {}, [ping(1), ping(2)], sealed);
    assert.ok(record !== undefined && second !== undefined);
    checkAuthentic({ key, iv, sealed, complete: true }, 0, record);
    assert.throws(() => checkAuthentic({ key, iv, sealed, complete: true }, 1, record), FuzzFailure);
    const altered = Buffer.from(record);
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1;
    assert.throws(() => checkAuthentic({ key, iv, sealed, complete: false }, 0, altered), FuzzFailure);
    // Genuine but not among the originals: only a stream whose originals are all known can tell.
    const originals: SealedSet = new Map();
    addSealed(originals, 1, record, ping(1));
    checkAuthentic({ key, iv, sealed: originals, complete: false }, 1, second);
    assert.throws(() => checkAuthentic({ key, iv, sealed: originals, complete: true }, 1, second), FuzzFailure);
  });
});

describe('coverage metric', () => {
  const src = 'const a = 1;\nfunction f(x) {\n  if (x) {\n    g();\n  }\n  return 2;\n}\n';
  const fStart = src.indexOf('function');
  const fEnd = src.lastIndexOf('}') + 1;
  const blockStart = src.indexOf('{\n    g');
  const blockEnd = src.indexOf('}\n  return');
  const nonSpace = (a: number, b: number): number => src.slice(a, b).replace(/\s/g, '').length;
  const dump = (blockCount: number): Parameters<typeof scriptCoverage>[2] => [
    { functionName: '', ranges: [{ startOffset: 0, endOffset: src.length, count: 1 }] },
    { functionName: 'f', ranges: [{ startOffset: fStart, endOffset: fEnd, count: 3 }, { startOffset: blockStart, endOffset: blockEnd + 1, count: blockCount }] },
  ];

  it('counts non-space characters inside functions, the innermost range deciding', () => {
    const s = summarize(scriptCoverage('x.js', src, dump(0)));
    assert.equal(s.counted, nonSpace(fStart, fEnd));
    assert.equal(s.covered, nonSpace(fStart, fEnd) - nonSpace(blockStart, blockEnd + 1));
    assert.deepEqual([s.functions, s.coveredFunctions, s.uncoveredBlocks], [1, 1, 1]);
  });

  it('merges runs: covered in any is covered', () => {
    const merged = mergeCoverage([scriptCoverage('x.js', src, dump(0)), scriptCoverage('x.js', src, dump(2))]);
    assert.ok(merged !== null);
    const s = summarize(merged);
    assert.equal(s.covered, s.counted);
    assert.equal(s.uncoveredBlocks, 0);
  });
});

describe('npm run fuzz', () => {
  it('appends a regression vector once', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'stx-fuzz-vectors-'));
    try {
      const r = { file: 'frames-invalid-fuzz.json', vector: { name: 'x', phase: 'body', hex: '21c1', error: 'MALFORMED_FRAME' } } as const;
      assert.equal(appendRegression(r, 'first', dir), true);
      assert.equal(appendRegression(r, 'second name, same vector', dir), false);
      const parsed: unknown = JSON.parse(readFileSync(path.join(dir, r.file), 'utf8'));
      assert.deepEqual(field(parsed, 'vectors'), [{ ...r.vector, name: 'first' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs a target in a child and reports executions and V8 coverage', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'stx-fuzz-cli-'));
    try {
      const json = path.join(dir, 'out.json');
      const main = path.join(DIST_DIR, 'test', 'fuzz', 'main.js');
      const run = spawnSync(process.execPath, [main, '--seconds', '0.5', '--target', 'record-body', '--seed', '1', '--no-vectors', '--json', json], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /record-body\s+\d+\s+\d+/);
      const out: unknown = JSON.parse(readFileSync(json, 'utf8'));
      const results = field(out, 'results');
      assert.ok(Array.isArray(results));
      const result: unknown = results[0];
      const execs = field(field(result, 'report'), 'execs');
      assert.ok(typeof execs === 'number' && execs > 0);
      const coverage = field(result, 'coverage');
      assert.ok(Array.isArray(coverage));
      const codec: unknown = coverage.find((c: unknown) => field(c, 'file') === 'src/proto/codec.js');
      const percent = field(codec, 'percent');
      assert.ok(typeof percent === 'number' && percent > 50, `codec.js coverage ${String(percent)}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
