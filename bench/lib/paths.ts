// Where things are, from the compiled file's location (dist/bench/lib/paths.js).
import { fileURLToPath } from 'node:url';

/** The project root (holds package.json and node_modules). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A compiled bench script, e.g. benchScript('baseline-raw.js') → dist/bench/baseline-raw.js. */
export function benchScript(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

/** A compiled project file, e.g. distFile('src/recv/cli.js') → dist/src/recv/cli.js. */
export function distFile(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}
