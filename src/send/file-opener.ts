// How the upload jobs (upload.ts, tree.ts) turn a local file into what they send: as it is
// (plainFiles), or sealed (seal.ts). One small interface, so that a job does not know which.
import { FileSource, type DataSource, type ReadSlots } from '../transfer/source.js';

export interface FileOpener {
  /** The remote name a file sent as `remote` is stored under (a sealed file gets `.age`). */
  name(remote: string): string;
  /** The source for `local`, to be stored as `stored` (name()'s result); `slots` as FileSource.open's. */
  open(local: string, stored: string, slots?: ReadSlots): Promise<DataSource>;
  /** The server confirmed `source` whole (DONE, §9.1 step 7): what was kept to resume it can go. */
  done(source: DataSource): Promise<void>;
}

export const plainFiles: FileOpener = {
  name: (remote) => remote,
  open: (local, _stored, slots) => FileSource.open(local, slots),
  done: () => Promise.resolve(),
};
