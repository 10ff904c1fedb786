// The SHA-256 of published files the daemon has read whole (a download, §9.9), so that a listing
// and a later GET_OK can give it without reading the file again (§9.10). A value holds for one
// version of a file only, named by the backend's stamp (storage/backend.ts DirEntry.stamp): a
// file changed since is simply not known. Bounded; the least recently learnt go first.
import { MAX_KNOWN_DIGESTS } from './config.js';

export class KnownDigests {
  readonly #byName = new Map<string, { readonly stamp: string; readonly sha256: Buffer }>();

  constructor(private readonly max = MAX_KNOWN_DIGESTS) {}

  get size(): number {
    return this.#byName.size;
  }

  /** The SHA-256 of stored `name` if it was learnt for this very `stamp`. */
  get(name: string, stamp: string): Buffer | undefined {
    const known = this.#byName.get(name);
    return known !== undefined && stamp !== '' && known.stamp === stamp ? known.sha256 : undefined;
  }

  learn(name: string, stamp: string, sha256: Buffer): void {
    if (stamp === '') return;
    this.#byName.delete(name);
    this.#byName.set(name, { stamp, sha256: Buffer.from(sha256) });
    if (this.#byName.size > this.max) {
      const oldest = this.#byName.keys().next();
      if (oldest.done !== true) this.#byName.delete(oldest.value);
    }
  }
}
