import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { RateLimiterMemory, RateLimiterRes, StoreUnavailableError, type Limits } from '../../store/index.ts';
import { sourceKey } from './source-key.ts';

export interface LoginLimiterOptions {
  /**
   * Keys (device ids and sources) held at once; past it the least recently failed key is
   * forgotten (`onEvicted`). Device ids are at most 64 characters (DEVICE_ID_PATTERN), so the
   * count bounds the bytes too: about 300 bytes a key with the library's record and timer.
   */
  maxEntries?: number;
  /** A key was forgotten before its window ended because the table was full (metrics). */
  onEvicted?: () => void;
  /**
   * Where the counts live: the store's limits, so a fleet counts together (Redis). Without it,
   * this process's memory.
   */
  limits?: Limits;
}

export interface LoginLimiter {
  /**
   * Counts one failed login from `address` in the name of `deviceId`. Resolves to the seconds
   * until the caller may fail again (for Max-Age) when the source or the device id is past its
   * budget, else undefined.
   */
  recordFailure(deviceId: string, address: string): Promise<number | undefined>;
  /**
   * Whether `address` or `deviceId` has spent its budget of failures in this window, without
   * counting anything: seconds until it frees, else undefined. Asked before work that costs more
   * than a failure is worth (an assertion's signature check).
   */
  spent(deviceId: string, address: string): Promise<number | undefined>;
  /** Keys held now, never more than `maxEntries` (a gauge). */
  size(): number;
}

const WINDOW_MS = 60_000;
const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * Failed logins per source and per device id in fixed one-minute windows on rate-limiter-flexible
 * (its memory store here; its Redis store keeps the same calls when the shared store lands).
 *
 * The window is part of each key and comes from the injected clock, so Max-Age says exactly
 * when the budget frees and tests move time instead of sleeping. The library's own expiry
 * (set to the window's end) only frees the memory of keys nobody touches again.
 *
 * Bounded by count, least recently failed first. Every device id is counted, known or not:
 * keying only known ids would bound the table by the fleet, but a known id would then reach
 * 4.29 where an unknown one never does, telling an attacker which ids exist, which the
 * identical 4.01 for both is there to hide. A source past its budget is not counted against
 * device ids at all, so one address cannot fill the table with unique ids; many addresses can,
 * and then the bound holds. Forgetting a key only forgives failures: the right secret gets in
 * whatever the counts say, so eviction can never lock a device out, and an attacker's own
 * source, touched on each of its failures, stays the most recent entry rather than the oldest.
 */
export function createLoginLimiter(maxFailuresPerMinute: number, nowMs: () => number, options: LoginLimiterOptions = {}): LoginLimiter {
  if (!Number.isInteger(maxFailuresPerMinute) || maxFailuresPerMinute < 1) {
    throw new TypeError(`maxFailuresPerMinute must be a positive integer, got ${maxFailuresPerMinute}`);
  }
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 2) throw new TypeError(`maxEntries must be an integer >= 2, got ${maxEntries}`);
  const onEvicted = options.onEvicted ?? (() => undefined);
  const limiter: RateLimiterAbstract = options.limits?.limiter({ keyPrefix: 'login', points: maxFailuresPerMinute, durationSec: WINDOW_MS / 1000 })
    ?? new RateLimiterMemory({ points: maxFailuresPerMinute, duration: WINDOW_MS / 1000, keyPrefix: '' });
  // Only a limiter in this process's memory needs bounding here; Redis expires its own keys.
  const local = limiter instanceof RateLimiterMemory;
  // Key -> its window. Map order is least recently failed first, so the keys of past windows
  // lead and pruning stops at the first key of the current one.
  const held = new Map<string, number>();

  const forget = (key: string): void => {
    held.delete(key);
    void limiter.delete(key).catch(() => undefined);
  };
  const prune = (window: number): void => {
    for (const [key, keyWindow] of held) {
      if (keyWindow >= window) return;
      forget(key);
    }
  };
  const touch = (key: string, window: number): void => {
    if (!local) return;
    if (held.delete(key)) {
      held.set(key, window);
      return;
    }
    if (held.size >= maxEntries) {
      forget(held.keys().next().value!);
      onEvicted();
    }
    held.set(key, window);
  };
  /** Resolves true when `key` is past its budget in this window. */
  const fail = async (key: string, window: number, windowLeftSec: number): Promise<boolean> => {
    touch(key, window);
    try {
      await limiter.consume(key, 1, { customDuration: windowLeftSec });
      return false;
    } catch (err) {
      if (err instanceof RateLimiterRes) return true;
      // The shared store did not answer: fail closed, as logins do while it is down.
      throw new StoreUnavailableError('the login limiter\'s store did not answer', err);
    }
  };

  const windowNow = () => {
    const now = nowMs();
    const window = Math.floor(now / WINDOW_MS);
    return { window, windowLeftSec: Math.max(1, Math.ceil(((window + 1) * WINDOW_MS - now) / 1000)) };
  };
  const used = async (key: string): Promise<number> => {
    try {
      return (await limiter.get(key))?.consumedPoints ?? 0;
    } catch (err) {
      throw new StoreUnavailableError('the login limiter\'s store did not answer', err);
    }
  };

  return {
    async spent(deviceId, address) {
      const { window, windowLeftSec } = windowNow();
      const over = (await used(`peer:${sourceKey(address)}@${window}`)) >= maxFailuresPerMinute
        || (await used(`device:${deviceId}@${window}`)) >= maxFailuresPerMinute;
      return over ? windowLeftSec : undefined;
    },
    async recordFailure(deviceId, address) {
      const { window, windowLeftSec } = windowNow();
      prune(window);
      const blocked = (await fail(`peer:${sourceKey(address)}@${window}`, window, windowLeftSec))
        || (await fail(`device:${deviceId}@${window}`, window, windowLeftSec));
      return blocked ? windowLeftSec : undefined;
    },
    size() {
      prune(Math.floor(nowMs() / WINDOW_MS));
      return held.size;
    },
  };
}
