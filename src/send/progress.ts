// The progress line on a TTY: bytes, rate, ETA, reconnects. Redrawn at most 10 times a second.
const MiB = 1024 * 1024;

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[u] ?? 'TiB'}`;
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

export class Progress {
  private lastDraw = 0;
  private readonly started = Date.now();
  private startBytes = -1;

  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly label: string,
  ) {}

  update(sent: number, total: number, reconnects: number, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.drawn = true;
    if (this.startBytes < 0) this.startBytes = sent;
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const rate = (sent - this.startBytes) / seconds;
    const pct = total === 0 ? 100 : Math.floor((sent / total) * 100);
    const width = 24;
    const fill = Math.round((pct / 100) * width);
    const bar = '#'.repeat(fill) + '-'.repeat(width - fill);
    const eta = rate > 0 ? (total - sent) / rate : Number.NaN;
    const extra = reconnects > 0 ? `  reconnects ${reconnects}` : '';
    const line = `${this.label} [${bar}] ${String(pct).padStart(3)}%  ${formatBytes(sent)}/${formatBytes(total)}  ${(rate / MiB).toFixed(1)} MiB/s  ETA ${formatEta(eta)}${extra}`;
    this.out.write(`\r${line.slice(0, Math.max(20, (this.out.columns || 100) - 1))}\x1b[K`);
  }

  done(): void {
    if (this.drawn) this.out.write('\n');
  }
}
