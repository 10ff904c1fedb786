// The get command (spec/PROTOCOL.md §9.9): GET → GET_OK with the file's size, mtime, mode (and
// SHA-256 where known) → DATA from the offset, by the same sending half the client uploads with
// (transfer/sender.ts), paced by TCP alone → GET_END with the SHA-256 of the whole file as read.
// Only published regular files are served; a file changed in place while it is read is IO_ERROR,
// never a GET_END for bytes of two versions.
import { CommandError, LocalError, ResourceError, UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { PublishedFile } from '../../storage/backend.js';
import { Sender } from '../../transfer/sender.js';
import { ChunkReader, type DataSource, type SourceIdentity } from '../../transfer/source.js';
import { storedName } from '../namespace.js';
import type { Command, CommandLink, Tagged } from './command.js';
import { oneWay } from './one-way.js';

export type GetState =
  | { readonly kind: 'Locating' }
  | { readonly kind: 'Serving'; readonly stop: AbortController; readonly done: Promise<void> };

type Link = CommandLink<GetState>;

/** A published file as the sending half's source: its chunks, and whether it was changed in place. */
class StoredSource implements DataSource {
  readonly seekable = true;
  readonly identity: SourceIdentity;
  readonly #reader: ChunkReader;

  constructor(
    readonly label: string,
    private readonly file: PublishedFile,
  ) {
    this.identity = { size: file.size, mtime: file.mtime, mode: file.mode };
    this.#reader = new ChunkReader(file.readAt, file.size);
  }

  read(offset: number): Promise<Buffer> {
    return this.#reader.read(offset);
  }

  async checkUnchanged(): Promise<void> {
    if ((await this.file.currentStamp()) !== this.file.stamp) throw changed(this.label);
  }

  async close(): Promise<void> {
    await this.#reader.release();
    await this.file.close();
  }
}

function changed(name: string): ResourceError {
  return new ResourceError('IO_ERROR', `"${name}" changed on the server while it was being sent; fetch it again`);
}

export const getCommand: Command<GetState> = {
  owns(state: Tagged): state is GetState {
    return state.kind === 'Locating' || state.kind === 'Serving';
  },

  start(frame: Frame, link: Link): Promise<void> | undefined {
    if (frame.type !== 'GET') return undefined;
    link.enter({ kind: 'Locating' });
    return locate(frame, link);
  },

  ...oneWay<GetState>('the download'),

  close(state: GetState): Promise<void> {
    if (state.kind === 'Locating') return Promise.resolve(); // the step lets go of the file itself
    state.stop.abort();
    return state.done;
  },
};

/** GET → GET_OK (§9.9 steps 1–2), then the DATA runs on by itself while the connection reads on. */
async function locate(frame: Extract<Frame, { type: 'GET' }>, link: Link): Promise<void> {
  if (!link.downloads) throw new CommandError('NOT_ALLOWED', 'this server does not serve downloads (stx-recv --allow-download)');
  const stored = storedName(link.namespace, frame.name);
  const shown = stored.join('/');
  const file = await link.store.openFile(stored);
  if (file === null) throw new CommandError('NOT_FOUND', `no file "${frame.name}" on the server`);
  if (link.closed()) {
    await file.close();
    return;
  }
  // The client's prefix is of another version: start over (§9.9 step 2).
  const sameVersion = frame.size === undefined || (frame.size === file.size && frame.mtime === file.mtime);
  const offset = sameVersion ? frame.offset : 0;
  if (offset > file.size) {
    await file.close();
    throw new UploadError('BAD_OFFSET', `GET from offset ${offset}, beyond the size ${file.size}`);
  }
  const source = new StoredSource(shown, file);
  const stop = new AbortController();
  let finished: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finished = resolve));
  const sha256 = file.sha256 ?? link.digests.get(shown, file.stamp);
  const ok = { type: 'GET_OK', offset, size: file.size, mtime: file.mtime, mode: file.mode } as const;
  link.send(sha256 === undefined ? ok : { ...ok, sha256 }, { kind: 'Serving', stop, done });
  serve(source, file.stamp, offset, stop.signal, link)
    .catch((err: unknown) => link.fail(err instanceof LocalError ? changed(shown) : err))
    .finally(() => {
      void source.close().finally(finished);
    });
}

/** DATA from `offset` to the end, then GET_END with the whole file's SHA-256 (§9.9 steps 3–4). */
async function serve(source: StoredSource, stamp: string, offset: number, stop: AbortSignal, link: Link): Promise<void> {
  const started = Date.now();
  const sender = new Sender(source);
  sender.begin(offset);
  // The hash covers [0, offset) too: the sending half reads it back before the first DATA.
  await sender.send(link.output, () => {
    if (stop.aborted) throw new ResourceError('INTERNAL', 'download stopped');
  });
  await source.checkUnchanged();
  if (link.closed()) return;
  const sha256 = sender.digest();
  link.digests.learn(source.label, stamp, sha256);
  const size = source.identity.size;
  link.send({ type: 'GET_END', size, sha256 }, { kind: 'Ready' });
  const seconds = (Date.now() - started) / 1000;
  link.log.info(
    { event: 'download', client: link.principal(), name: source.label, size, bytes: size - offset, resumed_from: offset, seconds, sha256: sha256.toString('hex') },
    'download done',
  );
}
