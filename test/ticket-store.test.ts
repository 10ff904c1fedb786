// The client's ticket store on disk (src/keystore/tickets.ts, spec §7.5): what a crashed process or
// a server never contacted again leaves behind does not stay forever.
import assert from 'node:assert/strict';
import { mkdir, readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TicketStore } from '../src/keystore/index.js';
import { tempDir } from './support/procs.js';

const SERVER = 'SHA256:O9UlaE9oA7VAMXz64RECuVfVF5ErVjQYhCFP9uP8AHc';
const OTHER = 'SHA256:AAAAaE9oA7VAMXz64RECuVfVF5ErVjQYhCFP9uP8AHc';

describe('ticket store housekeeping (§7.5)', () => {
  it('deletes claimed and half-written files older than an hour and expired tickets of other servers; keeps the rest', async () => {
    const tmp = await tempDir();
    try {
      const dir = path.join(tmp.dir, 'tickets');
      await mkdir(dir, { mode: 0o700 });
      const now = Date.now();
      const old = new Date(now - 2 * 3600_000);
      // A process that died after claiming, and one that died while writing, two hours ago.
      for (const name of ['.claimed.aaaaaaaaaaaa', '.tmp.bbbbbbbbbbbb']) {
        await writeFile(path.join(dir, name), '{}', { mode: 0o600 });
        await utimes(path.join(dir, name), old, old);
      }
      // One being written right now by another process: not ours to delete.
      await writeFile(path.join(dir, '.tmp.cccccccccccc'), '{}', { mode: 0o600 });
      // Another server's tickets: one expired, one still good.
      const other = OTHER.slice('SHA256:'.length).replace(/\+/g, '-').replace(/\//g, '_');
      await writeFile(path.join(dir, `${other}.anonymous.${now - 1000}.dddddddddddd`), '{}', { mode: 0o600 });
      await writeFile(path.join(dir, `${other}.anonymous.${now + 3600_000}.eeeeeeeeeeee`), '{}', { mode: 0o600 });

      const store = new TicketStore(dir);
      store.save(SERVER, null, Buffer.alloc(80, 1), Buffer.alloc(32, 2), 3600, now);
      const left = (await readdir(dir)).sort();
      assert.deepEqual(
        left.filter((n) => !n.startsWith(SERVER.slice('SHA256:'.length))),
        ['.tmp.cccccccccccc', `${other}.anonymous.${now + 3600_000}.eeeeeeeeeeee`],
      );
      const t = store.take(SERVER, null, now);
      assert.ok(t !== null, 'the saved ticket is there');
      assert.deepEqual(t.ticket, Buffer.alloc(80, 1));
    } finally {
      await tmp.cleanup();
    }
  });
});
