// Contender "scp": see bench/baseline-ssh.ts for what is measured on each side.
import { runSsh, sshAvailable, sshVersion } from '../baseline-ssh.js';
import type { Contender } from './types.js';

export const scp: Contender = {
  name: 'scp',
  measures: 'scp -O (classic protocol) → private sshd; wall = client start → client exit',
  available: sshAvailable,
  version: sshVersion,
  run: (file, workdir, placement) => runSsh('scp', file, workdir, placement),
};
