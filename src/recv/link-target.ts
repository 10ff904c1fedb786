// Targets of symbolic links a client asks for (spec/PROTOCOL.md §9.8): relative, in the
// characters a name may have, and never leading out of the output directory. The check is
// lexical and sound because `..` may only open the target: it climbs from the link's own
// directory, which is a real directory (names never pass through links, §9.3); the rest only
// descends, through links that obey the same rule.
import { UploadError } from '../proto/errors.js';
import { validateName } from './names.js';

function refuse(reason: string): never {
  throw new UploadError('BAD_NAME', `link target: ${reason}`);
}

/** Checks `target` for a link whose name has `nameComponents`; BAD_NAME with the reason otherwise. */
export function validateLinkTarget(nameComponents: readonly string[], target: string): void {
  if (target.startsWith('/')) refuse('absolute');
  const parts = target.split('/');
  let up = 0;
  let descended = false;
  const names: string[] = [];
  for (const part of parts) {
    if (part === '') refuse('empty component');
    if (part === '.') continue;
    if (part === '..') {
      if (descended) refuse('".." after a name (it would climb from wherever a link on the way leads)');
      up++;
      continue;
    }
    descended = true;
    names.push(part);
  }
  // The link lives in the directory of its name: it may climb that many levels, no more.
  if (up > nameComponents.length - 1) refuse('leads out of the output directory');
  // Every other component must be one a name may have (§9.3): characters, length, no .stx.
  if (names.length > 0) {
    try {
      validateName(names.join('/'));
    } catch (err) {
      if (err instanceof UploadError) refuse(err.message);
      throw err;
    }
  }
}
