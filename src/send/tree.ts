// The tree job of stx-send (spec/PROTOCOL.md §9.1, §9.8): every file, directory and link under the
// given paths, one after another on one connection (session.ts), as the walk (walk.ts) finds
// them; a bounded queue lets the walk run a little ahead. A lost connection is retried (retry.ts)
// and the entry in flight resumes (a file from the server's offset, §9.2); entries already done
// are never sent again. A file the server refuses, or that cannot be read, fails alone; the run
// goes on with the next one and reports every failure at the end.
import { ResourceError, StxError, type ErrorCode } from '../proto/errors.js';
import { MAX_MAKES_AHEAD } from '../proto/limits.js';
import { Sender } from '../transfer/sender.js';
import { LocalFileError, ReadSlots, type DataSource } from '../transfer/source.js';
import { make, type MakeFrame } from './commands/make.js';
import { fileBody, upload, type DetachedEnd, type Outgoing } from './commands/upload.js';
import type { Connection } from './connection.js';
import { offeringDigest } from './checksum.js';
import { plainFiles, type FileOpener } from './file-opener.js';
import { Retry, type RetryOptions } from './retry.js';
import { Session, type SessionOptions } from './session.js';
import { walkBatches, type Entry } from './walk.js';
import { fitsPut, PutPipeline, sha256Of, SmallFiles, Unreadable, type DetachedItem } from './put-pipeline.js';

/** Batches of entries (walk.ts WALK_BATCH each) the walk may find ahead of the one being sent. */
const WALK_AHEAD = 1;
/**
 * Directories, links and larger files held back until the small files before them are answered
 * (§9.8: a directory's MKDIR after its contents): sent together, so that the server's PUT batches
 * are not cut at every directory or larger file (§9.11). At this many they go at once.
 */
const MAX_HELD_MAKES = 4096;
/** Skipped and failed entries listed by name in the result; beyond it they are only counted. */
export const MAX_LISTED = 1000;

export interface TreeOptions extends SessionOptions, RetryOptions {
  readonly paths: readonly string[];
  readonly to?: string | undefined;
  readonly links: boolean;
  /** --checksum: skip files the server holds identical (§9.1, checksum.ts). */
  readonly checksum?: boolean | undefined;
  readonly onProgress?: ((p: TreeProgress) => void) | undefined;
  /** How files are read: as they are (default), or sealed and stored as NAME.age (seal.ts). */
  readonly files?: FileOpener | undefined;
}

export interface TreeProgress {
  /** Files, directories and links done so far. */
  readonly done: number;
  /** DATA bytes sent in this run. */
  readonly sent: number;
  /** The entry being sent, its size and how far it is. */
  readonly current: string;
  readonly currentSize: number;
  readonly currentSent: number;
  readonly reconnects: number;
}

export interface Skipped {
  readonly path: string;
  readonly reason: string;
}

export interface Failed {
  readonly path: string;
  readonly name: string;
  readonly code: ErrorCode;
  readonly message: string;
}

export interface TreeResult {
  readonly files: number;
  readonly directories: number;
  readonly links: number;
  /** Sizes of the files done. */
  readonly bytes: number;
  /** DATA bytes sent in this run (less than `bytes` where files resumed). */
  readonly bytes_sent: number;
  readonly skipped: readonly Skipped[];
  readonly skipped_count: number;
  readonly failed: readonly Failed[];
  readonly failed_count: number;
  readonly seconds: number;
  readonly bytes_per_second: number;
  readonly reconnects: number;
  readonly server_fingerprint: string;
  /** 0, or the highest exit code (§10) among the failed entries. */
  readonly exit_code: number;
  /** The error that stopped the run before its end (not a single entry's), if any. */
  readonly aborted: StxError | null;
}

/**
 * Whether `err` fails only the entry it happened on: the server refused that name (§9.3, §9.5)
 * or its data (INTEGRITY_FAILED, BAD_OFFSET after a change), or the local file could not be read
 * or changed. Running out of space, trust, authentication, protocol errors stop the run.
 */
