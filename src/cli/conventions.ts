// What every stx command line does alike (README: "Command-line tools behave as people expect"):
// --help/-h and --version/-V from package.json, and a command line that makes no sense is one
// typed error, USAGE (spec §10, exit 2), never yargs printing and exiting on its own.
import { readFileSync } from 'node:fs';
import type { Argv } from 'yargs';
import { LocalError } from '../proto/errors.js';

/** A command line that makes no sense: USAGE (§10, exit 2). */
export class UsageError extends LocalError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** Runs a parser of a command-line value; its complaint becomes a usage error, after `flag` if given. */
export function usage<T>(parse: () => T, flag?: string): T {
  try {
    return parse();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new UsageError(flag === undefined ? message : `${flag}: ${message}`);
  }
}

/**
 * package.json's version, read at run time so that a release cannot print a stale number: the
 * nearest package.json named "stx" above this module (dist/bin/ holds the bundled commands,
 * dist/src/cli/ the compiled modules), in a clone and in an installed package alike.
 */
function packageVersion(): string {
  let dir = new URL('.', import.meta.url);
  for (let up = 0; up < 4; up++) {
    dir = new URL('..', dir);
    try {
      const pkg: unknown = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8'));
      if (typeof pkg === 'object' && pkg !== null && 'name' in pkg && pkg.name === 'stx' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // Not here: look one level up. A copy without its package.json still runs.
    }
  }
  return 'unknown';
}

/** Applies the conventions to a yargs parser: help, version, and failures as UsageError. */
export function conventions<T>(parser: Argv<T>): Argv<T> {
  return (
    parser
      .exitProcess(false)
      // yargs passes no error for its own validation failures, whatever its types say.
      .fail((msg: string, err: Error | undefined) => {
        throw err ?? new UsageError(msg);
      })
      .help()
      .alias('help', 'h')
      .version(packageVersion())
      .alias('version', 'V')
  );
}
