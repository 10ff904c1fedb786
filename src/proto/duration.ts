// Durations on both command lines: "90s", "30m", "24h", "7d", "500ms", or a plain number of
// seconds. Pure, so both CLIs share it here.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const value = m?.[1];
  if (m === null || value === undefined) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 30m, 24h, 7d)`);
  const ms = Number(value) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`duration must be positive: ${text}`);
  return Math.round(ms);
}
