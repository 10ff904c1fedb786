// Where things are, from the compiled file's location (dist/bench/lib/paths.js).
import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (holds package.json and node_modules). */
export const PROJECT_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A compiled bench script, e.g. benchScript('baseline-raw.js') → dist/bench/baseline-raw.js. */
export function benchScript(name: string): string {
  return fileURLToPath(new URL(`../${name}`, import.meta.url));
}

/**
 * The stx commands of a compiled tree (`dist` of this checkout or of another commit): the bundled
 * commands in dist/bin/ that `npm run build` makes and users run, or, for a commit from before
 * them, the compiled modules.
 */
export function stxCommands(distRoot: string = distFile('')): { readonly recvCli: string; readonly sendCli: string } {
  const bundled = { recvCli: join(distRoot, 'bin/stx-recv.js'), sendCli: join(distRoot, 'bin/stx-send.js') };
  return existsSync(bundled.recvCli) ? bundled : { recvCli: join(distRoot, 'src/recv/cli.js'), sendCli: join(distRoot, 'src/send/cli.js') };
}

/**
 * How a user runs a stx command file with `args`, as [program, arguments]: the file itself when it
 * is executable (its #! line decides, e.g. stx-send's shell line that drops NODE_EXTRA_CA_CERTS),
 * else, for a commit from before the bundled commands, this node with the file.
 */
export function commandLine(file: string, args: readonly string[]): [string, string[]] {
  try {
    accessSync(file, constants.X_OK);
    return [file, [...args]];
  } catch {
    return [process.execPath, [file, ...args]];
  }
}

/** A compiled project file, e.g. distFile('src/recv/cli.js') → dist/src/recv/cli.js. */
export function distFile(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url));
}
