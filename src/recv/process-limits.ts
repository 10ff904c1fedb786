// What the process itself allows, read from /proc once at start: the open-file limit and the
// umask.
//
// File descriptors against the connection limit (§9.6 bounds): an upload holds up to three (its
// socket, the partial, the partial's O_DIRECT twin), so a --max-connections the open-file limit
// cannot honour would turn the last connections' OPENs into EMFILE failures. Node raises the soft
// limit to the hard one at start; what is left is read here and the cap lowered to fit.
import { readFileSync } from 'node:fs';

/** Descriptors one connection may hold while it uploads. */
export const FDS_PER_CONNECTION = 3;
/** Descriptors kept for the rest: the listening socket, the hashing thread, logs, keys, records. */
export const FDS_RESERVED = 64;

/** The process's soft open-file limit, or null where /proc does not say (or it is unlimited). */
export function openFileLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line === undefined ? undefined : /^Max open files\s+(\d+)\s/.exec(line)?.[1];
    return soft === undefined ? null : Number(soft);
  } catch {
    return null;
  }
}

/** The most connections `fdLimit` descriptors serve, at least one. */
export function connectionsWithin(fdLimit: number): number {
  return Math.max(1, Math.floor((fdLimit - FDS_RESERVED) / FDS_PER_CONNECTION));
}

/**
 * The process's umask, read from /proc (process.umask() without an argument is deprecated: it
 * sets the mask to read it); 0o022 where /proc is not there.
 */
export function processUmask(): number {
  try {
    const line = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (line?.[1] !== undefined) return parseInt(line[1], 8);
  } catch {
    // Not Linux, or no /proc: the usual default.
  }
  return 0o022;
}
