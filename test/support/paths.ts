// Paths of the source tree, from compiled tests in dist/test/** or from test/**.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'spec'))) return dir;
    dir = path.dirname(dir);
  }
  throw new Error('repository root not found above ' + fileURLToPath(import.meta.url));
}

export const REPO_ROOT = findRoot();
export const SPEC_DIR = path.join(REPO_ROOT, 'spec');
export const VECTORS_DIR = path.join(REPO_ROOT, 'spec', 'vectors');
export const TEST_VECTORS_DIR = path.join(REPO_ROOT, 'test', 'vectors');
export const DIST_DIR = path.join(REPO_ROOT, 'dist');
