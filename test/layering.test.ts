// The dependency arrows of DESIGN.md: recv, send → storage → transfer → crypto → proto; recv, send → keystore → crypto → proto; recv, send →
// runtime (a leaf), recv, send → cli → proto; proto does no I/O and touches no runtime internals (v8, vm); crypto opens no
// sockets and no files; recv and send never import each other.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { it } from 'node:test';
import { REPO_ROOT } from './support/paths.js';

const LAYERS = ['proto', 'crypto', 'keystore', 'runtime', 'cli', 'transfer', 'storage', 'recv', 'send'] as const;
type Layer = (typeof LAYERS)[number];

/** Which of our layers and which node: modules each layer may import. */
const ALLOWED: Record<Layer, { ours: readonly Layer[]; forbiddenNode: RegExp }> = {
  proto: { ours: ['proto'], forbiddenNode: /^node:(net|tls|http|https|dgram|fs|fs\/promises|child_process|worker_threads|timers|v8|vm)$/ },
  crypto: { ours: ['proto', 'crypto'], forbiddenNode: /^node:(net|tls|http|https|dgram|child_process|fs|fs\/promises)$/ },
  keystore: { ours: ['proto', 'crypto', 'keystore'], forbiddenNode: /^node:(net|tls|http|https|dgram|child_process)$/ },
  runtime: { ours: ['runtime'], forbiddenNode: /^node:(net|tls|http|https|dgram|fs|fs\/promises|child_process)$/ },
  cli: { ours: ['proto', 'cli'], forbiddenNode: /^node:(net|tls|http|https|dgram|child_process)$/ },
  transfer: { ours: ['proto', 'crypto', 'runtime', 'transfer'], forbiddenNode: /^node:(net|tls|http|https|dgram|child_process)$/ },
  storage: { ours: ['proto', 'runtime', 'transfer', 'storage'], forbiddenNode: /^node:(net|tls|http|https|dgram|child_process)$/ },
  recv: { ours: ['proto', 'crypto', 'keystore', 'runtime', 'cli', 'transfer', 'storage', 'recv'], forbiddenNode: /^$/ },
  send: { ours: ['proto', 'crypto', 'keystore', 'runtime', 'cli', 'transfer', 'storage', 'send'], forbiddenNode: /^$/ },
};

/**
 * The one file below recv/send that starts a process: the publishing thread's filesystem sync
 * (syncfs(2), which Node has no call for: perl or `sync -f`), a process it starts once per output directory.
 */
const SPAWNS = ['src/storage/local/put-thread.ts'] as const;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1] ?? m[2] ?? '');
}

for (const layer of LAYERS) {
  it(`src/${layer} imports only what its layer may`, () => {
    const files = sources(path.join(REPO_ROOT, 'src', layer));
    assert.ok(files.length > 0);
    for (const file of files) {
      for (const spec of imports(file)) {
        if (spec.startsWith('.')) {
          const target = path.relative(path.join(REPO_ROOT, 'src'), path.resolve(path.dirname(file), spec)).split(path.sep)[0];
          assert.ok(
            ALLOWED[layer].ours.some((l) => l === target),
            `${path.relative(REPO_ROOT, file)} imports ${spec} (src/${target ?? '?'})`,
          );
        } else if (!(spec === 'node:child_process' && (SPAWNS as readonly string[]).includes(path.relative(REPO_ROOT, file)))) {
          assert.doesNotMatch(spec, ALLOWED[layer].forbiddenNode, `${path.relative(REPO_ROOT, file)} imports ${spec}`);
        }
      }
    }
  });
}
