// Which stored names a client's names stand for (spec/PROTOCOL.md §7.4, §9.3, §9.9, §9.10): the
// one mapping, for uploads, MKDIR, SYMLINK, downloads and listings alike. A client's namespace
// (its key's namespace= option, --anonymous-namespace or --default-namespace: access.ts) is a
// stored directory its names live under; storedName() confines what a client asks for to it,
// clientName() turns what a listing finds back into what the client may ask for and hides what
// lies outside. A name cannot leave its namespace: it has no `..` or empty component (§9.3), and
// the storage never follows a link at any component, the namespace's own included.
import { validateName } from './names.js';

/** A namespace as stored components ([]: the whole output directory). */
export type Namespace = readonly string[];

/** The stored name's components for a client's `name`; BAD_NAME unless it is a valid name (§9.3). */
export function storedName(space: Namespace, name: string): string[] {
  return [...space, ...validateName(name)];
}

/**
 * The stored directory a client's listing `prefix` stands for ('' is the client's whole view);
 * BAD_NAME unless it is empty or a valid name.
 */
export function storedPrefix(space: Namespace, prefix: string): string[] {
  return prefix === '' ? [...space] : storedName(space, prefix);
}

/**
 * The name a client knows stored `components` by, or null if the client may not see it: outside
 * its namespace, or not a name it could ask for (§9.3: a file put there by other means with a
 * control character or a non-NFC name is not listed).
 */
export function clientName(space: Namespace, components: readonly string[]): string | null {
  if (components.length <= space.length || !space.every((c, i) => components[i] === c)) return null;
  const name = components.slice(space.length).join('/');
  try {
    validateName(name);
  } catch {
    return null;
  }
  return name;
}
