// What stx-send prints for a tree job and a stdin job (cli.ts parses the command line): a progress
// line on a terminal (files and bytes), notices on stderr, and with --json one object on stdout for
// the whole run. The exit code of a tree is 0, or the highest exit code (§10) among the entries
// that failed (LOCAL_FILE 1, upload refusals 6, INTEGRITY_FAILED 7), or that of the error that
// stopped the run; skipped entries (special files, unreadable files, links without --links) are
// listed but do not make it fail.
import type { KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { MAX_DATA_CHUNK_BYTES } from '../proto/limits.js';
import { sealedStream } from '../transfer/sealed-source.js';
import { printable } from './printable.js';
import { formatBytes } from './progress.js';
import type { Sealing } from './seal.js';
import { sendStream } from './stream.js';
import { sendTree, type TreeProgress } from './tree.js';

export interface CommonOptions {
  readonly host: string;
  readonly port: number;
  readonly fingerprint?: string;
  readonly knownHostsFile: string;
  /** null: --no-tickets (§7.5); else $STX_HOME/tickets. */
  readonly ticketDir?: null;
  readonly identity?: KeyObject;
  readonly retries: number;
  readonly retryForMs: number | undefined;
  readonly backoffMs: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** --seal / --seal-to: every file (and stdin) is sealed and stored as NAME.age (seal.ts). */
  readonly sealing?: Sealing | undefined;
}

export interface Output {
  readonly json: boolean;
  readonly quiet: boolean;
  /** Draw a progress line on stderr. */
  readonly tty: boolean;
}

/** At most this many redraws a second. */
const REDRAW_MS = 100;

/** One progress line on stderr, redrawn at most every REDRAW_MS. */
class Line {
  #last = 0;
  #drawn = false;
  draw(text: string, force = false): void {
    const now = Date.now();
    if (!force && now - this.#last < REDRAW_MS) return;
    this.#last = now;
    this.#drawn = true;
    const width = Math.max((process.stderr.columns > 0 ? process.stderr.columns : 80) - 1, 20);
    process.stderr.write(`\r${text.slice(0, width)}\x1b[K`);
  }
  /** Clears the line before other output. */
  clear(): void {
    if (this.#drawn) process.stderr.write('\r\x1b[K');
  }
}

function notices(out: Output, line: Line | null): ((m: string) => void) | undefined {
  if (out.quiet) return undefined;
  return (m) => {
    line?.clear();
    process.stderr.write(`stx-send: ${printable(m)}\n`);
  };
}

export async function runTree(common: CommonOptions, paths: readonly string[], to: string | undefined, links: boolean, out: Output, checksum = false): Promise<number> {
  const line = out.tty ? new Line() : null;
  const started = Date.now();
  const result = await sendTree({
    ...common,
    files: common.sealing,
    paths,
    to,
    links,
    checksum,
    onEvent: notices(out, line),
    onProgress:
      line === null
        ? undefined
        : (p: TreeProgress) => {
            const rate = p.sent / Math.max((Date.now() - started) / 1000, 1e-3);
            const pct = p.currentSize === 0 ? 100 : Math.floor((p.currentSent / p.currentSize) * 100);
            line.draw(`${p.done} done, ${formatBytes(p.sent)} sent (${formatBytes(rate)}/s)${p.reconnects > 0 ? `, reconnects ${p.reconnects}` : ''} — ${printable(p.current)} ${pct}%`);
          },
  });
  line?.clear();
  const { aborted, ...summary } = result;
  if (out.json) {
    process.stdout.write(
      `${JSON.stringify({
        ok: result.exit_code === 0,
        host: common.host,
        port: common.port,
        ...summary,
        ...(aborted === null ? {} : { code: aborted.code, message: printable(aborted.message) }),
      })}\n`,
    );
  }
  if (aborted !== null) process.stderr.write(`stx-send: error: ${aborted.code}: ${printable(aborted.message)}\n`);
  if (!out.quiet) {
    const skipped = result.skipped_count > 0 ? `, ${result.skipped_count} skipped` : '';
    const failed = result.failed_count > 0 ? `, ${result.failed_count} FAILED` : '';
    process.stderr.write(
      `stx-send: ${result.files} files (${formatBytes(result.bytes)}), ${result.directories} directories, ${result.links} links verified${skipped}${failed}; ` +
        `${formatBytes(result.bytes_sent)} sent in ${result.seconds.toFixed(1)} s\n`,
    );
  }
  return result.exit_code;
}

export async function runStream(common: CommonOptions, given: string, out: Output): Promise<number> {
  const line = out.tty ? new Line() : null;
  const name = common.sealing?.name(given) ?? given;
  // Up to one DATA chunk buffered, so that DATA frames are full ones, not the pipe's 64 KiB.
  const stdin = createReadStream('', { fd: 0, highWaterMark: MAX_DATA_CHUNK_BYTES, autoClose: false });
  try {
    const result = await sendStream({
      ...common,
      input: common.sealing === undefined ? stdin : sealedStream(stdin, common.sealing.recipients),
      name,
      onEvent: notices(out, line),
      onProgress: line === null ? undefined : (sent, acked) => line.draw(`${printable(name)}: ${formatBytes(sent)} sent, ${formatBytes(acked)} durable on the server`),
    });
    line?.clear();
    if (out.json) process.stdout.write(`${JSON.stringify({ ok: true, host: common.host, port: common.port, ...result })}\n`);
    else if (!out.quiet) process.stderr.write(`stx-send: ${printable(name)}: ${result.bytes} bytes (${formatBytes(result.bytes)}) from stdin verified, sha256 ${result.sha256}\n`);
    return 0;
  } catch (err) {
    line?.clear();
    throw err;
  }
}
