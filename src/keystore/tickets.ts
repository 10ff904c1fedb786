// The client's resumption tickets (spec/PROTOCOL.md §7.5, revision 1.13) on disk: a directory
// beside known_hosts ($STX_HOME/tickets, 0700), one file per ticket (0600) named by the server's
// fingerprint, the client identity (or "anonymous") and when it expires. A ticket is used once: a
// process claims it by renaming it away, which only one of several stx-send processes can do, then
// reads and deletes it. Everything is bounded: files looked at, kept per server, bytes read.
import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, opendir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { RESUMPTION_PSK_BYTES as PSK_BYTES, type ClientTicket } from '../crypto/index.js';
import { errnoOf } from '../proto/errors.js';
import { MAX_TICKET_BYTES, MAX_TICKET_LIFETIME_S } from '../proto/limits.js';

/** Tickets kept per (server, client identity); the ones expiring first go beyond it. */
export const MAX_TICKETS_PER_SERVER = 8;
/** Directory entries looked at per take or save: a directory beyond it is only partly seen. */
const MAX_ENTRIES_SCANNED = 1024;
/** A ticket file is a small JSON object; a larger one is no ticket of ours and is deleted. */
const MAX_TICKET_FILE_BYTES = 4096;
/** A ticket is given up this long before it expires, so it never reaches the server stale. */
const EXPIRY_MARGIN_MS = 60_000;
/** A claimed or half-written file this old was left by a process that died: it is deleted. */
const LEFTOVER_MS = 3600_000;
const LEFTOVER_PREFIXES = ['.claimed.', '.tmp.'];