function failsEntryOnly(err: unknown): err is StxError {
  if (!(err instanceof StxError) || err.transient) return false;
  if (err.code === 'LOCAL_FILE') return true;
  return err.family === 'upload' && err.code !== 'NO_SPACE';
}

/** A directory's MKDIR or a link's SYMLINK (§9.8). */
function makeFrame(entry: Extract<Entry, { kind: 'dir' | 'link' }>): MakeFrame {
  return entry.kind === 'dir' ? { type: 'MKDIR', name: entry.remote, mtime: entry.mtime, mode: entry.mode } : { type: 'SYMLINK', name: entry.remote, target: entry.target, mtime: entry.mtime };
}

/** Resolves at the next turn of the event loop, after I/O. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Up to `ahead` items of `source` fetched before they are asked for. */
async function* readAhead<T>(source: AsyncGenerator<T>, ahead: number): AsyncGenerator<T> {
  const queue: Promise<IteratorResult<T>>[] = [];
  try {
    for (;;) {
      while (queue.length < ahead) queue.push(source.next());
      const next = await queue.shift();
      if (next === undefined || next.done === true) return;
      yield next.value;
    }
  } finally {
    await Promise.allSettled(queue);
    await source.return(undefined);
  }
}

export async function sendTree(opts: TreeOptions): Promise<TreeResult> {
  const started = Date.now();
  const session = new Session(opts);
  const retry = new Retry(opts);
  const counts = { files: 0, directories: 0, links: 0, bytes: 0, sent: 0, skipped: 0, failed: 0 };
  const skipped: Skipped[] = [];
  const failed: Failed[] = [];
  let exit = 0;
  let aborted: StxError | null = null;
  const skip = (path: string, reason: string): void => {
    counts.skipped++;
    if (skipped.length < MAX_LISTED) skipped.push({ path, reason });
    opts.onEvent?.(`skipped ${path}: ${reason}`);
  };
  const fail = (entry: Entry, err: StxError): void => {
    counts.failed++;
    exit = Math.max(exit, err.exitCode);
    if (failed.length < MAX_LISTED) failed.push({ path: entry.local, name: entry.remote, code: err.code, message: err.message });
    opts.onEvent?.(`${entry.local}: ${err.code}: ${err.message}`);
  };
  // One file is read at a time: all share one pair of read buffers.
  const slots = new ReadSlots();
  const done = (): number => counts.files + counts.directories + counts.links;
  const report = (current: string, currentSize: number, currentSent: number): void =>
    opts.onProgress?.({ done: done(), sent: counts.sent, current, currentSize, currentSent, reconnects: session.reconnects });

  const files = opts.files ?? plainFiles;
  type Made = Extract<Entry, { kind: 'dir' | 'link' }>;
  type FileEntry = Extract<Entry, { kind: 'file' }>;
  const count = (entry: Exclude<Entry, { kind: 'skip' | 'regular' }>): void => {
    if (entry.kind === 'file') {
      counts.files++;
      counts.bytes += entry.size;
    } else if (entry.kind === 'dir') counts.directories++;
    else counts.links++;
  };
  // Small files go pipelined (§9.11); the answers come back while later files go out.
  const puts = new PutPipeline<FileEntry>(session, retry, {
    done: (item) => count(item.entry),
    failed: (item, err) => {
      // Running out of space and the like stop the run (failsEntryOnly), as after an OPEN.
      const refusal: Error = err;
      if (!failsEntryOnly(refusal)) throw refusal;
      fail(item.entry, refusal);
    },
    sent: (bytes) => {
      counts.sent += bytes;
    },
  });
  // A PUT carries a file's bytes as they are and no offered SHA-256: sealed files (read through
  // `files`) and --checksum offers (an OPEN with sha256, §9.1) take the OPEN path.
  const pipelined = files === plainFiles && opts.checksum !== true;
  const small = new SmallFiles();
  // Directories, links, and (while small files are pipelined) the larger files: a larger file
  // goes by OPEN after every PUT before it is answered (§9.11), so sent between small files each
  // one waited for a whole batch's sync. Held in walk order (a directory after its files).
  const held: (Made | FileEntry)[] = [];
  /** One entry on its own (a larger file, a directory, a link), once the PUTs before it are answered. */
  const sendAlone = async (entry: Exclude<Entry, { kind: 'skip' | 'regular' }>, source: DataSource | null): Promise<void> => {
    await puts.drain();
    const outcome = await sendEntry(entry, source, session, retry, counts, report, opts.checksum === true);
    if (outcome instanceof StxError) fail(entry, outcome);
    else if (outcome === 'identical') skip(entry.local, 'identical');
    else {
      if (source !== null) await files.done(source);
      count(entry);
    }
  };
  /**
   * Whether MKDIR and SYMLINK go pipelined (§9.8, revision 1.11); false for the rest of the run
   * once a server of revision 1.10 or older refused one with UNEXPECTED_FRAME.
   */
  let pipelineMakes = true;
  /**
   * Directories and links in a row, each MKDIR or SYMLINK sent before the MADE of those before it
   * (at most MAX_MAKES_AHEAD unanswered): one round trip for them all, not one each. A lost
   * connection sends those not answered again (they are idempotent); a refusal (ERROR) is the
   * oldest unanswered one's, which fails alone.
   */
  const sendMakes = async (entries: readonly Made[]): Promise<void> => {
    await puts.drain();
    let next = 0;
    while (next < entries.length) {
      const entry = entries[next];
      if (entry === undefined) break;
      if (!pipelineMakes) {
        await sendAlone(entry, null);
        next++;
        continue;
      }
      const before = next;
      let unanswered = 0;
      try {
        const conn = await session.ready();
        const answers: Promise<void>[] = [];
        let sent = next;
        while (next < entries.length) {
          while (sent < entries.length && answers.length < MAX_MAKES_AHEAD) {
            const e = entries[sent++];
            if (e === undefined) break;
            answers.push(make(conn, makeFrame(e)));
            // Rejected with the connection's failure, which the oldest one's await reports.
            answers.at(-1)?.catch(() => undefined);
          }
          unanswered = answers.length;
          await answers.shift();
          const done = entries[next++];
          if (done !== undefined) count(done);
          retry.reset();
        }
      } catch (err) {
        session.drop(err);
        // A server of revision 1.10 or older reads a MKDIR while it makes the one before: from
        // now on each waits for the MADE before it.
        if (unanswered > 1 && err instanceof StxError && err.code === 'UNEXPECTED_FRAME') {
          opts.onEvent?.('the server takes no MKDIR or SYMLINK before the MADE of the one before (revision 1.10 or older): they go one after the other');
          pipelineMakes = false;
          continue;
        }
        if (failsEntryOnly(err)) {
          fail(entries[next] ?? entry, err);
          next++;
          continue;
        }
        await retry.after(err, next > before, session.handshakes);
      }
    }
  };
  const sendHeld = async (): Promise<void> => {
    const entries = held.splice(0);
    for (let i = 0; i < entries.length; ) {
      const entry = entries[i];
      if (entry === undefined) break;
      if (entry.kind === 'file') {
        await sendDetached(entry);
        i++;
        continue;
      }
      const makes: Made[] = [];
      for (let e = entries[i]; e !== undefined && e.kind !== 'file'; e = entries[++i]) makes.push(e);
      await sendMakes(makes);
    }
  };
  /** The file opened for sending, or null once it is listed as skipped (it could not be read). */
  const openOrSkip = async (entry: FileEntry): Promise<DataSource | null> => {
    try {
      return await files.open(entry.local, entry.remote, slots);
    } catch (err) {
      skip(entry.local, err instanceof Error ? err.message : String(err));
      return null;
    }
  };
  /**
   * A larger file by OPEN, ended with END_DETACHED (§9.1 "Detached END"): the next file goes at
   * once, without waiting for this one's publish, and its answer comes in the order of the PUTs.
   * The file stays open until then (at most DETACHED_WINDOW_FILES), to be sent again after a
   * lost connection.
   */
  const sendDetached = async (entry: FileEntry): Promise<void> => {
    await puts.detachRoom();
    const source = await openOrSkip(entry);
    if (source === null) return;
    let adopted = false;
    try {
      const sender = new Sender(source);
      const ended: { detached?: { end: DetachedEnd; conn: Connection } } = {};
      const outcome = await sendEntry(entry, source, session, retry, counts, report, false, sender, (end, conn) => (ended.detached = { end, conn }));
      if (outcome instanceof StxError) fail(entry, outcome);
      else if (outcome === 'identical') skip(entry.local, 'identical');
      else if (ended.detached === undefined) count(entry);
      else {
        const { end, conn } = ended.detached;
        const opened = source;
        const body = fileBody(sender);
        const item: DetachedItem<FileEntry> = {
          entry,
          name: entry.remote,
          size: end.size,
          sha256: end.sha256,
          resend: async (on) => {
            try {
              await upload(on, { name: entry.remote, body: { ...body, open: { ...body.open, sha256: end.sha256 } } });
              return { type: 'PUT_DONE', size: end.size, sha256: end.sha256 };
            } catch (err) {
              if (failsEntryOnly(err)) return err;
              throw err;
            }
          },
          close: async (confirmed) => {
            if (confirmed) await files.done(opened);
            await opened.close();
          },
        };
        adopted = true;
        await puts.adopt(item, end.answer, conn);
      }
    } finally {
      if (!adopted) await source.close();
    }
  };
  /** A file by OPEN (§9.1): opened only now, so that held files cost no descriptor. */
  const sendFile = async (entry: FileEntry): Promise<void> => {
    const source = await openOrSkip(entry);
    if (source === null) return;
    try {
      await sendAlone(entry, source);
    } finally {
      await source.close();
    }
  };

  /**
   * Takes one walked entry: what to wait for before the next, if anything (usually nothing: a
   * small file goes at once). A function of its own, not the body of the walk's loop in sendTree:
   * that loop, run once a file, made V8 optimize the whole of sendTree (an async function, the
   * largest compile of a run, --trace-opt), and deoptimize it when the walk ended.
   */
  const take = (walked: Entry): Promise<void> | undefined => {
    if (walked.kind === 'skip') {
      skip(walked.local, walked.reason);
      return undefined;
    }
    if (walked.kind === 'dir' || walked.kind === 'link') {
      held.push(walked);
      return held.length >= MAX_HELD_MAKES ? sendHeld() : undefined;
    }
    const remote = files.name(walked.remote);
    if (pipelined && (walked.kind === 'regular' || fitsPut(walked.size))) {
      let read: ReturnType<SmallFiles['read']>;
      try {
        read = small.read(walked.local, walked.kind === 'file' ? walked.size : null);
      } catch (err) {
        if (err instanceof Unreadable) skip(walked.local, err.message);
        else if (err instanceof StxError) fail({ ...walked, remote }, err);
        else throw err;
        return undefined;
      }
      if ('large' in read) {
        // Above MAX_PUT_BYTES: held, and sent by OPEN as a larger file found by the walk is.
        held.push({ kind: 'file', local: walked.local, remote, ...read.large });
        return held.length >= MAX_HELD_MAKES ? sendHeld() : undefined;
      }
      const entry: FileEntry = { kind: 'file', local: walked.local, remote, size: read.data.length, mtime: read.mtime, mode: read.mode };
      // Usually sent at once: no turn of the event loop per file.
      const waiting = puts.put({ entry, name: remote, data: read.data, sha256: sha256Of(read.data), mtime: read.mtime, mode: read.mode, slab: read.slab });
      if (waiting !== undefined) return waiting.then(() => report(remote, entry.size, entry.size));
      report(remote, entry.size, entry.size);
      return undefined;
    }
    if (walked.kind === 'regular') throw new ResourceError('INTERNAL', `${walked.local} was not stat'ed`);
    const entry = { ...walked, remote };
    if (pipelined) {
      held.push(entry);
      return held.length >= MAX_HELD_MAKES ? sendHeld() : undefined;
    }
    return sendFile(entry);
  };

  // The handshake's round trips go while the first files are read (§6).
  session.dialAhead();
  try {
    // Pipelined, a regular file is stat'ed once, when it is opened to be read (walk.ts `regular`).
    const walkOptions = { to: opts.to, links: opts.links, statFiles: !pipelined };
    for await (const batch of readAhead(walkBatches(opts.paths, walkOptions), WALK_AHEAD)) {
      // A turn of the event loop per batch: the PUTs written meanwhile leave (the connection
      // holds a turn's writes back) and answers are read. The walk reads directories
      // synchronously, so without it they could wait for a whole window of files.
      await nextTurn();
      for (const walked of batch) {
        const waiting = take(walked);
        if (waiting !== undefined) await waiting;
      }
    }
    await puts.drain();
    await sendHeld();
    // The detached uploads of the last larger files (§9.1): answered before the run ends.
    await puts.drain();
  } catch (err) {
    aborted = err instanceof StxError ? err : new ResourceError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
  } finally {
    session.close();
  }
  const seconds = (Date.now() - started) / 1000;
  return {
    files: counts.files,
    directories: counts.directories,
    links: counts.links,
    bytes: counts.bytes,
    bytes_sent: counts.sent,
    skipped,
    skipped_count: counts.skipped,
    failed,
    failed_count: counts.failed,
    seconds,
    bytes_per_second: Math.round(counts.sent / Math.max(seconds, 1e-6)),
    reconnects: session.reconnects,
    server_fingerprint: session.fingerprint,
    exit_code: aborted === null ? exit : Math.max(exit, aborted.exitCode),
    aborted,
  };
}

