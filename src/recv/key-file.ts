// The server key file's permissions, checked before the key is read (crypto/keys.ts does the
// reading and creating). Like sshd, a private key that group or others may read is refused:
// it may already have leaked, and silently using it would hide that. The mode bits are tested,
// not whether this process can read the file: root can read anything.
import { stat } from 'node:fs/promises';
import { errnoOf } from '../proto/errors.js';
import { StartupError } from './startup-error.js';

/** Bits of a private key file's mode that must be clear: any access for group or others. */
const KEY_GROUP_OTHER_BITS = 0o077;

/** Whether the key file exists; throws if it exists with permissions that are too open. */
export async function checkServerKeyFile(file: string): Promise<{ exists: boolean }> {
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return { exists: false };
    throw new StartupError('KEY_UNUSABLE', `the server key ${file} cannot be inspected (${errnoOf(err) ?? String(err)}); check the path and its directories' permissions`, { cause: err });
  }
  if (!st.isFile()) throw new StartupError('KEY_UNUSABLE', `the server key ${file} is not a file; give --key the path of a PEM key file (created if missing)`);
  const mode = st.mode;
  if ((mode & KEY_GROUP_OTHER_BITS) !== 0) {
    const shown = (mode & 0o7777).toString(8).padStart(4, '0');
    throw new StartupError(
      'KEY_PERMISSIONS_TOO_OPEN',
      `permissions ${shown} for the server key ${file} are too open: a private key must be readable by its owner only; run: chmod 600 ${quote(file)}`,
    );
  }
  return { exists: true };
}

/** The path as a shell word, quoted only if it needs to be. */
function quote(p: string): string {
  return /^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`;
}
