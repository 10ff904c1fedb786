// stx-keygen / stx-send --keygen: an Ed25519 identity and the line for the server's authorized-keys file.
import { access } from 'node:fs/promises';
import os from 'node:os';
import { authorizedKeyLine, identityFingerprint } from '../crypto/index.js';
import { generateIdentity, loadIdentity, saveIdentity } from '../keystore/index.js';

/** Creates the identity if it does not exist yet; returns the authorized-keys line. */
export async function keygen(file: string): Promise<string> {
  const present = await access(file).then(
    () => true,
    () => false,
  );
  const key = present ? await loadIdentity(file) : generateIdentity();
  if (!present) await saveIdentity(file, key);
  const comment = `${os.userInfo().username}@${os.hostname()}`;
  const line = authorizedKeyLine(key, comment);
  process.stderr.write(
    `${present ? 'using the existing' : 'wrote a new'} identity ${file} (${identityFingerprint(key)})\n` +
      "add this line to the server's authorized-keys file:\n",
  );
  return line;
}
