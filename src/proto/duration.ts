// Durations on both command lines: "90s", "30m", "24h", "7d", "500ms", or a plain number of
// seconds. Pure, so both CLIs share it here.
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * The longest a Node timer waits (2^31 − 1 ms, ~24.8 days): a longer delay wraps to 1 ms, so a
 * duration that arms a timer (a timeout) is refused above it rather than firing at once.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** `maxMs`: MAX_TIMER_MS for a duration that arms a timer; compared-only durations need none. */
export function parseDuration(text: string, maxMs = Number.MAX_SAFE_INTEGER): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  const value = m?.[1];
  if (m === null || value === undefined) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 30m, 24h, 7d)`);
  const ms = Number(value) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`duration must be positive: ${text}`);
  if (ms > maxMs) {
    const limit = maxMs === MAX_TIMER_MS ? 'longer than a timer can wait (at most 24d 20h)' : `over the limit of ${maxMs} ms`;
    throw new Error(`${text} is ${limit}`);
  }
  return Math.round(ms);
}
