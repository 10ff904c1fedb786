// Install missing tools with apt-get, so the bench works on a fresh Debian machine as root.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Upper bound for one apt-get call. */
const APT_TIMEOUT_MS = 10 * 60 * 1000;
const APT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

interface Tool {
  /** Absolute path of the binary that must exist. */
  readonly path: string;
  /** Debian package that provides it. */
  readonly pkg: string;
}

let updated: Promise<void> | undefined;

/** Null when every tool is present (installing them if needed), else the reason they are not. */
export async function ensureTools(tools: readonly Tool[], purpose: string): Promise<string | null> {
  const missing = tools.filter((t) => !existsSync(t.path));
  if (missing.length === 0) return null;
  const pkgs = [...new Set(missing.map((t) => t.pkg))];
  const names = missing.map((t) => t.path).join(', ');
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    return `missing ${names}; install Debian package(s) ${pkgs.join(' ')} (needs root and apt-get)`;
  }
  process.stderr.write(`bench: ${names} missing; installing ${pkgs.join(' ')} with apt-get for ${purpose}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { env, timeout: APT_TIMEOUT_MS, maxBuffer: APT_MAX_OUTPUT_BYTES };
  try {
    updated ??= execFileAsync('apt-get', ['update', '-qq'], opts).then(() => undefined);
    await updated;
    await execFileAsync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], opts);
  } catch (err) {
    return `apt-get install ${pkgs.join(' ')} failed: ${err instanceof Error ? err.message : String(err)}`;
  }
  const still = tools.filter((t) => !existsSync(t.path));
  return still.length === 0 ? null : `still missing after apt-get: ${still.map((t) => t.path).join(', ')}`;
}
