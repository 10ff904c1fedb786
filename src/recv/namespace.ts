// Which stored names a client's names stand for (spec/PROTOCOL.md §9.3, §9.9, §9.10). Today every
// client sees the one output directory, so a name is itself; a per-client namespace (a prefix
// from the client's authorized-keys options) is meant to be added here and only here, for
// downloads and listings alike: storedName() confines what a client asks for, clientName() turns
// what a listing finds back into what the client may ask for, and hides what lies outside.
import { validateName } from './names.js';

/**
 * Per-client namespaces by principal (fingerprint or "anonymous"), as stored components. None is
 * configured yet: every client's names live at the top of the output directory.
 */
const NAMESPACES: ReadonlyMap<string, readonly string[]> = new Map();

/** The stored directory a client's names live under ([]: the whole output directory). */
function namespaceOf(principal: string): readonly string[] {
  return NAMESPACES.get(principal) ?? [];
}

/** The stored name's components for a client's `name`; BAD_NAME unless it is a valid name (§9.3). */
export function storedName(principal: string, name: string): string[] {
  return [...namespaceOf(principal), ...validateName(name)];
}

/**
 * The stored directory a client's listing `prefix` stands for ('' is the client's whole view);
 * BAD_NAME unless it is empty or a valid name.
 */
export function storedPrefix(principal: string, prefix: string): string[] {
  return prefix === '' ? [...namespaceOf(principal)] : storedName(principal, prefix);
}

/**
 * The name a client knows stored `components` by, or null if the client may not see it: outside
 * its namespace, or not a name it could ask for (§9.3: a file put there by other means with a
 * control character or a non-NFC name is not listed).
 */
export function clientName(principal: string, components: readonly string[]): string | null {
  const space = namespaceOf(principal);
  if (!space.every((c, i) => components[i] === c)) return null;
  const name = components.slice(space.length).join('/');
  try {
    validateName(name);
  } catch {
    return null;
  }
  return name;
}
