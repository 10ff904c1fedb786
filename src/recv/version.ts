// The package version for `stx-recv --version`, read from the package.json this file ships in
// (dist/src/recv/version.js → ../../../package.json, in a clone and in an installed package).
import { readFileSync } from 'node:fs';

export function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  if (typeof pkg === 'object' && pkg !== null && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  throw new Error('package.json has no version');
}
