import type { NonceEntry, Nonces } from '../ports.ts';

/**
 * Outstanding nonces of the `file` store: this process's memory (one gateway; they live a minute,
 * so a restart only makes devices ask again). Insertion order is expiry order (one lifetime for
 * all), so pruning stops at the first live one. The gateway bounds what it issues per address
 * and in all (with a metric); `maxEntries` here only backs that up.
 */
export function createMemoryNonces(nowMs: () => number, maxEntries = 100_000): Nonces {
  const held = new Map<string, NonceEntry & { untilMs: number }>();
  const prune = (): void => {
    const now = nowMs();
    for (const [nonce, entry] of held) {
      if (entry.untilMs > now) return;
      held.delete(nonce);
    }
  };
  return {
    async put(nonce, entry, ttlMs) {
      prune();
      if (held.size >= maxEntries) held.delete(held.keys().next().value!);
      held.set(nonce, { ...entry, untilMs: entry.issuedAtMs + ttlMs });
    },
    async take(nonce) {
      const entry = held.get(nonce);
      if (entry === undefined) return undefined;
      held.delete(nonce);
      if (entry.untilMs <= nowMs()) return undefined;
      return { address: entry.address, issuedAtMs: entry.issuedAtMs };
    },
  };
}
