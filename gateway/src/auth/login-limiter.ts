/**
 * Counts failed logins per key (device id, and source address) in fixed one-minute windows, so
 * a guessing device gets 4.29 with Max-Age until the window ends. Bounded: a window's counts are
 * dropped when it ends.
 */
export function createLoginLimiter(maxFailuresPerMinute: number, nowMs: () => number) {
  const windowMs = 60_000;
  let windowStart = 0;
  let failures = new Map<string, number>();

  const roll = (): number => {
    const now = nowMs();
    if (now - windowStart >= windowMs) {
      windowStart = now - (now % windowMs);
      failures = new Map();
    }
    return now;
  };

  return {
    /** Seconds to wait if any key is over its limit, else undefined. */
    retryAfterSec(keys: readonly string[]): number | undefined {
      const now = roll();
      const blocked = keys.some((key) => (failures.get(key) ?? 0) >= maxFailuresPerMinute);
      return blocked ? Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000)) : undefined;
    },
    recordFailure(keys: readonly string[]): void {
      roll();
      for (const key of keys) failures.set(key, (failures.get(key) ?? 0) + 1);
    },
  };
}

export type LoginLimiter = ReturnType<typeof createLoginLimiter>;
