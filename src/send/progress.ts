// The progress line on a TTY: what the client is doing from the first moment (connecting,
// handshake, the server re-verifying a partial), then the bar with percent, bytes, rate, ETA and
// reconnects. One line, never wider than the terminal: a long name is shortened in the middle,
// then the bar, byte counts and reconnects make room, so that percent, rate and ETA always show.
import { printable } from './printable.js';
import type { Progress, Stage } from './upload.js';

/** What the line is written to: process.stderr, or anything with a width and a write. */
export interface Terminal {
  readonly columns?: number | undefined;
  write(text: string): unknown;
}

/** Width assumed when the terminal does not say (not a TTY, or columns 0). */
const DEFAULT_COLUMNS = 80;
/** At most this many redraws a second; a new stage is drawn at once. */
const REDRAW_MS = 100;
/** The rate is measured over this recent window, so a stall or a resume shows within seconds. */
const RATE_WINDOW_MS = 5000;
/** No rate (nor ETA) until samples span this long after a (re)start: one chunk says nothing. */
const MIN_RATE_SPAN_MS = 500;
/** Samples closer together than this replace each other (the sender reports every chunk). */
const SAMPLE_MS = 100;
/** A shortened name keeps at least this many cells before the bar, bytes and reconnects make way. */
const MIN_LABEL = 24;
const BAR_WIDTHS = [24, 12] as const;

