// Remote names (spec/PROTOCOL.md §9.3): what a peer may ask us to create, and how we create its
// directories without ever following a symbolic link.

import { lstat, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { UploadError } from '../proto/errors.js';
import { MAX_NAME_BYTES, MAX_NAME_COMPONENT_BYTES } from '../proto/limits.js';

/** Linux PATH_MAX, counting the terminating NUL: a full path must be shorter. */
const MAX_PATH_BYTES = 4096;
import { NAME_DIR_MODE, RESERVED_DIR_NAME } from './config.js';
import { errnoOf, toStxError } from '../transfer/io-error.js';

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
    if (component.startsWith(RESERVED_DIR_NAME)) {
      refuse(`name has a component starting with the reserved "${RESERVED_DIR_NAME}"`);
    }
    if (Buffer.byteLength(component, 'utf8') > MAX_NAME_COMPONENT_BYTES) {
      refuse(`name has a component longer than ${MAX_NAME_COMPONENT_BYTES} bytes`);
    }
  }
  return components;
}

/** Ensures `dir` is a real directory (not a symlink), creating it if missing. */
async function ensureDirectory(dir: string, shown: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const st = await lstat(dir);
      if (st.isSymbolicLink()) refuse(`"${shown}" is a symbolic link`);
      if (!st.isDirectory()) refuse(`"${shown}" exists and is not a directory`);
      return;
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw toStxError(err, 'checking', shown);
    }
    try {
      await mkdir(dir, { mode: NAME_DIR_MODE });
      return;
    } catch (err) {
      // Lost a race with another creator: look again at what is there now.
      if (errnoOf(err) !== 'EEXIST') throw toStxError(err, 'creating directory', shown);
    }
  }
  refuse(`"${shown}" keeps changing while being created`);
}

/**
 * Creates the missing parent directories of `components` under `outDir`, one component at a
 * time, refusing (BAD_NAME) any component that is a symbolic link or not a directory, and
 * returns the absolute final path. The final path itself may be absent or a regular file; a
 * symlink, directory or special file there is BAD_NAME. `components` must come from
 * validateName. `outDir` itself is trusted configuration and may be reached through links.
 */
export async function resolveInside(outDir: string, components: readonly string[]): Promise<string> {
  const last = components.length - 1;
  if (last < 0) refuse('empty name');
  // The OS refuses paths of PATH_MAX bytes or more: say so as a name problem, before creating anything.
  const full = path.join(path.resolve(outDir), ...components);
  if (Buffer.byteLength(full, 'utf8') >= MAX_PATH_BYTES) {
    refuse(`name too long for this server: with its output directory the path would exceed ${MAX_PATH_BYTES - 1} bytes`);
  }
  let current = path.resolve(outDir);
  for (let i = 0; i < last; i++) {
    const component = components[i];
    if (component === undefined) refuse('empty name');
    current = path.join(current, component);
    await ensureDirectory(current, components.slice(0, i + 1).join('/'));
  }
  const finalComponent = components[last];
  if (finalComponent === undefined) refuse('empty name');
  const finalPath = path.join(current, finalComponent);
  const shown = components.join('/');
  try {
    const st = await lstat(finalPath);
    if (st.isSymbolicLink()) refuse(`"${shown}" is a symbolic link`);
    if (!st.isFile()) refuse(`"${shown}" exists and is not a regular file`);
  } catch (err) {
    if (errnoOf(err) !== 'ENOENT') throw toStxError(err, 'checking', shown);
  }
  return finalPath;
}
