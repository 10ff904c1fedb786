// stx-send's pipelined MKDIR (spec §9.8, revision 1.11), against servers built from our own
// ServerHandshake (test/hostile/evil-server.ts): one that answers only once MAX_MAKES_AHEAD are
// waiting (each MADE then lets one more come, never more than that), and one of revision 1.10,
// which refuses a MKDIR read while it makes the one before with UNEXPECTED_FRAME.
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ERRORS } from '../src/proto/errors.js';
import { MAX_MAKES_AHEAD } from '../src/proto/limits.js';
import { startEvilServer, type Script } from './hostile/evil-server.js';
import type { RawClient } from './hostile/raw-client.js';
import { readJsonLine, runSend, tempDir } from './support/procs.js';

/** Kill stx-send after this long and fail. */
const BOUND_MS = 60_000;
/** How long a server waits to see whether the client sends more before a MADE. */
const QUIET_MS = 50;
/** Directories under the sent one: more than MAX_MAKES_AHEAD, so that the bound is reached. */
const DIRS = MAX_MAKES_AHEAD + 6;

/**
 * The next MKDIR or SYMLINK's name, PINGs answered; null when the connection ends (or
 * `quietMs` pass without one, if given).
 */
async function nextMake(p: RawClient, quietMs?: number): Promise<string | null> {
  for (let i = 0; i < 1000; i++) {
    const got = await p.next(quietMs ?? 10_000);
    if (got.kind !== 'frame') return null;
    const f = got.frame;
    if (f.type === 'PING') {
      await p.send({ type: 'PONG', seq: f.seq });
      continue;
    }
    if (f.type === 'MKDIR' || f.type === 'SYMLINK') return f.name;
    throw new Error(`${f.type} from the client`);
  }
  throw new Error('no end');
}

describe('stx-send: pipelined MKDIR (§9.8, revision 1.11)', () => {
  let key: KeyObject;
  let src: { dir: string; cleanup: () => Promise<void> };
  let home: { dir: string; cleanup: () => Promise<void> };
  let top: string;
  before(async () => {
    key = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    src = await tempDir('stx-makes-src-');
    home = await tempDir('stx-makes-home-');
    top = path.join(src.dir, 'top');
    for (let i = 0; i < DIRS; i++) await mkdir(path.join(top, `d${String(i).padStart(3, '0')}`), { recursive: true });
  });
  after(async () => {
    await src.cleanup();
    await home.cleanup();
  });

  /** stx-send of the tree against a scripted server: it must succeed, every directory made, after `reconnects` reconnects. */
  const sendTo = async (script: Script, reconnects: number): Promise<void> => {
    const evil = await startEvilServer(key, script);
    try {
      const r = await runSend(['127.0.0.1', String(evil.port), top, '--fingerprint', evil.fingerprint, '--json', '--retries', '2', '--backoff', '20'], { STX_HOME: home.dir }, BOUND_MS);
      assert.equal(r.code, 0, r.stderr);
      const out = readJsonLine(r.stdout);
      assert.equal(out['directories'], DIRS + 1);
      assert.equal(out['reconnects'], reconnects);
    } finally {
      await evil.close();
    }
  };

  it(`sends up to MAX_MAKES_AHEAD (${MAX_MAKES_AHEAD}) MKDIRs before the first MADE, never more, each MADE answering the oldest`, { timeout: BOUND_MS + 10_000 }, async () => {
    const total = DIRS + 1;
    const seen: { before: number; beyond: string | null; names: string[] } = { before: 0, beyond: null, names: [] };
    const script: Script = async (p, hs) => {
      if (!(await hs())) return;
      const waiting: string[] = [];
      let received = 0;
      const take = (name: string | null): void => {
        if (name === null) return;
        received++;
        waiting.push(name);
        if (waiting.length > MAX_MAKES_AHEAD) seen.beyond ??= name;
      };
      // Nothing answered until MAX_MAKES_AHEAD wait; then a moment for one too many to come.
      while (waiting.length < MAX_MAKES_AHEAD) {
        const name = await nextMake(p);
        if (name === null) return;
        take(name);
      }
      seen.before = waiting.length;
      take(await nextMake(p, QUIET_MS));
      // Then each MADE lets the next one come.
      while (waiting.length > 0) {
        const answered = waiting.shift();
        if (answered !== undefined) seen.names.push(answered);
        await p.send({ type: 'MADE' });
        if (received < total) take(await nextMake(p));
      }
    };
    await sendTo(script, 0);
    assert.equal(seen.before, MAX_MAKES_AHEAD, 'MKDIRs sent before the first MADE');
    assert.equal(seen.beyond, null, 'never more than MAX_MAKES_AHEAD unanswered');
    assert.equal(seen.names.length, total);
    assert.equal(seen.names.at(-1), 'top', "the directory's own MKDIR after its contents");
  });

  it('against a server of revision 1.10 (UNEXPECTED_FRAME for a MKDIR behind MKDIR): one at a time for the rest of the run, every directory made', { timeout: BOUND_MS + 10_000 }, async () => {
    const made: string[] = [];
    let connections = 0;
    let pipelinedAfter: string | null = null;
    const script: Script = async (p, hs) => {
      if (!(await hs())) return;
      const first = connections++ === 0;
      for (let i = 0; i < 10 * DIRS; i++) {
        const name = await nextMake(p);
        if (name === null) return;
        // A 1.10 server reads on while it makes the directory: what comes meanwhile is refused.
        const behind = await nextMake(p, QUIET_MS);
        if (behind !== null) {
          if (!first) pipelinedAfter ??= behind;
          await p.send({ type: 'ERROR', code: ERRORS.UNEXPECTED_FRAME.wire, message: 'MKDIR received in state Making' });
          await p.waitClosed(5000);
          return;
        }
        made.push(name);
        await p.send({ type: 'MADE' });
      }
    };
    await sendTo(script, 1);
    assert.equal(pipelinedAfter, null, 'nothing pipelined after the refusal');
    assert.equal(new Set(made).size, DIRS + 1, 'every directory made');
    assert.equal(made.at(-1), 'top');
  });
});
