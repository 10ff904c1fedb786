// V8's code cache for a bundled command (package.json "bundle": stx-send). Node 22 caches the
// code of every module it compiles (module.enableCompileCache); Node 20 has nothing of the kind, so
// each start parses the whole bundle and compiles every function it calls anew. This runs a
// CommonJS bundle through vm.Script with the bytecode V8 made for it at an earlier run
// (`cachedData`), as v8-compile-cache does. The cache is written at the end of a run that found
// none or had it refused, so it holds what that run compiled lazily too (a send's whole path),
// not only the top level. STX_TUNING without "code-cache" (tuning.ts) runs the bundle without it.
//
// The cache is a file per bundle in $XDG_CACHE_HOME/stx (~/.cache/stx), named by a SHA-256 of
// the bundle's text, Node's version and the V8 flags of the command line: V8 itself checks only its
// version, its flags and the length of the source before it takes a cache (a bundle of the same
// length with other code would run the old code), and refuses another build of V8. The file
// carries a SHA-256 of V8's data, checked before V8 sees it: V8 takes a corrupt cache and crashes.
// A cache that cannot be read, is refused or cannot be written costs nothing but the compile it
// would have saved.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { debuglog } from 'node:util';
import { Script } from 'node:vm';
import { parseTuning } from '../runtime/tuning.js';

/** NODE_DEBUG=stx-code-cache says, per run, whether the cache was absent, refused or taken, and where it is. */
const debug = debuglog('stx-code-cache');

/**
 * Caches kept per command: those of other builds (another checkout, another Node) stay for when
 * they run again, the oldest beyond this many are deleted when a new one is written.
 */
const MAX_CACHES_PER_COMMAND = 4;

/** What the bundle's `import.meta` stands for: esbuild --define:import.meta=stxImportMeta. */
interface BundleMeta {
  readonly url: string;
  readonly filename: string;
  readonly dirname: string;
  resolve(specifier: string): string;
}

/** The directory caches go into, or null when there is none (no home) or STX_TUNING turns the cache off. */
export function codeCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  let wanted: boolean;
  try {
    wanted = parseTuning(env['STX_TUNING']).has('code-cache');
  } catch {
    // The command itself refuses the value, with a usage error (tuneRuntime).
    wanted = false;
  }
  if (!wanted) return null;
  const xdg = env['XDG_CACHE_HOME'];
  if (xdg !== undefined && path.isAbsolute(xdg)) return path.join(xdg, 'stx');
  const home = env['HOME'];
  return home !== undefined && path.isAbsolute(home) ? path.join(home, '.cache', 'stx') : null;
}

/**
 * Runs the CommonJS bundle `bundle` (its `import.meta` defined as `stxImportMeta`), with the code
 * cache named `name` when there is a cache directory.
 */
export function runCached(bundle: URL, name: string): void {
  const filename = fileURLToPath(bundle);
  const dirname = path.dirname(filename);
  const text = readFileSync(filename, 'utf8');
  const dir = codeCacheDir();
  const key = createHash('sha256').update(text).update(`\0${process.version}\0${process.arch}\0${process.execArgv.join(' ')}\0${process.env['NODE_OPTIONS'] ?? ''}`).digest('hex').slice(0, 32);
  const file = dir === null ? null : path.join(dir, `${name}-${key}.v8cache`);
  let cachedData: Buffer | undefined;
  if (file !== null) {
    try {
      cachedData = checked(readFileSync(file));
    } catch {
      // None yet (or unreadable): compiled from the text, and written at exit.
    }
  }
  // The CommonJS wrapper on the bundle's first line, so that its line numbers stay those of the file.
  const body = text.startsWith('#!') ? text.slice(text.indexOf('\n')) : text;
  const script = new Script(`(function (exports, require, module, __filename, __dirname, stxImportMeta) {${body}\n})`, cachedData === undefined ? { filename } : { filename, cachedData });
  const taken = cachedData !== undefined && !script.cachedDataRejected;
  debug('%s %s', cachedData === undefined ? 'absent' : taken ? 'accepted' : 'rejected', file ?? '(no cache directory)');
  if (file !== null && !taken) process.once('exit', () => save(script, file, name));
  const require = createRequire(filename);
  const meta: BundleMeta = { url: bundle.href, filename, dirname, resolve: (specifier) => pathToFileURL(require.resolve(specifier)).href };
  const module = { exports: {} };
  const run: unknown = script.runInThisContext();
  if (typeof run !== 'function') throw new TypeError(`${filename}: not a bundle`);
  Reflect.apply(run, module.exports, [module.exports, require, module, filename, dirname, meta]);
}

/** Bytes of the SHA-256 of the V8 data in front of it in a cache file. */
const DIGEST_BYTES = 32;

/**
 * The V8 data of a cache file, or an empty buffer (which V8 refuses) if the file is not whole:
 * V8 (release builds) checks no checksum of its own, and a corrupt cache crashes the process
 * (a fatal error in ContextifyScript::New, seen with a cache of flipped bytes).
 */
function checked(file: Buffer): Buffer {
  const data = file.subarray(DIGEST_BYTES);
  const digest = createHash('sha256').update(data).digest();
  return file.length > DIGEST_BYTES && digest.equals(file.subarray(0, DIGEST_BYTES)) ? data : Buffer.alloc(0);
}

/**
 * Writes the code V8 holds for `script` now (at exit: every function the run compiled) to `file`,
 * whole or not at all (a temporary file renamed), and deletes the oldest caches of the command
 * beyond MAX_CACHES_PER_COMMAND. Failing that, nothing.
 */
function save(script: Script, file: string, name: string): void {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const data = script.createCachedData();
    writeFileSync(tmp, Buffer.concat([createHash('sha256').update(data).digest(), data]), { mode: 0o600 });
    renameSync(tmp, file);
    debug('wrote %s', file);
    const caches = readdirSync(dir)
      .filter((f) => f.startsWith(`${name}-`) && f.endsWith('.v8cache'))
      .map((f) => ({ f, mtime: statSync(path.join(dir, f)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    for (const { f } of caches.slice(MAX_CACHES_PER_COMMAND)) unlinkSync(path.join(dir, f));
  } catch (err) {
    debug('not written: %s', err instanceof Error ? err.message : String(err));
    try {
      unlinkSync(tmp);
    } catch {
      // Never made.
    }
  }
}
