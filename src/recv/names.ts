// Remote names (spec/PROTOCOL.md §9.3): what a peer may ask us to create. This is policy, the same
// for every storage backend; how a name becomes a path without following a symbolic link is the
// local backend's (storage/local/paths.ts).

import { UploadError } from '../proto/errors.js';
import { MAX_NAME_BYTES, MAX_NAME_COMPONENT_BYTES, MAX_NAME_COMPONENTS } from '../proto/limits.js';
import { RESERVED_NAME_PREFIX } from '../storage/backend.js';

// C0 controls, DEL and C1 controls (§9.3).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
// With the `u` flag a well-formed surrogate pair is one code point, so only lone halves match.
const LONE_SURROGATE = /[\ud800-\udfff]/u;
// Code points that change how a line or the text around them is shown (§9.3): the line and
// paragraph separators and the bidirectional controls (ALM, LRM, RLM, embeddings, overrides,
// isolates), which make a listed name read as another one.
const INVISIBLE_LAYOUT = /[\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/u;
// Noncharacters: U+FDD0..U+FDEF and the last two code points of every plane.
const NONCHARACTER = /[\ufdd0-\ufdef]|[\ufffe\uffff\u{1fffe}\u{1ffff}\u{2fffe}\u{2ffff}\u{3fffe}\u{3ffff}\u{4fffe}\u{4ffff}\u{5fffe}\u{5ffff}\u{6fffe}\u{6ffff}\u{7fffe}\u{7ffff}\u{8fffe}\u{8ffff}\u{9fffe}\u{9ffff}\u{afffe}\u{affff}\u{bfffe}\u{bffff}\u{cfffe}\u{cffff}\u{dfffe}\u{dffff}\u{efffe}\u{effff}\u{ffffe}\u{fffff}\u{10fffe}\u{10ffff}]/u;

/**
 * Unicode case folding for the reserved-name check: upper- then lower-casing folds every
 * character that folds to one of `.stx`'s (S, ſ U+017F, T, X) as CaseFolding.txt's C and F
 * mappings do, so `.STX` and `.ſtx` are the reserved name on a case-insensitive filesystem too.
 */
function fold(text: string): string {
  return text.toUpperCase().toLowerCase();
}
const RESERVED_FOLDED = fold(RESERVED_NAME_PREFIX);

function refuse(reason: string): never {
  throw new UploadError('BAD_NAME', reason);
}

/**
 * Checks a remote name against §9.3 and returns its components. Throws UploadError BAD_NAME
 * with the reason otherwise. Names that look like traversal but are literal (`%2e%2e`, `．．`,
 * `‥`) are legal: they are ordinary file names that stay inside the output directory.
 */
export function validateName(name: string): string[] {
  return PRINTABLE_ASCII.test(name) ? validateAsciiName(name) : validateAnyName(name);
}

/** validateName with every check, whatever the name holds (exported for the test of validateAsciiName). */
export function validateAnyName(name: string): string[] {
  if (name.length === 0) refuse('empty name');
  if (LONE_SURROGATE.test(name)) refuse('name is not valid UTF-8 (lone surrogate)');
  // The MessagePack decoder turns invalid UTF-8 into U+FFFD, so that is how it shows here (§9.3).
  if (name.includes('\uFFFD')) refuse('name is not valid UTF-8 (or contains U+FFFD)');
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    refuse(`name longer than ${MAX_NAME_BYTES} bytes`);
  }
  if (CONTROL.test(name)) refuse('name contains a control character');
  if (INVISIBLE_LAYOUT.test(name)) refuse('name contains a line separator or a bidirectional control');
  if (NONCHARACTER.test(name)) refuse('name contains a Unicode noncharacter');
  if (name.includes('\\')) refuse('name contains a backslash');
  if (name.normalize('NFC') !== name) refuse('name is not NFC-normalised');
  return checkedComponents(name, false);
}

/**
 * The checks of a name's components, and the components. `ascii`: the name is PRINTABLE_ASCII,
 * so a component's length is its UTF-8 length, and only one starting with '.' can fold to the
 * reserved prefix (in ASCII only '.' folds to '.').
 */
function checkedComponents(name: string, ascii: boolean): string[] {
  if (name.startsWith('/')) refuse('name is absolute');
  const components = name.split('/');
  // Before any per-component work: a deep name costs the server a directory per component (§9.3).
  if (components.length > MAX_NAME_COMPONENTS) refuse(`name has more than ${MAX_NAME_COMPONENTS} components`);
  for (const component of components) {
    if (component === '') refuse('name has an empty component');
    if (component === '.' || component === '..') refuse(`name has a "${component}" component`);
    if ((!ascii || component.startsWith('.')) && fold(component).startsWith(RESERVED_FOLDED)) {
      refuse(`name has a component starting with the reserved "${RESERVED_NAME_PREFIX}" (in any case)`);
    }
    if ((ascii ? component.length : Buffer.byteLength(component, 'utf8')) > MAX_NAME_COMPONENT_BYTES) {
      refuse(`name has a component longer than ${MAX_NAME_COMPONENT_BYTES} bytes`);
    }
  }
  return components;
}

/**
 * Printable ASCII but the backslash: a name of these alone has no lone surrogate, U+FFFD,
 * control, layout control or noncharacter, is NFC, and is as many UTF-8 bytes as characters, so
 * validateAsciiName skips those checks (a tree of small files asks for one per file, §9.11).
 */
const PRINTABLE_ASCII = /^[\x20-\x5b\x5d-\x7e]+$/;

/** validateName for a PRINTABLE_ASCII name: the same checks, answers and reasons, without what cannot fail. */
function validateAsciiName(name: string): string[] {
  if (name.length > MAX_NAME_BYTES) refuse(`name longer than ${MAX_NAME_BYTES} bytes`);
  return checkedComponents(name, true);
}
