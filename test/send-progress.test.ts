// The progress line (issue 10, rough edge 6), on our ProgressBar with a terminal object of a
// given width and a clock the test moves: every stage shows, the rate after a resume counts only
// bytes sent since the resume, the rate follows the recent window, and percent, rate and ETA fit
// in the width with a long name shortened in the middle.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { displayWidth, formatBytes, ProgressBar, shortenMiddle } from '../src/send/progress.js';
import type { Progress, Stage } from '../src/send/upload.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** A terminal of `columns` that keeps what was drawn, and a clock the test sets. */
function setup(columns: number | undefined, label = 'backup.tar'): { bar: ProgressBar; lines: string[]; clock: { t: number } } {
  const lines: string[] = [];
  const clock = { t: 1_000_000 };
  const term = {
    columns,
    write(text: string): boolean {
      for (const piece of text.split('\r')) {
        const l = piece.replaceAll('\x1b[K', '');
        if (l !== '') lines.push(l);
      }
      return true;
    },
  };
  return { bar: new ProgressBar(term, label, 'recv.example:5656', () => clock.t), lines, clock };
}

function p(stage: Stage, sent: number, size: number, extra: Partial<Progress> = {}): Progress {
  return { stage, sent, size, durable: 0, reconnects: 0, ...extra };
}

