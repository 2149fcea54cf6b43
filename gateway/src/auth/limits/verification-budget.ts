import { RateLimiterMemory } from '../../store/index.ts';
import { sourceKey } from './source-key.ts';

export type BudgetKind = 'address' | 'device';

export interface VerificationBudgetOptions {
  /** Failed signature checks per source address, and per claimed device, in one minute. */
  failuresPerMinute: number;
  nowMs: () => number;
  /**
   * Sources held at once; past it the least recently failed one is forgotten (`onEvicted`).
   * Device keys need no bound of their own: only provisioned devices are counted.
   */
  maxSources?: number;
  onEvicted?: () => void;
}

export interface BudgetExceeded {
  kind: BudgetKind;
  /** Until the window ends: what a 4.29's Max-Age says. */
  retryAfterSec: number;
}

/** May a signature check be made? If so, `settle` says how it went once it has. */
export type Reservation =
  | { granted: true; settle(signatureFailed: boolean): void }
  | { granted: false; exceeded: BudgetExceeded };

export interface VerificationBudget {
  /**
   * A signature check for a token from `address` (when known) naming `device`: refused when
   * either has spent its budget of failures; waits while the checks in flight could spend the
   * rest, so a burst cannot slip past the count before its first failures are in.
   */
  reserve(address: string | undefined, device: string): Promise<Reservation>;
  /**
   * The device proved itself from this address (its secret, or a token that verified): from there
   * its tokens are held only to the address's budget, not the device's, so forgeries naming the
   * device from elsewhere cannot lock its own refreshes and uncached tokens out.
   */
  trust(address: string, device: string): void;
}

const WINDOW_MS = 60_000;
const DEFAULT_MAX_SOURCES = 100_000;

/**
 * Failed signature checks counted per source address and per claimed device, in fixed one-minute
 * windows of the gateway's clock, on rate-limiter-flexible (its memory store now; its Redis store
 * takes the same calls). Only failures count, so a device whose tokens verify spends nothing;
 * and the verifier asks only for tokens it has not verified before, so a cached token is never
 * refused for someone else's flood.
 *
 * Checks in flight are held to what is left of a budget: further checks of that key wait for
 * one to settle (a burst of good tokens from one NAT is only queued, a burst of forgeries stops
 * at the budget). They are counted in this process only; the failures are what a shared store
 * would share.
 *
 * The window is part of each key, so Max-Age says when the budget frees and tests move time
 * instead of sleeping; the library's expiry, set to the window's end, frees what nobody touches
 * again. Sources are bounded by count as well (spoofed source addresses cost an attacker
 * nothing): forgetting one only forgives its failures, it can never refuse anyone's token.
 */
export function createVerificationBudget(options: VerificationBudgetOptions): VerificationBudget {
  const { failuresPerMinute, nowMs } = options;
  const maxSources = options.maxSources ?? DEFAULT_MAX_SOURCES;
  if (!Number.isInteger(failuresPerMinute) || failuresPerMinute < 1) {
    throw new TypeError(`failuresPerMinute must be a whole number >= 1, got ${failuresPerMinute}`);
  }
  if (!Number.isInteger(maxSources) || maxSources < 1) throw new TypeError(`maxSources must be a whole number >= 1, got ${maxSources}`);
  const onEvicted = options.onEvicted ?? (() => undefined);
  // Device -> the source it last proved itself from; least recently proved first, as bounded as sources.
  const provenFrom = new Map<string, string>();
  const limiter = new RateLimiterMemory({ points: failuresPerMinute, duration: WINDOW_MS / 1000, keyPrefix: '' });
  // Source key -> its window, least recently failed first: past windows lead.
  const sources = new Map<string, number>();
  // Checks in flight per key, and who waits for one of them to settle; gone when both are none.
  const inFlight = new Map<string, { checks: number; waiters: (() => void)[] }>();
  // Failures recorded so far: a reservation that saw one land while it read the counts reads again.
  let failuresRecorded = 0;

  const windowOf = (now: number) => Math.floor(now / WINDOW_MS);
  const secondsLeft = (now: number) => Math.max(1, Math.ceil(((windowOf(now) + 1) * WINDOW_MS - now) / 1000));
  const forget = (key: string) => {
    sources.delete(key);
    void limiter.delete(key).catch(() => undefined);
  };
  const holdSource = (key: string, window: number) => {
    for (const [old, oldWindow] of sources) {
      if (oldWindow >= window) break;
      forget(old);
    }
    if (!sources.delete(key) && sources.size >= maxSources) {
      forget(sources.keys().next().value!);
      onEvicted();
    }
    sources.set(key, window);
  };
  const flight = (key: string) => {
    let entry = inFlight.get(key);
    if (entry === undefined) inFlight.set(key, (entry = { checks: 0, waiters: [] }));
    return entry;
  };
  const settled = (key: string) => {
    const entry = inFlight.get(key)!;
    entry.checks -= 1;
    const waiters = entry.waiters.splice(0);
    if (entry.checks === 0) inFlight.delete(key);
    for (const wake of waiters) wake();
  };

  return {
    trust(address, device) {
      const source = sourceKey(address);
      if (provenFrom.get(device) === source) return;
      provenFrom.delete(device);
      if (provenFrom.size >= maxSources) provenFrom.delete(provenFrom.keys().next().value!);
      provenFrom.set(device, source);
    },

    async reserve(address, device) {
      for (;;) {
        const now = nowMs();
        const window = windowOf(now);
        const source = address === undefined ? undefined : sourceKey(address);
        const keys: [BudgetKind, string][] = source !== undefined && provenFrom.get(device) === source
          ? [] : [['device', `d:${device}@${window}`]];
        if (source !== undefined) keys.unshift(['address', `a:${source}@${window}`]);
        const seen = failuresRecorded;
        const failed = (await Promise.all(keys.map(([, key]) => limiter.get(key)))).map((res) => res?.consumedPoints ?? 0);
        if (seen !== failuresRecorded) continue;
        const over = keys.findIndex((_, i) => failed[i]! >= failuresPerMinute);
        if (over !== -1) return { granted: false, exceeded: { kind: keys[over]![0], retryAfterSec: secondsLeft(now) } };
        // From here to the return nothing is awaited: deciding and counting the check are one step.
        const busy = keys.find(([, key], i) => failed[i]! + (inFlight.get(key)?.checks ?? 0) >= failuresPerMinute);
        if (busy !== undefined) {
          // At least one check of this key is in flight (its failures alone are under budget): wait for it.
          await new Promise<void>((resolve) => { flight(busy[1]).waiters.push(resolve); });
          continue;
        }
        for (const [, key] of keys) flight(key).checks += 1;
        return {
          granted: true,
          settle(signatureFailed) {
            if (signatureFailed) {
              failuresRecorded += 1;
              const customDuration = secondsLeft(nowMs());
              // Counted inside the call, before the checks below stop counting as in flight.
              for (const [kind, key] of keys) {
                if (kind === 'address') holdSource(key, window);
                void limiter.penalty(key, 1, { customDuration }).catch(() => undefined);
              }
            }
            for (const [, key] of keys) settled(key);
          },
        };
      }
    },
  };
}