export function formatBytes(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u] ?? 'PiB'}`;
}

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * Made on first use: the first Intl.Segmenter of a process loads ICU's break rules (~5 ms), which
 * a run without a progress bar (a script, --quiet, a tree) never needs.
 */
let graphemes: Intl.Segmenter | undefined;

/** East Asian wide and fullwidth characters and most emoji take two terminal cells. */
const WIDE = /^[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\u{1f300}-\u{1f64f}\u{1f900}-\u{1f9ff}\u{20000}-\u{3fffd}]/u;

/** What the terminal shows as one character (a letter with its combining marks, an emoji), with its width. */
function cells(text: string): { readonly text: string; readonly width: number }[] {
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  return Array.from(graphemes.segment(text), (g) => ({ text: g.segment, width: WIDE.test(g.segment) ? 2 : 1 }));
}

/** Terminal cells `text` takes. */
export function displayWidth(text: string): number {
  return cells(text).reduce((n, c) => n + c.width, 0);
}

/** `text` in at most `width` terminal cells, its middle replaced by "…" when it is wider. */
export function shortenMiddle(text: string, width: number): string {
  const all = cells(text);
  if (all.reduce((n, c) => n + c.width, 0) <= width) return text;
  if (width < 1) return '';
  let room = width - 1;
  let head = '';
  let tail = '';
  // Alternate ends, the head first, so both the start and the extension of a name survive.
  for (let i = 0, j = all.length - 1, fromHead = true; i <= j; fromHead = !fromHead) {
    const c = fromHead ? all[i] : all[j];
    if (c === undefined || c.width > room) break;
    room -= c.width;
    if (fromHead) {
      head += c.text;
      i++;
    } else {
      tail = c.text + tail;
      j--;
    }
  }
  return `${head}…${tail}`;
}

interface Sample {
  readonly t: number;
  readonly sent: number;
}

export class ProgressBar {
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lastStage: Stage | null = null;
  private drawn = false;
  /** (time, bytes sent) since the current run of sending began: a resume starts a new run. */
  private samples: Sample[] = [];
  private readonly label: string;

  /** `now` is injectable so the rate arithmetic can be checked without waiting. */
  constructor(
    private readonly out: Terminal,
    label: string,
    private readonly target: string,
    private readonly now: () => number = Date.now,
  ) {
    this.label = printable(label);
  }

  update(p: Progress): void {
    const t = this.now();
    const stageChanged = p.stage !== this.lastStage;
    if (p.stage === 'sending') this.sample(t, p.sent, this.lastStage !== 'sending');
    this.lastStage = p.stage;
    const last = p.stage === 'sending' && p.sent === p.size;
    if (!stageChanged && !last && t - this.lastDraw < REDRAW_MS) return;
    this.lastDraw = t;
    this.drawn = true;
    this.out.write(`\r${this.line(p)}\x1b[K`);
  }

  /** Bytes per second over the recent window of this run, or null while there is too little to say. */
  rate(): number | null {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (first === undefined || last === undefined || last.t - first.t < MIN_RATE_SPAN_MS) return null;
    return (last.sent - first.sent) / ((last.t - first.t) / 1000);
  }

  /** Ends the line (before other output that must stay, or at exit). */
  done(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }

  /** The line for `p`, fitted to the terminal. */
  line(p: Progress): string {
    const width = Math.max((this.out.columns ?? 0) > 0 ? (this.out.columns ?? DEFAULT_COLUMNS) : DEFAULT_COLUMNS, 2) - 1;
    const again = p.reconnects > 0 ? ` (reconnect ${p.reconnects})` : '';
    switch (p.stage) {
      case 'connecting':
        return this.withLabel(`: connecting to ${this.target}…${again}`, width);
      case 'handshake':
        return this.withLabel(`: handshake with ${this.target}…${again}`, width);
      case 'verifying': {
        // The server says how much it reads back (§9.7); 0 of 0 while it only waits.
        const total = p.verifyTotal !== undefined && p.verifyTotal > 0 ? p.verifyTotal : undefined;
        const done = p.verified === undefined || total === undefined ? 'the partial upload' : `${formatBytes(p.verified)} of ${formatBytes(total)}`;
        return this.withLabel(`: re-verifying ${done} on the server…`, width);
      }
      case 'sending':
        return this.bar(p, width);
      case 'finishing':
        return this.withLabel(`: all ${formatBytes(p.size)} sent; the server is checking the SHA-256…`, width);
    }
  }

  private withLabel(rest: string, width: number): string {
    const room = width - displayWidth(rest);
    if (room >= 1) return shortenMiddle(this.label, room) + rest;
    return shortenMiddle(rest.replace(/^: /, ''), width);
  }

  private bar(p: Progress, width: number): string {
    const pct = p.size === 0 ? 100 : Math.floor((p.sent / p.size) * 100);
    const rate = this.rate();
    const eta = rate !== null && rate > 0 ? (p.size - p.sent) / rate : Number.NaN;
    // Padded to their widest ("1023.9 MiB"), so the layout does not jump from one draw to the next.
    const essentials = `  ${String(pct).padStart(3)}%  ${(rate === null ? '--' : formatBytes(rate)).padStart(10)}/s  ETA ${formatEta(eta).padStart(5)}`;
    const bytes = `  ${formatBytes(p.sent).padStart(10)}/${formatBytes(p.size)}`;
    const again = p.reconnects > 0 ? `  reconnects ${p.reconnects}` : '';
    const drawBar = (w: number): string => {
      const fill = Math.round((Math.min(pct, 100) / 100) * w);
      return ` [${'#'.repeat(fill)}${'-'.repeat(w - fill)}]`;
    };
    // From the richest line down; the first whose tail leaves the name enough room wins.
    const tails = [
      ...BAR_WIDTHS.map((w) => drawBar(w) + essentials + bytes + again),
      essentials + bytes + again,
      essentials + bytes,
      essentials,
    ];
    const minLabel = Math.min(displayWidth(this.label), MIN_LABEL);
    const tail = tails.find((x) => x.length + minLabel <= width) ?? essentials;
    const room = width - tail.length;
    if (room >= 1) return shortenMiddle(this.label, room) + tail;
    return tail.trimStart().slice(0, width);
  }

  private sample(t: number, sent: number, restart: boolean): void {
    const last = this.samples.at(-1);
    // A new run (after connecting, a resume, a reconnect) is measured from where it starts.
    if (restart || last === undefined || sent < last.sent) {
      this.samples = [{ t, sent }];
      return;
    }
    const prev = this.samples.at(-2);
    if (prev !== undefined && t - prev.t < SAMPLE_MS) this.samples[this.samples.length - 1] = { t, sent };
    else this.samples.push({ t, sent });
    // Keep one sample at or before the window's start, so the window is always spanned.
    while (this.samples.length > 2 && (this.samples[1]?.t ?? t) <= t - RATE_WINDOW_MS) this.samples.shift();
  }
}
