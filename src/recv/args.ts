// Command-line values of stx-recv: listen addresses and sizes (durations: src/proto/duration.ts).

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
