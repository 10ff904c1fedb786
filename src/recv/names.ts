// Remote names (spec/PROTOCOL.md §9.3): what a peer may ask us to create. This is policy, the same
// for every storage backend; how a name becomes a path without following a symbolic link is the
// local backend's (storage/local/paths.ts).

import { UploadError } from '../proto/errors.js';
import { MAX_NAME_BYTES, MAX_NAME_COMPONENT_BYTES } from '../proto/limits.js';
import { RESERVED_NAME_PREFIX } from '../storage/backend.js';

// C0 controls, DEL and C1 controls (§9.3).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
// With the `u` flag a well-formed surrogate pair is one code point, so only lone halves match.
const LONE_SURROGATE = /[\ud800-\udfff]/u;

function refuse(reason: string): never {
  throw new UploadError('BAD_NAME', reason);
}

/**
 * Checks a remote name against §9.3 and returns its components. Throws UploadError BAD_NAME
 * with the reason otherwise. Names that look like traversal but are literal (`%2e%2e`, `．．`,
 * `‥`) are legal: they are ordinary file names that stay inside the output directory.
 */
export function validateName(name: string): string[] {
  if (name.length === 0) refuse('empty name');
  if (LONE_SURROGATE.test(name)) refuse('name is not valid UTF-8 (lone surrogate)');
  // The MessagePack decoder turns invalid UTF-8 into U+FFFD, so that is how it shows here (§9.3).
  if (name.includes('\uFFFD')) refuse('name is not valid UTF-8 (or contains U+FFFD)');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    refuse(`name longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (CONTROL.test(name)) refuse('name contains a control character');
  if (name.includes('\\')) refuse('name contains a backslash');
  if (name.normalize('NFC') !== name) refuse('name is not NFC-normalised');
  if (name.startsWith('/')) refuse('name is absolute');
  const components = name.split('/');
  for (const component of components) {
    if (component === '') refuse('name has an empty component');
    if (component === '.' || component === '..') refuse(`name has a "${component}" component`);
    if (component.startsWith(RESERVED_NAME_PREFIX)) {
      refuse(`name has a component starting with the reserved "${RESERVED_NAME_PREFIX}"`);
    }
    if (Buffer.byteLength(component, 'utf8') > MAX_NAME_COMPONENT_BYTES) {
      refuse(`name has a component longer than ${MAX_NAME_COMPONENT_BYTES} bytes`);
    }
  }
  return components;
}
