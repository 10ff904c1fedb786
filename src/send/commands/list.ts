// The list command on one Ready connection (spec/PROTOCOL.md §9.10): LIST → LIST_ENTRY and
// LIST_DIR… → LIST_END. Entries are handed on as they arrive; the connection is Ready again
// afterwards.
import { ProtocolError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { Connection } from '../connection.js';
import { deferred } from './deferred.js';
import { taking } from './frames.js';

/** A published file of a listing (LIST_ENTRY). */
export type ListedFile = Omit<Extract<Frame, { type: 'LIST_ENTRY' }>, 'type'> & { readonly kind: 'file' };
/** A directory of a listing (LIST_DIR). */
export type ListedDir = Omit<Extract<Frame, { type: 'LIST_DIR' }>, 'type'> & { readonly kind: 'directory' };
export type Listed = ListedFile | ListedDir;

export interface ListSlice {
  readonly count: number;
  /** Present when more entries follow: the next LIST's `after` (§9.10). */
  readonly next?: string | undefined;
}

/** One LIST on `conn` (Ready): `onEntry` hears every entry; resolves with LIST_END. */
export async function listOn(conn: Connection, prefix: string, after: string | undefined, onEntry: (entry: Listed) => void): Promise<ListSlice> {
  const end = deferred<ListSlice>();
  const off = conn.onFailure((err) => end.reject(err));
  try {
    let received = 0;
    conn.begin(after === undefined ? { type: 'LIST', prefix } : { type: 'LIST', prefix, after }, taking(['LIST_ENTRY', 'LIST_DIR', 'LIST_END'], 'a listing', (f) => {
      switch (f.type) {
        case 'LIST_ENTRY': {
          conn.progressed();
          received++;
          const file = { kind: 'file', name: f.name, size: f.size, mtime: f.mtime, mode: f.mode } as const;
          onEntry(f.sha256 === undefined ? file : { ...file, sha256: f.sha256 });
          return;
        }
        case 'LIST_DIR':
          conn.progressed();
          received++;
          onEntry({ kind: 'directory', name: f.name, mtime: f.mtime, mode: f.mode });
          return;
        case 'LIST_END':
          conn.progressed();
          if (f.count !== received) throw new ProtocolError('MALFORMED_FRAME', `LIST_END counts ${f.count} entries, ${received} arrived`);
          end.resolve({ count: f.count, next: f.next });
          return;
      }
    }));
    return await end.promise;
  } finally {
    off();
  }
}
