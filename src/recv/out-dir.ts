// The daemon's --out directory, checked before anything else touches it. A typo must not
// silently create a whole tree: only the last component is created (its parent must exist),
// and every failure names the path and says what to do.
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { NAME_DIR_MODE } from './config.js';
import { errnoOf } from '../proto/errors.js';
import { StartupError } from './startup-error.js';

/**
 * Makes sure `out` is a directory this process can write into, creating it (mode 0755 less the
 * umask) if only its last component is missing. Returns whether it was created.
 */
export async function prepareOutDir(out: string): Promise<{ created: boolean }> {
  const abs = path.resolve(out);
  const parent = path.dirname(abs);
  let created = false;
  try {
    await mkdir(abs, { mode: NAME_DIR_MODE });
    created = true;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') {
      throw new StartupError(
        'OUT_PARENT_MISSING',
        `--out ${abs}: its parent directory ${parent} does not exist; check the path for a typo, or create the parent first (mkdir -p ${parent})`,
        { cause: err },
      );
    }
    if (code === 'ENOTDIR') {
      throw new StartupError('OUT_PARENT_MISSING', `--out ${abs}: a component of ${parent} is a file, not a directory; check the path`, { cause: err });
    }
    if (code !== 'EEXIST') return failCreate(abs, parent, err);
  }
  let st;
  try {
    st = await stat(abs);
  } catch (err) {
    throw new StartupError('OUT_UNUSABLE', `--out ${abs}: cannot inspect it (${errnoOf(err) ?? String(err)})`, { cause: err });
  }
  if (!st.isDirectory()) {
    throw new StartupError('OUT_NOT_A_DIRECTORY', `--out ${abs} is a file, not a directory; give a directory (stx-recv creates it if only its last part is missing)`);
  }
  try {
    await access(abs, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new StartupError(
      'OUT_NOT_WRITABLE',
      `--out ${abs} is not writable by this user (uid ${uidText()}, ${errnoOf(err) ?? 'denied'}); make it writable (chown or chmod) or choose another directory`,
      { cause: err },
    );
  }
  return { created };
}

function failCreate(abs: string, parent: string, err: unknown): never {
  const code = errnoOf(err);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    throw new StartupError(
      'OUT_NOT_WRITABLE',
      `--out ${abs} does not exist and cannot be created: ${parent} is not writable by this user (uid ${uidText()}, ${code}); create ${abs} with the right owner, or choose another directory`,
      { cause: err },
    );
  }
  throw new StartupError('OUT_UNUSABLE', `--out ${abs}: cannot create it (${code ?? String(err)})`, { cause: err });
}

function uidText(): string {
  return process.getuid === undefined ? '?' : String(process.getuid());
}
