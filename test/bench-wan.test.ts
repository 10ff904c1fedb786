// The long-link emulator of `npm run bench -- --wan` (bench/lib/wan.ts): it makes its own two
// network namespaces, carries a real transfer between them, and removes them again. Needs root,
// ip, gcc and /dev/net/tun; skipped where they are missing.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';

import { raw } from '../bench/contenders/raw.js';
import { makeTestFile, sha256File } from '../bench/lib/testfile.js';
import { buildForwarder, openLink, parseLinkSpecs, wanUnavailable } from '../bench/lib/wan.js';

const GNU_TIME = '/usr/bin/time';
const RTT_MS = 10;
const FILE_BYTES = 2 * 1024 * 1024;

function ourNamespaces(): string[] {
  return existsSync('/run/netns') ? readdirSync('/run/netns').filter((n) => n.startsWith(`stxwan-${process.pid}-`)) : [];
}

const skip = wanUnavailable() ?? (existsSync(GNU_TIME) ? false : 'GNU time is not installed');

it('wan link: a raw transfer crosses it verified, the RTT is at least the configured one, the namespaces go away', { skip }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stx-wan-test-'));
  try {
    const forwarder = await buildForwarder(dir);
    const [spec] = parseLinkSpecs([`${RTT_MS}ms,100mbit`]);
    assert.ok(spec !== undefined);
    const link = await openLink(spec, forwarder);
    let closed = false;
    try {
      assert.equal(ourNamespaces().length, 2, 'a server and a client namespace');
      const rtt = await link.probeRtt();
      // A lower bound only: the delay line cannot deliver sooner, however loaded the machine.
      assert.ok(rtt.minMs >= RTT_MS, `RTT ${rtt.minMs} ms through a ${RTT_MS} ms link`);
      const file = await makeTestFile(path.join(dir, 'payload.bin'), FILE_BYTES);
      const workdir = path.join(dir, 'raw');
      await mkdir(workdir);
      const result = await raw.run(file, workdir, link.placement);
      if (result.kind === 'failed') assert.fail(result.reason);
      assert.equal(await sha256File(result.receivedPath), file.sha256);
      const counters = await link.close();
      closed = true;
      assert.ok(counters !== null, 'the forwarder reported its counters');
      assert.ok(counters.toServer.bytes > FILE_BYTES, `${counters.toServer.bytes} bytes went to the server`);
      assert.equal(counters.toServer.ringDrops + counters.toClient.ringDrops, 0);
    } finally {
      if (!closed) await link.close();
    }
    assert.deepEqual(ourNamespaces(), [], 'both namespaces removed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
