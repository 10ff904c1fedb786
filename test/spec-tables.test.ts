// The spec's tables and the code's are the same data (spec §2, §4, §10, §11).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import * as limits from '../src/proto/limits.js';
import {
  CLIENT_RECEIVE,
  CLIENT_SEND,
  ERRORS,
  FRAME_TYPES,
  SERVER_RECEIVE,
  SERVER_SEND,
  type ErrorCode,
} from '../src/proto/index.js';
import { SPEC_DIR, VECTORS_DIR } from './support/paths.js';

const spec = readFileSync(path.join(SPEC_DIR, 'PROTOCOL.md'), 'utf8');

/** Rows of the Markdown table that follows `heading` (a line starting with it), without the header row. */
function tableAfter(marker: string): string[][] {
  const start = spec.indexOf(marker);
  assert.ok(start >= 0, `spec has no ${marker}`);
  const lines = spec.slice(start).split('\n').slice(1);
  const rows: string[][] = [];
  let seenTable = false;
  for (const line of lines) {
    if (!line.startsWith('|')) {
      if (seenTable) break;
      continue;
    }
    seenTable = true;
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows.slice(2);
}

it('state tables in the spec equal src/proto/states.ts', () => {
  const cases = [
    ['<!-- table:server-receive -->', SERVER_RECEIVE],
    ['<!-- table:server-send -->', SERVER_SEND],
    ['<!-- table:client-receive -->', CLIENT_RECEIVE],
    ['<!-- table:client-send -->', CLIENT_SEND],
  ] as const;
  for (const [marker, rows] of cases) {
    assert.deepEqual(tableAfter(marker), rows.map((r) => [...r]), marker);
  }
});

it('error table in the spec equals src/proto/errors.ts', () => {
  const rows = tableAfter('## 10. Error codes');
  const fromSpec = rows.map(([wire, name, family, exit, transient]) => [name, wire === '—' ? null : Number(wire), family, Number(exit), transient === 'yes']);
  const fromCode = (Object.keys(ERRORS) as ErrorCode[]).map((c) => [c, ERRORS[c].wire, ERRORS[c].family, ERRORS[c].exit, ERRORS[c].transient]);
  assert.deepEqual(fromSpec, fromCode);
});

it('frame type table in the spec equals src/proto/frames.ts', () => {
  const rows = tableAfter('## 4. Frame types');
  const fromSpec = rows.map(([type, name]) => [name, Number(type)]);
  assert.deepEqual(fromSpec, Object.entries(FRAME_TYPES));
});

it('limits in the spec equal src/proto/limits.ts', () => {
  const rows = tableAfter('## 2. Frames');
  const byName = new Map(rows.map(([name, value]) => [name?.replaceAll('`', ''), Number(value?.split(' ')[0])]));
  assert.equal(byName.get('MAX_PLAINTEXT_FRAME_LENGTH'), limits.MAX_PLAINTEXT_FRAME_LENGTH_BYTES);
  assert.equal(byName.get('MAX_FRAME_LENGTH'), limits.MAX_FRAME_LENGTH_BYTES);
  assert.equal(byName.get('MAX_DATA_CHUNK'), limits.MAX_DATA_CHUNK_BYTES);
  assert.equal(byName.get('MAX_CONTROL_PAYLOAD'), limits.MAX_CONTROL_PAYLOAD_BYTES);
  assert.equal(byName.get('MAX_RECORD_LENGTH'), limits.MAX_RECORD_LENGTH_BYTES);
  assert.equal(byName.get('MAX_CONTROL_RECORD_LENGTH'), limits.MAX_CONTROL_RECORD_LENGTH_BYTES);
  assert.equal(byName.get('MIN_RECORD_LENGTH'), limits.MIN_RECORD_LENGTH_BYTES);
});

it('the spec has no TBD', () => {
  assert.doesNotMatch(spec, /\bTBD\b|\bTODO\b/);
});

it('§12 describes the vector files as they are: every file, the phases of frames-invalid, the handshakes', () => {
  const s12 = spec.slice(spec.indexOf('## 12. Vectors'), spec.indexOf('## 13.'));
  assert.ok(s12.length > 100, 'spec has §12 before §13');
  for (const file of readdirSync(VECTORS_DIR).filter((f) => f.endsWith('.json'))) {
    assert.ok(s12.includes(`\`${file}\``), `§12 names ${file}`);
  }
  const invalid = JSON.parse(readFileSync(path.join(VECTORS_DIR, 'frames-invalid.json'), 'utf8')) as { vectors: { phase: string }[] };
  for (const phase of new Set(invalid.vectors.map((v) => v.phase))) assert.ok(s12.includes(`\`${phase}\`:`), `§12 defines phase ${phase}`);
  const handshakes = JSON.parse(readFileSync(path.join(VECTORS_DIR, 'handshake.json'), 'utf8')) as { vectors: { name: string }[] };
  assert.equal(handshakes.vectors.length, 2);
  assert.match(s12, /\*\*two\*\* complete handshakes/);
  for (const v of handshakes.vectors) assert.ok(s12.includes(`\`${v.name}\``), `§12 names the handshake "${v.name}"`);
});

it('the spec has a revision line and a changelog entry for it', () => {
  const revision = /Document revision: \*\*(\d+\.\d+)\*\*/.exec(spec)?.[1];
  assert.ok(revision !== undefined, 'a revision line at the top');
  const changelog = spec.slice(spec.indexOf('## 15. Changelog'));
  assert.ok(changelog.includes(`- **${revision}**`), `the changelog has an entry for revision ${revision}`);
});