/**
 * One entry, over as many connections as it takes: undefined when done, 'identical' when the
 * server held the file already (--checksum), the error when the entry alone failed; throws what
 * stops the run.
 */
async function sendEntry(
  entry: Exclude<Entry, { kind: 'skip' | 'regular' }>,
  source: DataSource | null,
  session: Session,
  retry: Retry,
  counts: { sent: number },
  report: (current: string, size: number, sent: number) => void,
  checksum: boolean,
  given?: Sender,
  detach?: (end: DetachedEnd, conn: Connection) => void,
): Promise<StxError | 'identical' | undefined> {
  const sender = given ?? (source === null ? null : new Sender(source));
  let body: Outgoing | null = null;
  const held = { identical: false };
  let durable = -1;
  for (;;) {
    const before = durable;
    try {
      const conn = await session.ready();
      switch (entry.kind) {
        case 'dir':
        case 'link':
          await make(conn, makeFrame(entry));
          break;
        case 'file': {
          if (sender === null || source === null) throw new LocalFileError(`${entry.local} was not opened`);
          // Hashed once for all attempts, only with --checksum.
          body ??= checksum ? await offeringDigest(fileBody(sender), source) : fileBody(sender);
          let last = 0;
          await upload(
            conn,
            { name: entry.remote, body, detach: detach !== undefined },
            {
              detached: (end) => detach?.(end, conn),
              identical: () => (held.identical = true),
              opened: (offset) => {
                last = offset;
                durable = Math.max(durable, offset);
              },
              acked: (offset) => (durable = Math.max(durable, offset)),
              sent: (sent) => {
                counts.sent += sent - last;
                last = sent;
                report(entry.remote, entry.size, sent);
              },
            },
          );
          break;
        }
      }
      retry.reset();
      return held.identical ? 'identical' : undefined;
    } catch (err) {
      session.drop(err);
      if (failsEntryOnly(err)) return err;
      await retry.after(err, durable > before, session.handshakes);
    }
  }
}
