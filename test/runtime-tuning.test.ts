// The runtime tricks (src/runtime) are switched by the CLIs' mains, as STX_TUNING says: parsed
// strictly, refused with a usage error when unknown, and a transfer with all of them off still
// delivers the identical file.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseTuning } from '../src/runtime/tuning.js';
import { makeFile, readJsonLine, runSend, sha256File, startDaemon, tempDir } from './support/procs.js';

describe('STX_TUNING', () => {
  it('on (or unset) is every trick, off is none, a list keeps those named, anything else is refused', () => {
    assert.deepEqual([...parseTuning(undefined)].sort(), ['aligned-memory', 'code-cache', 'keep-freed-memory', 'young-gc']);
    assert.deepEqual([...parseTuning('on')].sort(), ['aligned-memory', 'code-cache', 'keep-freed-memory', 'young-gc']);
    assert.deepEqual([...parseTuning('off')], []);
    assert.deepEqual([...parseTuning('young-gc, aligned-memory')].sort(), ['aligned-memory', 'young-gc']);
    assert.throws(() => parseTuning('fast'), /unknown feature "fast"/);
  });

  it('a transfer with every trick off on both sides delivers the identical file; an unknown value is a usage error (exit 2)', async () => {
    const tmp = await tempDir();
    try {
      const out = path.join(tmp.dir, 'out');
      const off = { STX_TUNING: 'off' };
      process.env['STX_TUNING'] = 'off'; // startDaemon passes its own environment on
      const d = await startDaemon(out, path.join(tmp.dir, 'k.pem')).finally(() => delete process.env['STX_TUNING']);
      try {
        const src = path.join(tmp.dir, 'f.bin');
        const sha = await makeFile(src, 24 * 1024 * 1024 + 5, 90);
        const home = path.join(tmp.dir, 'home');
        const r = await runSend(['127.0.0.1', String(d.port), src, '--json', '--quiet'], { ...off, STX_HOME: home });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(readJsonLine(r.stdout)['sha256'], sha);
        assert.equal(await sha256File(path.join(out, 'f.bin')), sha);
        const bad = await runSend(['127.0.0.1', String(d.port), src, '--quiet'], { STX_TUNING: 'fast', STX_HOME: home });
        assert.equal(bad.code, 2, bad.stderr);
        assert.match(bad.stderr, /STX_TUNING: unknown feature "fast"/);
      } finally {
        await d.stop();
      }
    } finally {
      await tmp.cleanup();
    }
  });
});
