// The client's resumption tickets (spec/PROTOCOL.md §7.5, revision 1.13) on disk: a directory
// beside known_hosts ($STX_HOME/tickets, 0700), one file per ticket (0600) named by the server's
// fingerprint, the client identity (or "anonymous") and when it expires. A ticket is used once: a
// process claims it by renaming it away, which only one of several stx-send processes can do, then
// reads and deletes it. Everything is bounded: files looked at, kept per server, bytes read.
//
// The calls are synchronous: a handful of tiny files per connection, where each promise-based call
// cost a thread-pool hop and a FileHandle (a take and a save: ~0.7–0.95 ms of CPU, ~0.11–0.14
// synchronous, 500 pairs in a loop).
import { randomBytes } from 'node:crypto';
import { closeSync, lstatSync, mkdirSync, opendirSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
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
  take(serverFingerprint: string, client: string | null, nowMs = Date.now()): StoredTicket | null {
    const entries = this.entries(serverFingerprint, client, nowMs).sort((a, b) => b.expiresMs - a.expiresMs);
    for (const e of entries) {
      const claimed = join(this.dir, `.claimed.${randomBytes(6).toString('hex')}`);
      try {
        renameSync(join(this.dir, e.name), claimed);
      } catch (err) {
        // Another process claimed it first.
        if (errnoOf(err) === 'ENOENT') continue;
        throw err;
      }
      try {
        const parsed = parseTicketFile(readBounded(claimed));
        if (parsed !== null) return { ...parsed, serverFingerprint, expiresMs: e.expiresMs };
      } finally {
        unlinkQuietly(claimed);
      }
    }
    return null;
  }

  /** Keeps a NEW_TICKET (0600), then drops the oldest beyond MAX_TICKETS_PER_SERVER. */
  save(serverFingerprint: string, client: string | null, ticket: Buffer, psk: Buffer, lifetimeS: number, nowMs = Date.now()): void {
    this.keep(serverFingerprint, client, ticket, psk, nowMs + Math.min(lifetimeS, MAX_TICKET_LIFETIME_S) * 1000 - EXPIRY_MARGIN_MS, nowMs);
  }

  /**
   * Gives back a ticket taken for a connection the server refused before it answered (plaintext
   * ERROR, or closed, before SERVER_HELLO): it never used it, so the retry may (§7.5).
   */
  putBack(client: string | null, t: StoredTicket, nowMs = Date.now()): void {
    this.keep(t.serverFingerprint, client, t.ticket, t.psk, t.expiresMs, nowMs);
  }

  private keep(serverFingerprint: string, client: string | null, ticket: Buffer, psk: Buffer, expiresMs: number, nowMs: number): void {
    if (ticket.length === 0 || ticket.length > MAX_TICKET_BYTES || psk.length !== PSK_BYTES) return;
    if (expiresMs <= nowMs) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const name = `${prefix(serverFingerprint, client)}${expiresMs}.${randomBytes(6).toString('hex')}`;
    const tmp = join(this.dir, `.tmp.${randomBytes(6).toString('hex')}`);
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      const bytes = Buffer.from(JSON.stringify({ ticket: ticket.toString('base64'), psk: psk.toString('base64') }));
      for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, join(this.dir, name));
    const kept = this.entries(serverFingerprint, client, nowMs).sort((a, b) => b.expiresMs - a.expiresMs);
    for (const e of kept.slice(MAX_TICKETS_PER_SERVER)) unlinkQuietly(join(this.dir, e.name));
  }

  /**
   * This server's and client's tickets. Deleted on the way: expired tickets (any server's, so a
   * server never contacted again leaves nothing behind for long), and files a process that died
   * left claimed or half-written.
   */
  private entries(serverFingerprint: string, client: string | null, nowMs: number): Entry[] {
    const want = prefix(serverFingerprint, client);
    const found: Entry[] = [];
    let dir;
    try {
      dir = opendirSync(this.dir);
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') return found;
      throw err;
    }
    try {
      for (let d = dir.readSync(), seen = 1; d !== null && seen <= MAX_ENTRIES_SCANNED; d = dir.readSync(), seen++) {
        if (!d.isFile()) continue;
        if (LEFTOVER_PREFIXES.some((p) => d.name.startsWith(p))) {
          this.sweepLeftover(d.name, nowMs);
          continue;
        }
        if (!d.name.startsWith(want)) {
          // server.client.expiresMs.random: another server's or identity's ticket, kept until it expires.
          const other = Number(d.name.split('.')[2]);
          if (Number.isSafeInteger(other) && other <= nowMs) unlinkQuietly(join(this.dir, d.name));
          continue;
        }
        const expiresMs = Number(d.name.slice(want.length).split('.')[0]);
        if (!Number.isSafeInteger(expiresMs) || expiresMs <= nowMs) {
          unlinkQuietly(join(this.dir, d.name));
          continue;
        }
        found.push({ name: d.name, expiresMs });
      }
    } finally {
      dir.closeSync();
    }
    return found;
  }

  /** Deletes `name` (a claimed or half-written ticket file) if it is older than LEFTOVER_MS. */
  private sweepLeftover(name: string, nowMs: number): void {
    const file = join(this.dir, name);
    try {
      if (nowMs - lstatSync(file).mtimeMs > LEFTOVER_MS) unlinkSync(file);
    } catch {
      // Gone meanwhile (its process finished with it), or not ours to judge.
    }
  }
}

/** Deletes `file` if it is there: another process may have taken it first. */
function unlinkQuietly(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Gone already.
  }
}

function prefix(serverFingerprint: string, client: string | null): string {
  return `${component(serverFingerprint)}.${client === null ? 'anonymous' : component(client)}.`;
}

function readBounded(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(MAX_TICKET_FILE_BYTES + 1);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0));
  } finally {
    closeSync(fd);
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
