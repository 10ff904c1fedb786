// The SHA-256 of each published file, as the policy verified it at publish (spec/PROTOCOL.md
// §9.10), kept beside the file so that a listing, a GET_OK and an identical re-send (§9.1) know it
// after a restart without reading the file.
//
// Where: one small record per published name in the reserved directory,
// `.stx/sums/<h[0..2]>/<h>` with h = SHA-256 of the name, holding the name, the file's version
// stamp (paths.ts stampOf: device, inode, size, mtime and ctime in ns) and its SHA-256. Why not an
// extended attribute on the file: Node has no xattr API (it would take a native addon), not every
// filesystem has user xattrs, and a copy of the tree (cp, tar, rsync without -X) would carry a
// hash along to a file it no longer proves anything about. Why keyed by name: publishing a name
// again overwrites its record, so there is at most one record per published name (bounded on disk,
// nothing held in memory), and a replaced file's record is replaced with it.
//
// Never stale: a record is used only while the file's stamp equals the one recorded, taken from
// the published inode itself after its rename (a rename changes the ctime). A file changed in
// place by other means has another mtime or ctime, a replaced one another inode: its record is
// then ignored. Records are written without fsync: after a power cut one may be missing or torn,
// which only makes the hash unknown (a torn record does not parse, and a whole old one names an
// old stamp).
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errnoOf } from '../../transfer/io-error.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
/** A record is a few hundred bytes; anything larger is not one. */
const MAX_RECORD_BYTES = 8192;

export class SumRecords {
  readonly #dir: string;

  /** `dir` is `.stx/sums` under the output directory (created by init, mode 0700). */
  constructor(dir: string) {
    this.#dir = dir;
  }

  #pathOf(name: string): { shard: string; file: string } {
    const h = createHash('sha256').update(name, 'utf8').digest('hex');
    const shard = path.join(this.#dir, h.slice(0, 2));
    return { shard, file: path.join(shard, h) };
  }

  /** Records `sha256` for the version `stamp` of published `name`. Best effort: a failure leaves the hash unknown. */
  async write(name: string, stamp: string, sha256: Buffer): Promise<void> {
    const { shard, file } = this.#pathOf(name);
    const text = JSON.stringify({ v: 1, name, stamp, sha256: sha256.toString('hex') });
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
    try {
      await writeFile(file, text, { flag: flags, mode: 0o600 });
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
      await mkdir(shard, { mode: 0o700 }).catch((e: unknown) => {
        if (errnoOf(e) !== 'EEXIST') throw e;
      });
      await writeFile(file, text, { flag: flags, mode: 0o600 });
    }
  }

  /** The SHA-256 recorded for `name` if it was recorded for this very `stamp`, else undefined. */
  async read(name: string, stamp: string): Promise<Buffer | undefined> {
    if (stamp === '') return undefined;
    let text: string;
    try {
      const bytes = await readFile(this.#pathOf(name).file, { flag: constants.O_RDONLY | constants.O_NOFOLLOW });
      if (bytes.length > MAX_RECORD_BYTES) return undefined;
      text = bytes.toString('utf8');
    } catch {
      return undefined; // none (or unreadable): unknown
    }
    try {
      const v: unknown = JSON.parse(text);
      if (typeof v !== 'object' || v === null) return undefined;
      const r = v as Record<string, unknown>;
      if (r.v !== 1 || r.name !== name || r.stamp !== stamp || typeof r.sha256 !== 'string' || !SHA256_HEX.test(r.sha256)) return undefined;
      return Buffer.from(r.sha256, 'hex');
    } catch {
      return undefined; // torn by a crash
    }
  }

  /** Forgets `name`'s record (published again without a hash, or replaced by a link). */
  async remove(name: string): Promise<void> {
    await unlink(this.#pathOf(name).file).catch(() => undefined);
  }
}
