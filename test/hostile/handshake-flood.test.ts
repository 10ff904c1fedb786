// Hostile clients against a real stx-recv, part 6: a handshake flood (issue 14, item 7; spec §9.6).
// One source address (127.0.0.2) opens connections as fast as it can, each a whole CLIENT_HELLO
// and KEY_EXCHANGE, for at most 2.5 s, while stx-send uploads 32 MiB from 127.0.0.1. Each handshake
// costs the daemon an RSA decryption; with the default limits (20 handshakes per second and source,
// bursts of 40, 32 in progress) the daemon decrypts at most what the limits allow for the flooding
// source and refuses the rest with TOO_MANY_CONNECTIONS before any key is made, and the upload
// completes, verified. What the daemon decrypted comes from its own log (event handshake-limits,
// admission.ts). The upload's speed alone and under the flood is printed, never asserted.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_HANDSHAKE_RATE_PER_SOURCE, DEFAULT_MAX_HANDSHAKES_PER_SOURCE } from '../../src/recv/config.js';
import { makeFile, readJsonLine, sha256File } from '../support/procs.js';
import { installVectorServerKey } from '../support/vector-key.js';
import { flood } from './handshake-flooder.js';
import { logLines, startArena, type Arena, type LogLine } from './harness.js';

const MiB = 1024 * 1024;
const FLOOD_FROM = '127.0.0.2';
const FLOOD_WIDTH = 64;
const FLOOD_MAX_MS = 2500;
/** The defaults of src/recv/config.ts, which this daemon runs with (the test harness lifts them otherwise). */
const RATE_PER_SOURCE = DEFAULT_HANDSHAKE_RATE_PER_SOURCE;
const BURST_PER_SOURCE = 2 * RATE_PER_SOURCE;
/** The daemon's key is RSA 3072: a KEY_EXCHANGE carries 384 bytes. */
const RSA_BYTES = 384;

let a: Arena;
let stopped = false;
before(async () => {
  // The vector key is RSA 3072 like a generated one, and costs no generation time.
  const defaults = ['--handshake-rate-per-source', String(RATE_PER_SOURCE), '--max-handshakes-per-source', String(DEFAULT_MAX_HANDSHAKES_PER_SOURCE)];
  a = await startArena(['--handshake-timeout', '5s', ...defaults], { beforeStart: (out) => installVectorServerKey(path.dirname(out)) });
});
after(async () => {
  if (!stopped) await a.close('after the handshake flood');
});

interface Upload {
  readonly seconds: number;
  readonly mibPerSecond: number;
}

async function upload(file: string, sha: string, name: string): Promise<Upload> {
  const r = await a.send(file, ['--as', name, '--retries', '3', '--backoff', '100']);
  assert.equal(r.code, 0, r.stderr);
  const json = readJsonLine(r.stdout);
  assert.equal(json['sha256'], sha);
  assert.equal(await sha256File(path.join(a.out, name)), sha);
  const seconds = Number(json['seconds']);
  return { seconds, mibPerSecond: 32 / seconds };
}

describe(`a handshake flood from one address (${FLOOD_FROM}) while stx-send uploads from another`, () => {
  it('the daemon decrypts no more than the per-source limits allow, refuses the rest in plaintext, and the upload completes verified', { timeout: 60_000 }, async () => {
    const file = path.join(a.src, 'normal.bin');
    const sha = await makeFile(file, 32 * MiB, 14);
    const alone = await upload(file, sha, 'alone.bin');

    const marks = logLines(a.daemon).length;
    const f = flood(a.daemon.port, { from: FLOOD_FROM, width: FLOOD_WIDTH, maxMs: FLOOD_MAX_MS, rsaBytes: RSA_BYTES });
    let flooded: Upload;
    try {
      await new Promise((r) => setTimeout(r, 200));
      flooded = await upload(file, sha, 'flooded.bin');
    } finally {
      await f.stop();
    }
    const counts = f.counts;
    // The daemon logs a source's refusals once a second, and everything left at shutdown: stop it
    // (after the checks every suite ends with) and read the flooding source's totals.
    a.assertMemoryBounded('after the handshake flood');
    a.assertNothingOutside();
    stopped = true;
    await a.stop();
    const fromFlood = (): LogLine[] => logLines(a.daemon).slice(marks).filter((l) => l.event === 'handshake-limits' && l['source'] === FLOOD_FROM);
    const total = fromFlood().at(-1)?.['total'];
    const count = (key: string): number => (typeof total === 'object' && total !== null && key in total ? Number((total as Record<string, unknown>)[key]) : NaN);
    const decrypted = count('decrypted');
    const refused = count('refused');
    const started = count('started');
    const trackedMs = count('ms');
    // The bucket: a burst, then the rate for as long as the daemon has tracked the source (by its
    // own clock: under load it takes connections from its backlog well after they were made).
    const allowed = BURST_PER_SOURCE + Math.floor((RATE_PER_SOURCE * trackedMs) / 1000) + 1;

    console.log(
      `handshake flood: ${counts.attempts} attempts in ${counts.ms} ms (${Math.round((counts.attempts * 1000) / counts.ms)}/s) from ${FLOOD_FROM}: ` +
        `${counts.refused} refused (TOO_MANY_CONNECTIONS), ${counts.keyExchanges} KEY_EXCHANGEs sent, ${counts.other} other; ` +
        `daemon: ${started} admitted, ${decrypted} decrypted (allowed ${allowed} in ${trackedMs} ms), ${refused} refused, in ${fromFlood().length} log lines`,
    );
    console.log(
      `32 MiB upload: alone ${alone.seconds.toFixed(2)} s (${alone.mibPerSecond.toFixed(0)} MiB/s), under the flood ${flooded.seconds.toFixed(2)} s ` +
        `(${flooded.mibPerSecond.toFixed(0)} MiB/s): ${Math.round((100 * flooded.mibPerSecond) / alone.mibPerSecond)} % kept`,
    );

    assert.ok(fromFlood().length > 0, 'the daemon logged what the flooding source did');
    assert.ok(counts.refused > 0, 'the flood was refused in plaintext with TOO_MANY_CONNECTIONS');
    assert.ok(decrypted > 0 && refused > 0, `the daemon's totals for the flooding source: ${JSON.stringify(total)}`);
    assert.ok(started <= allowed && decrypted <= started, `the daemon admitted ${started} handshakes and decrypted ${decrypted} KEY_EXCHANGEs from one source in ${trackedMs} ms; the limits allow ${allowed}`);
    assert.ok(decrypted <= counts.keyExchanges, 'it decrypted only KEY_EXCHANGEs that were sent');
    assert.ok(refused >= counts.refused, 'every refusal the flooder saw is in the log');
    assert.ok(!logLines(a.daemon).some((l) => l.event === 'handshake-limits' && l['source'] === '127.0.0.1'), 'the normal client was never refused');
  });
});
