#!/usr/bin/env node
// stx-keygen [FILE]: writes an Ed25519 identity (default $STX_HOME/id_ed25519) and prints its authorized-keys line.
import os from 'node:os';
import path from 'node:path';
import { keygen } from './keygen.js';

const file = process.argv[2] ?? path.join(process.env['STX_HOME'] ?? path.join(os.homedir(), '.config', 'stx'), 'id_ed25519');
keygen(file).then(
  (line) => process.stdout.write(`${line}\n`),
  (err: unknown) => {
    process.stderr.write(`stx-keygen: error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
