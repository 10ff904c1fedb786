#!/usr/bin/env node
// stx-keygen [--file FILE]: writes an Ed25519 identity (default $STX_HOME/id_ed25519) and prints
// its authorized-keys line. stx-keygen --age [--file FILE]: an age identity for sealed uploads
// (default $STX_HOME/age_identity) and prints its recipient. The path is a named option, and a positional that looks like an option
// is refused: `stx-keygen --hlep` once wrote a private key to a file named after the typo.
import path from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { stxHome } from '../keystore/index.js';
import { keygen } from './keygen.js';
import { ageKeygen, defaultAgeIdentityFile } from './seal.js';
import { conventions, UsageError } from '../cli/conventions.js';

const EXIT_USAGE = 2;
const EXIT_LOCAL = 1;


async function main(): Promise<number> {
  const argv = await conventions(yargs(hideBin(process.argv)))
    .scriptName('stx-keygen')
    .usage(
      '$0 [--file FILE]\n\nCreate an Ed25519 client identity (or reuse the one in FILE) and print the line to add to ' +
        "the server's --authorized-keys file.",
    )
    .usage(
      '$0 --age [--file FILE]\n\nCreate an age identity for sealed uploads (or reuse the one in FILE) and print its recipient (age1…) ' +
        'for stx-send --seal. Keep FILE, or a copy, off the server: it is the only way to read what is sealed.',
    )
    .option('file', { alias: 'f', type: 'string', describe: 'identity file [default: $STX_HOME/id_ed25519, with --age $STX_HOME/age_identity]' })
    .option('age', { type: 'boolean', default: false, describe: 'make an age (X25519) identity for stx-send --seal / stx-get --unseal instead' })
    .strictOptions()
    .parseAsync();
  if (argv.help === true || argv.version === true) return 0;
  const positional = argv._.map(String);
  if (positional.length > 1) throw new UsageError(`expected at most one FILE, got ${positional.length}`);
  const [given] = positional;
  if (given !== undefined && given.startsWith('-')) {
    throw new UsageError(`refusing to write a key to "${given}": it looks like an option. Use --file ./${given} if you mean that file`);
  }
  if (given !== undefined && argv.file !== undefined) throw new UsageError('give the identity file once: --file FILE or FILE, not both');
  if (argv.file === '') throw new UsageError('--file needs a path');
  if (argv.age) {
    const file = argv.file ?? given ?? defaultAgeIdentityFile();
    const { recipient, created } = await ageKeygen(file);
    process.stderr.write(
      `${created ? 'wrote a new' : 'using the existing'} age identity ${file}\n` +
        `seal to it with: stx-send … --seal ${recipient}\nopen with: stx-get … --unseal ${file}, or age -d -i ${file}\n`,
    );
    process.stdout.write(`${recipient}\n`);
    return 0;
  }
  const file = argv.file ?? given ?? path.join(stxHome(), 'id_ed25519');
  process.stdout.write(`${await keygen(file)}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const usage = err instanceof UsageError;
    const text = err instanceof Error ? err.message : String(err);
    process.stderr.write(`stx-keygen: error: ${text}${usage ? "\nRun 'stx-keygen --help' for the options." : ''}\n`);
    process.exit(usage ? EXIT_USAGE : EXIT_LOCAL);
  },
);
