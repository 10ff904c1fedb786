// Contender "sftp": see bench/baseline-ssh.ts for what is measured on each side.
import { runSsh, sshAvailable, sshVersion } from '../baseline-ssh.js';
import type { Contender } from './types.js';

export const sftp: Contender = {
  name: 'sftp',
  measures: 'sftp -b put → private sshd (sftp-server); wall = client start → client exit',
  available: sshAvailable,
  version: sshVersion,
  run: (file, workdir, placement) => runSsh('sftp', file, workdir, placement),
};
