#!/usr/bin/env node
// stx-keygen [FILE]: writes an Ed25519 identity (default $STX_HOME/id_ed25519) and prints its authorized-keys line.
import path from 'node:path';
import { stxHome } from '../crypto/index.js';
import { keygen } from './keygen.js';

const file = process.argv[2] ?? path.join(stxHome(), 'id_ed25519');
keygen(file).then(
  (line) => process.stdout.write(`${line}\n`),
  (err: unknown) => {
    process.stderr.write(`stx-keygen: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
