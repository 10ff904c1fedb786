// The version both client CLIs print for --version: package.json's, read at run time so that a
// release cannot print a stale number. From dist/src/send/ (and src/send/) it is three levels up.
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // Fall through: an installed copy without its package.json still runs.
  }
  return 'unknown';
}
