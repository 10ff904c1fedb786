// The long-link emulator of `npm run bench -- --wan` (bench/lib/wan.ts): it makes its own two
// network namespaces, carries a real transfer between them, and removes them again. Needs root,
// ip, gcc and /dev/net/tun; skipped where they are missing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { it } from 'node:test';

import { raw } from '../bench/contenders/raw.js';
import { runStx } from '../bench/contenders/stx.js';
import { makeTestFile, sha256File } from '../bench/lib/testfile.js';
import { buildForwarder, LINK_MTU, openLink, parseLinkSpecs, wanUnavailable } from '../bench/lib/wan.js';
import { MAX_DATA_CHUNK_BYTES } from '../src/proto/limits.js';

const GNU_TIME = '/usr/bin/time';
const RTT_MS = 10;
const FILE_BYTES = 2 * 1024 * 1024;
/** The tcp_wmem / tcp_rmem maximum the cut test sets in its namespaces. */
const SOCKET_BUFFER_BYTES = 131_072;
/** IPv4 (20) and TCP with timestamps (32): what each packet carries besides payload. */
const PACKET_HEADER_BYTES = 52;
/** Record header, tag and DATA frame header around one chunk (spec §8, §4), rounded up. */
const RECORD_FRAMING_BYTES = 64;
/** Client-to-server bytes of a handshake and the OPEN or RANGE that follows, rounded up. */
const HANDSHAKE_UP_BYTES = 4096;

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
      const watching = link.watch();
      const result = await raw.run(file, workdir, link.placement);
      const busy = await watching.stop();
      if (result.kind === 'failed') assert.fail(result.reason);
      assert.equal(await sha256File(result.receivedPath), file.sha256);
      // The sampler saw the file cross (with its headers) at no more than the link's rate.
      assert.ok(busy !== null && busy.bytes > FILE_BYTES, `link busy: ${JSON.stringify(busy)}`);
      assert.ok(busy.middleBytesPerSecond > 0 && busy.middleBytesPerSecond <= (1.1 * spec.rateBitsPerSecond) / 8, JSON.stringify(busy));
      const counters = await link.close();
      closed = true;
      assert.ok(counters !== null, 'the forwarder reported its counters');
      assert.ok(counters.toServer.bytes > FILE_BYTES, `${counters.toServer.bytes} bytes went to the server`);
      // Wire bytes are counted per MTU-sized segment, also when the forwarder moves TSO super-packets
      // (mode gso): every segment carries its own headers, so what crossed the link less them is the
      // payload delivered, the file at least (one header per super-packet would leave ~3 % less).
      const up = counters.toServer;
      const delivered = up.bytes - up.dropBytes - (up.packets - up.queueDrops - up.ringDrops - up.writeDrops) * PACKET_HEADER_BYTES;
      assert.ok(delivered >= FILE_BYTES, `${link.mode}: ${delivered} payload bytes delivered; ${JSON.stringify(up)}`);
      assert.ok(up.packets >= up.frames && up.packets >= FILE_BYTES / (LINK_MTU - PACKET_HEADER_BYTES), `${link.mode}: ${JSON.stringify(up)}`);
      assert.equal(counters.toServer.ringDrops + counters.toClient.ringDrops, 0);
    } finally {
      if (!closed) await link.close();
    }
    assert.deepEqual(ourNamespaces(), [], 'both namespaces removed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('wan link: stx-send --streams 4 with every connection cut twice (0.6 s apart) finishes verified, each cut costing at most what was in flight', { skip }, async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stx-wan-cut-'));
  try {
    const forwarder = await buildForwarder(dir);
    const [spec] = parseLinkSpecs(['20ms,1gbit']);
    assert.ok(spec !== undefined);
    // A link whose queue does not overflow: at 200 Mbit/s four streams through its 0.5 MB drop-tail
    // queue lost 3,628 packets, and TCP's retransmissions made 1.2–1.3x the file, which says nothing
    // about resuming; at 1 Gbit/s the machine is the bottleneck (0 queue drops, 1.05–1.07x).
    const file = await makeTestFile(path.join(dir, 'payload.bin'), 32 * 1024 * 1024);
    const link = await openLink(spec, forwarder);
    let closed = false;
    try {
      // What a cut loses is what was in flight in the four streams' socket buffers. At Linux's
      // default limits (up to 4–6 MiB a socket) two cuts cost 1.18–1.35x this 32 MiB file (4 runs),
      // where the bench's 1 GiB case loses that once per 10 s (1.07x). With 128 KiB buffers in the
      // two namespaces the test made, a cut costs about as small a share of 32 MiB (1.05–1.14x).
      for (const ns of ourNamespaces()) {
        const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', `net.ipv4.tcp_wmem=4096 65536 ${SOCKET_BUFFER_BYTES}`, `net.ipv4.tcp_rmem=4096 65536 ${SOCKET_BUFFER_BYTES}`], { encoding: 'utf8', timeout: 10_000 });
        assert.equal(r.status, 0, r.stderr);
      }
      let cuts = 0;
      let socketsCut = 0;
      const whileSending = (): (() => void) => {
        // The case scaled down: 1 GiB cut every 10 s is about ten cuts; here two, 0.6 s
        // apart (on a quiet machine the 32 MiB take about a second: cuts 1.5 s apart came after it).
        const timer = setInterval(() => {
          if (cuts >= 2) return;
          cuts++;
          void link.cut().then((n) => (socketsCut += n));
        }, 600);
        return () => clearInterval(timer);
      };
      const workdir = path.join(dir, 'stx');
      await mkdir(workdir);
      const result = await runStx(file, workdir, link.placement, undefined, { sendArgs: ['--streams', '4', '--backoff', '50', '--retries', '30'], whileSending });
      if (result.kind === 'failed') assert.fail(result.reason);
      assert.equal(await sha256File(result.receivedPath), file.sha256);
      const counters = await link.close();
      closed = true;
      assert.ok(counters !== null);
      // At least one cut hit live connections (the upload takes longer than a second on this link).
      assert.ok(cuts >= 1 && socketsCut >= 1, `${cuts} cuts, ${socketsCut} connections cut`);
      // What crossed the link beyond the file: packet headers, handshakes and record framing, and
      // what the cuts made the client send again. A cut loses what was in flight on that
      // connection: the record the server had not yet received whole (at most one DATA record)
      // and the two socket buffers (at most SOCKET_BUFFER_BYTES each, set above). The issue's
      // "< 1.2x the file" is for 1 GiB cut every 10 s (`npm run bench -- --wan`), about 10 cuts
      // of 4 connections per GiB; this test makes 8 in 32 MiB, 30 times as dense, so here the
      // per-cut cost is what is checked (it ran 0.5-0.7 MB; 1.2x was met and missed by turns).
      const up = counters.toServer;
      const headers = up.packets * PACKET_HEADER_BYTES;
      const connections = 4 + socketsCut;
      const framing = Math.ceil(file.size / MAX_DATA_CHUNK_BYTES) * RECORD_FRAMING_BYTES + connections * HANDSHAKE_UP_BYTES;
      const resent = up.bytes - headers - framing - file.size;
      const perCut = resent / Math.max(1, socketsCut);
      const inFlight = MAX_DATA_CHUNK_BYTES + 2 * SOCKET_BUFFER_BYTES;
      const ratio = up.bytes / file.size;
      process.stderr.write(
        `# wire bytes to the server ${up.bytes} = ${ratio.toFixed(3)} x the file; re-sent ${resent} over ${socketsCut} cuts = ${Math.round(perCut)} a cut (bound ${inFlight}); ${JSON.stringify(up)}\n`,
      );
      assert.ok(perCut <= inFlight, `a cut cost ${Math.round(perCut)} bytes re-sent, more than one record and two socket buffers (${inFlight}); wire ${ratio.toFixed(3)} x the file`);
      // And the cuts cost something at all: the bytes did go through the link again.
      assert.ok(up.bytes > file.size, `${up.bytes} bytes to the server for a ${file.size}-byte file`);
    } finally {
      if (!closed) await link.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
