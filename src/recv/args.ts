// Durations on the command line: "90s", "30m", "24h", "7d", or a plain number of seconds.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const value = m?.[1];
  if (m === null || value === undefined) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 30m, 24h, 7d)`);
  const ms = Number(value) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`duration must be positive: ${text}`);
  return Math.round(ms);
}

/** Host and port from "[HOST:]PORT", "[::1]:PORT" or "HOST:PORT". */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d+)$/.exec(text.trim());
  const port = Number(m?.[3]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--listen wants [HOST:]PORT, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? m[2] ?? '0.0.0.0', port };
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Sizes on the command line: bytes, or with a K/M/G/T suffix (powers of 1024). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(text.trim());
  const value = m?.[1];
  if (m === null || value === undefined) throw new Error(`not a size: ${JSON.stringify(text)} (use e.g. 512M, 10G)`);
  const bytes = Math.floor(Number(value) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? 1));
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new Error(`size must be positive: ${text}`);
  return bytes;
}
