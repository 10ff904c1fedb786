// The list command (spec/PROTOCOL.md §9.10): LIST → LIST_ENTRY for each published file and
// LIST_DIR for each directory under the prefix, in listing order, at most MAX_LIST_ENTRIES of them
// → LIST_END. Entries go out one per frame as the walk finds them (recv/listing.ts), and the walk
// waits whenever the client has not read what was sent: neither the tree nor the answer is ever
// held whole. The SHA-256 is given only where the daemon knows it for this version of the file:
// recorded at its publish (storage/backend.ts DirEntry.sha256), or learnt by serving it whole
// (recv/digests.ts); a listing never reads a file.
import { CommandError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { MAX_LIST_ENTRIES } from '../config.js';
import { walkFiles } from '../listing.js';
import { clientName, storedName, storedPrefix } from '../namespace.js';
import type { Command, CommandLink, Tagged } from './command.js';
import { oneWay } from './one-way.js';

export type ListState = { readonly kind: 'Listing'; readonly stop: AbortController; readonly done: Promise<void> };

type Link = CommandLink<ListState>;

export const listCommand: Command<ListState> = {
  owns(state: Tagged): state is ListState {
    return state.kind === 'Listing';
  },

  start(frame: Frame, link: Link): Promise<void> | undefined {
    if (frame.type !== 'LIST') return undefined;
    const stop = new AbortController();
    let finished: () => void = () => undefined;
    const done = new Promise<void>((resolve) => (finished = resolve));
    link.enter({ kind: 'Listing', stop, done });
    // The walk runs on while the connection reads on (PING, ERROR); the listing is not a step.
    list(frame, stop.signal, link)
      .catch((err: unknown) => link.fail(err))
      .finally(finished);
    return undefined;
  },

  ...oneWay<ListState>('the listing'),

  close(state: ListState): Promise<void> {
    state.stop.abort();
    return state.done;
  },
};

async function list(frame: Extract<Frame, { type: 'LIST' }>, signal: AbortSignal, link: Link): Promise<void> {
  if (!link.downloads) throw new CommandError('NOT_ALLOWED', 'this server does not serve listings (stx-recv --allow-download)');
  const principal = link.principal();
  const space = link.namespace;
  const prefix = storedPrefix(space, frame.prefix);
  const after = frame.after === undefined ? undefined : storedName(space, frame.after);
  let count = 0;
  let last: string | undefined;
  let next: string | undefined;
  for await (const { path, entry } of walkFiles(link.store, prefix, after, () => signal.aborted || link.closed())) {
    const name = clientName(space, path);
    if (name === null) continue;
    if (count === MAX_LIST_ENTRIES) {
      next = last; // more follow: the client asks again from here
      break;
    }
    if (entry.kind === 'directory') link.send({ type: 'LIST_DIR', name, mtime: entry.mtime, mode: entry.mode });
    else {
      const sha256 = entry.sha256 ?? link.digests.get(path.join('/'), entry.stamp);
      const listed = { type: 'LIST_ENTRY', name, size: entry.size, mtime: entry.mtime, mode: entry.mode } as const;
      link.send(sha256 === undefined ? listed : { ...listed, sha256 });
    }
    count++;
    last = name;
    // TCP is the flow control: past MAX_SERVE_OUTPUT_BYTES unread, wait for the client to read.
    await link.output.drain();
  }
  if (link.closed() || signal.aborted) return;
  link.send(next === undefined ? { type: 'LIST_END', count } : { type: 'LIST_END', count, next }, { kind: 'Ready' });
  link.log.info({ event: 'list', client: principal, prefix: frame.prefix, entries: count, more: next !== undefined }, 'listing sent');
}
