// SIGHUP re-reads --authorized-keys (README "stx-recv"): new connections get in, and get their
// rights (namespace, append-only, …: access.ts), by the new file; open ones keep what they got.
// A file that does not parse changes nothing and is logged with its line. Requests are served
// one at a time, in order; one that arrives before the server exists (the handler goes in first,
// since SIGHUP's default action ends the process) waits for it.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { parseKeyRights, type Access, type KeyRights } from './access.js';
import type { RunningServer } from './server.js';

/** Reads and parses an authorized-keys file with its options (§7.4); a malformed line is an error naming it. */
export async function readAuthorizedKeys(file: string): Promise<Map<string, KeyRights>> {
  return parseKeyRights(await readFile(file, 'utf8'), file);
}

/** What stays as the command line set it across reloads: the namespaces of anonymous clients and of keys without one. */
export type AccessFlags = Omit<Access, 'keys'>;

export class AuthorizedKeysReloader {
  #server: RunningServer | undefined;
  #pending = false;
  #chain = Promise.resolve();

  constructor(
    private readonly file: string | undefined,
    private readonly flags: AccessFlags,
    private readonly log: Logger,
  ) {}

  /** The server whose access a reload replaces; a request that came earlier runs now. */
  attach(server: RunningServer): void {
    this.#server = server;
    if (this.#pending) this.request();
  }

  /** Re-reads the file (after any reload still running). */
  request(): void {
    const server = this.#server;
    this.#pending = server === undefined;
    if (server !== undefined) this.#chain = this.#chain.then(() => this.#reload(server));
  }

  async #reload(server: RunningServer): Promise<void> {
    if (this.file === undefined) {
      this.log.warn({ event: 'reload', authorized_keys: null }, 'SIGHUP: no --authorized-keys file to re-read; anonymous clients stay allowed');
      return;
    }
    try {
      const keys = await readAuthorizedKeys(this.file);
      server.setAccess({ ...this.flags, keys });
      this.log.info({ event: 'reload', file: this.file, authorized_keys: keys.size }, `re-read ${this.file}: ${keys.size} authorized keys for new connections`);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.log.error({ event: 'reload_failed', file: this.file, error: message }, `SIGHUP: ${message}; keeping the previous authorized keys`);
    }
  }
}