/** A fingerprint as one file-name component: base64 without "SHA256:", `+` and `/` as `-` and `_`. */
function component(fingerprint: string): string {
  return fingerprint.replace(/^SHA256:/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

interface Entry {
  readonly name: string;
  readonly expiresMs: number;
}

/** A ticket claimed from the store, with when it expires (for putBack()). */
export interface StoredTicket extends ClientTicket {
  readonly expiresMs: number;
}

export class TicketStore {
  constructor(readonly dir: string) {}

  /**
   * Claims the newest unexpired ticket for `serverFingerprint` and this client (`client`: its
   * identity fingerprint, or null when anonymous); null if there is none. The ticket is gone from
   * the store afterwards, whether or not the server takes it.
   */
  async take(serverFingerprint: string, client: string | null, nowMs = Date.now()): Promise<StoredTicket | null> {
    const entries = (await this.entries(serverFingerprint, client, nowMs)).sort((a, b) => b.expiresMs - a.expiresMs);
    for (const e of entries) {
      const claimed = join(this.dir, `.claimed.${randomBytes(6).toString('hex')}`);
      try {
        await rename(join(this.dir, e.name), claimed);
      } catch (err) {
        // Another process claimed it first.
        if (errnoOf(err) === 'ENOENT') continue;
        throw err;
      }
      try {
        const parsed = parseTicketFile(await readBounded(claimed));
        if (parsed !== null) return { ...parsed, serverFingerprint, expiresMs: e.expiresMs };
      } finally {
        await unlink(claimed).catch(() => undefined);
      }
    }
    return null;
  }

  /** Keeps a NEW_TICKET (0600), then drops the oldest beyond MAX_TICKETS_PER_SERVER. */
  async save(serverFingerprint: string, client: string | null, ticket: Buffer, psk: Buffer, lifetimeS: number, nowMs = Date.now()): Promise<void> {
    await this.keep(serverFingerprint, client, ticket, psk, nowMs + Math.min(lifetimeS, MAX_TICKET_LIFETIME_S) * 1000 - EXPIRY_MARGIN_MS, nowMs);
  }

  /**
   * Gives back a ticket taken for a connection the server refused before it answered (plaintext
   * ERROR, or closed, before SERVER_HELLO): it never used it, so the retry may (§7.5).
   */
  async putBack(client: string | null, t: StoredTicket, nowMs = Date.now()): Promise<void> {
    await this.keep(t.serverFingerprint, client, t.ticket, t.psk, t.expiresMs, nowMs);
  }

  private async keep(serverFingerprint: string, client: string | null, ticket: Buffer, psk: Buffer, expiresMs: number, nowMs: number): Promise<void> {
    if (ticket.length === 0 || ticket.length > MAX_TICKET_BYTES || psk.length !== PSK_BYTES) return;
    if (expiresMs <= nowMs) return;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const name = `${prefix(serverFingerprint, client)}${expiresMs}.${randomBytes(6).toString('hex')}`;
    const tmp = join(this.dir, `.tmp.${randomBytes(6).toString('hex')}`);
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(JSON.stringify({ ticket: ticket.toString('base64'), psk: psk.toString('base64') }));
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.dir, name));
    const kept = (await this.entries(serverFingerprint, client, nowMs)).sort((a, b) => b.expiresMs - a.expiresMs);
    for (const e of kept.slice(MAX_TICKETS_PER_SERVER)) await unlink(join(this.dir, e.name)).catch(() => undefined);
  }

  /**
   * This server's and client's tickets. Deleted on the way: expired tickets (any server's, so a
   * server never contacted again leaves nothing behind for long), and files a process that died
   * left claimed or half-written.
   */
  private async entries(serverFingerprint: string, client: string | null, nowMs: number): Promise<Entry[]> {
    const want = prefix(serverFingerprint, client);
    const found: Entry[] = [];
    let dir;
    try {
      dir = await opendir(this.dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return found;
      throw err;
    }
    let seen = 0;
    try {
      for await (const d of dir) {
        if (++seen > MAX_ENTRIES_SCANNED) break;
        if (!d.isFile()) continue;
        if (LEFTOVER_PREFIXES.some((p) => d.name.startsWith(p))) {
          await this.sweepLeftover(d.name, nowMs);
          continue;
        }
        if (!d.name.startsWith(want)) {
          // server.client.expiresMs.random: another server's or identity's ticket, kept until it expires.
          const other = Number(d.name.split('.')[2]);
          if (Number.isSafeInteger(other) && other <= nowMs) await unlink(join(this.dir, d.name)).catch(() => undefined);
          continue;
        }
        const expiresMs = Number(d.name.slice(want.length).split('.')[0]);
        if (!Number.isSafeInteger(expiresMs) || expiresMs <= nowMs) {
          await unlink(join(this.dir, d.name)).catch(() => undefined);
          continue;
        }
        found.push({ name: d.name, expiresMs });
      }
    } finally {
      await dir.close().catch(() => undefined);
    }
    return found;
  }

  /** Deletes `name` (a claimed or half-written ticket file) if it is older than LEFTOVER_MS. */
  private async sweepLeftover(name: string, nowMs: number): Promise<void> {
    const file = join(this.dir, name);
    try {
      if (nowMs - (await lstat(file)).mtimeMs > LEFTOVER_MS) await unlink(file);
    } catch {
      // Gone meanwhile (its process finished with it), or not ours to judge.
    }
  }
}

function prefix(serverFingerprint: string, client: string | null): string {
  return `${component(serverFingerprint)}.${client === null ? 'anonymous' : component(client)}.`;
}

async function readBounded(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_TICKET_FILE_BYTES + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The file's ticket and psk, or null for anything else (too long, not JSON, wrong sizes). */
function parseTicketFile(bytes: Buffer): Omit<ClientTicket, 'serverFingerprint'> | null {
  if (bytes.length > MAX_TICKET_FILE_BYTES) return null;
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const { ticket, psk } = value as { ticket?: unknown; psk?: unknown };
  if (typeof ticket !== 'string' || typeof psk !== 'string') return null;
  const t = Buffer.from(ticket, 'base64');
  const p = Buffer.from(psk, 'base64');
  if (t.length === 0 || t.length > MAX_TICKET_BYTES || p.length !== PSK_BYTES) return null;
  return { ticket: t, psk: p };
}