describe('ProgressBar', () => {
  it('shows connecting, handshake and re-verifying before any byte is sent', () => {
    const { bar, lines, clock } = setup(100);
    bar.update(p('connecting', 0, 80 * GiB));
    clock.t += 10;
    bar.update(p('handshake', 0, 80 * GiB));
    clock.t += 10;
    bar.update(p('verifying', 0, 80 * GiB, { verified: 41.2 * GiB, verifyTotal: 80 * GiB }));
    clock.t += 10;
    bar.update(p('verifying', 0, 80 * GiB));
    assert.deepEqual(lines, [
      'backup.tar: connecting to recv.example:5656…',
      'backup.tar: handshake with recv.example:5656…',
      'backup.tar: re-verifying 41.2 GiB of 80.0 GiB on the server…',
    ]);
    bar.update(p('verifying', 0, 80 * GiB, { verified: 42 * GiB, verifyTotal: 80 * GiB }));
    assert.equal(lines.length, 3, 'the same stage within 100 ms is not redrawn');
    clock.t += 200;
    bar.update(p('verifying', 0, 80 * GiB, { verified: 42 * GiB, verifyTotal: 80 * GiB }));
    assert.equal(lines.at(-1), 'backup.tar: re-verifying 42.0 GiB of 80.0 GiB on the server…');
  });

  it('after a resume at 40 GiB, the first rate and ETA count only what was sent since', () => {
    const { bar, lines, clock } = setup(120);
    const size = 80 * GiB;
    bar.update(p('connecting', 0, size));
    // Ten seconds of connecting and verifying move no bytes; they must not dilute the rate.
    clock.t += 10_000;
    bar.update(p('sending', 40 * GiB, size));
    assert.match(lines.at(-1) ?? '', /--\/s {2}ETA --:--/, 'no rate from a single sample');
    for (let i = 1; i <= 20; i++) {
      clock.t += 100;
      bar.update(p('sending', 40 * GiB + i * 10 * MiB, size));
    }
    // 200 MiB in 2 s: 100 MiB/s; (80 GiB − 40 GiB − 200 MiB) / 100 MiB/s = 407.6 s = 06:48.
    assert.equal(bar.rate(), 100 * MiB);
    assert.match(lines.at(-1) ?? '', /100\.0 MiB\/s {2}ETA 06:48/);
  });

  it('a reconnect restarts the measurement from where the new connection resumes', () => {
    const { bar, clock } = setup(120);
    const size = 10 * GiB;
    bar.update(p('sending', 0, size));
    for (let i = 1; i <= 30; i++) {
      clock.t += 100;
      bar.update(p('sending', i * 20 * MiB, size));
    }
    assert.equal(bar.rate(), 200 * MiB);
    bar.update(p('connecting', 600 * MiB, size, { reconnects: 1 }));
    clock.t += 5000;
    bar.update(p('sending', 512 * MiB, size, { reconnects: 1 }));
    assert.equal(bar.rate(), null, 'nothing measured yet on the new connection');
    for (let i = 1; i <= 10; i++) {
      clock.t += 100;
      bar.update(p('sending', 512 * MiB + i * MiB, size, { reconnects: 1 }));
    }
    assert.equal(bar.rate(), 10 * MiB);
  });

  it('the rate follows the last few seconds, not the average since the start', () => {
    const { bar, clock } = setup(120);
    const size = 100 * GiB;
    let sent = 0;
    bar.update(p('sending', sent, size));
    for (let i = 0; i < 200; i++) {
      clock.t += 100;
      sent += 10 * MiB; // 100 MiB/s for 20 s
      bar.update(p('sending', sent, size));
    }
    for (let i = 0; i < 80; i++) {
      clock.t += 100;
      sent += MiB; // then 10 MiB/s for 8 s
      bar.update(p('sending', sent, size));
    }
    const rate = bar.rate();
    assert.ok(rate !== null && rate >= 10 * MiB && rate < 11 * MiB, `rate ${String(rate)}`);
  });

  it('human units', () => {
    assert.equal(formatBytes(0), '0 B');
    assert.equal(formatBytes(1023), '1023 B');
    assert.equal(formatBytes(1536), '1.50 KiB');
    assert.equal(formatBytes(41.2 * GiB), '41.2 GiB');
    assert.equal(formatBytes(3 * 1024 * GiB), '3.00 TiB');
  });

  const long = `${'very-long-directory-name/'.repeat(8)}holiday-photos-2026-final-version.tar.zst`;
  for (const columns of [undefined, 40, 60, 80, 132, 300]) {
    it(`percent, rate and ETA fit in ${columns ?? 'unknown (80)'} columns; a long name is shortened in the middle`, () => {
      const width = columns ?? 80;
      const { bar, lines, clock } = setup(columns, long);
      const size = 1234 * GiB;
      bar.update(p('connecting', 0, size, { reconnects: 12 }));
      bar.update(p('handshake', 0, size, { reconnects: 12 }));
      bar.update(p('verifying', 0, size, { verified: 1000 * GiB, verifyTotal: 1100 * GiB, reconnects: 12 }));
      for (let i = 0; i <= 20; i++) {
        clock.t += 150;
        bar.update(p('sending', 1000 * GiB + i * 100 * MiB, size, { reconnects: 12 }));
      }
      bar.update(p('finishing', size, size, { reconnects: 12 }));
      assert.ok(lines.length >= 20);
      for (const l of lines) assert.ok(displayWidth(l) <= width - 1, `${displayWidth(l)} cells in ${width} columns: ${l}`);
      const sending = lines.filter((l) => / ETA /.test(l));
      assert.ok(sending.length >= 20);
      for (const l of sending) assert.match(l, /\d+%\s+(--|\d+\.\d+ [KMGT]iB)\/s {2}ETA +(--:--|\d+:\d\d(:\d\d)?)/, l);
      const last = sending.at(-1) ?? '';
      assert.match(last, /81%\s+666\.7 MiB\/s {2}ETA 05:56/, last);
      if (width >= 60) assert.match(last, /^very-long.*….*\.tar\.zst /, 'both ends of the name survive');
    });
  }

  it('shortenMiddle counts wide characters as two cells and never cuts a combining mark off its letter', () => {
    assert.equal(shortenMiddle('abcdefghij', 5), 'ab…ij');
    assert.equal(shortenMiddle('abc', 5), 'abc');
    const wide = '写真'.repeat(10);
    const s = shortenMiddle(wide, 9);
    assert.ok(displayWidth(s) <= 9, s);
    const nfd = 'e\u0301'.repeat(20);
    const t = shortenMiddle(nfd, 7);
    assert.equal(displayWidth(t), 7);
    assert.equal(t.normalize('NFC'), `${'\u00e9'.repeat(3)}…${'\u00e9'.repeat(3)}`);
  });

  it('a name with control characters is drawn with them escaped', () => {
    const { bar, lines } = setup(120, 'evil\x1b]0;title\x07.bin');
    bar.update(p('connecting', 0, 10));
    assert.equal(lines[0], 'evil\\x1b]0;title\\x07.bin: connecting to recv.example:5656…');
  });
});
