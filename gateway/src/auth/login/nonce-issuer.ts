import { randomBytes } from 'node:crypto';
import type { NonceEntry, Nonces } from '../../store/index.ts';
import { NONCE_BYTES, NONCE_LIFETIME_SEC } from '../../wire/index.ts';
import { sourceKey } from '../limits/source-key.ts';

export interface NonceIssuerOptions {
  nonces: Nonces;
  nowMs: () => number;
  /** Outstanding per source address (an IPv6 /64 counts as one); a new one past it ends the oldest. */
  perAddress: number;
  /** Outstanding in all; a new one past it ends the oldest of any address. */
  maxEntries: number;
  /** A nonce was ended early to keep a bound (metrics). */
  onEvicted?: () => void;
}

export interface NonceIssuer {
  /** A fresh nonce for `address`, kept for NONCE_LIFETIME_SEC. */
  issue(address: string): Promise<{ nonce: Buffer; serverTimeSec: number }>;
  /** Takes a nonce once (base64url, as an assertion's `nonce` claim carries it). */
  take(nonce: string): Promise<NonceEntry | undefined>;
  /** Nonces this gateway holds account of now (a gauge). */
  size(): number;
}

/**
 * Nonces for devices without a clock (`POST /auth/nonce`). The store keeps them, so any gateway
 * of a fleet accepts them; this gateway bounds what it issues, per source and in all, so a
 * flood of nonce requests costs a fixed amount of memory here and in the store. Each answer is
 * bigger than its request, so the endpoint sends it only to an address that proved it receives
 * there (RFC 9175 Echo).
 */
export function createNonceIssuer(options: NonceIssuerOptions): NonceIssuer {
  const { nonces, nowMs, perAddress, maxEntries } = options;
  const onEvicted = options.onEvicted ?? (() => undefined);
  // Every outstanding nonce, oldest first (one lifetime for all: insertion order is expiry order).
  const issued = new Map<string, { source: string; untilMs: number }>();
  // Per source, its outstanding nonces, oldest first.
  const bySource = new Map<string, string[]>();

  const forget = (nonce: string): void => {
    const entry = issued.get(nonce);
    if (entry === undefined) return;
    issued.delete(nonce);
    const list = bySource.get(entry.source);
    if (list === undefined) return;
    const index = list.indexOf(nonce);
    if (index !== -1) list.splice(index, 1);
    if (list.length === 0) bySource.delete(entry.source);
  };
  const end = (nonce: string): void => {
    forget(nonce);
    onEvicted();
    void nonces.take(nonce).catch(() => undefined);
  };
  const prune = (): void => {
    const now = nowMs();
    for (const [nonce, entry] of issued) {
      if (entry.untilMs > now) return;
      forget(nonce);
    }
  };

  return {
    async issue(address) {
      prune();
      const source = sourceKey(address);
      const mine = bySource.get(source) ?? [];
      if (mine.length >= perAddress) end(mine[0]!);
      if (issued.size >= maxEntries) end(issued.keys().next().value!);
      const bytes = randomBytes(NONCE_BYTES);
      const nonce = bytes.toString('base64url');
      const issuedAtMs = nowMs();
      await nonces.put(nonce, { address, issuedAtMs }, NONCE_LIFETIME_SEC * 1000);
      issued.set(nonce, { source, untilMs: issuedAtMs + NONCE_LIFETIME_SEC * 1000 });
      const list = bySource.get(source) ?? [];
      list.push(nonce);
      bySource.set(source, list);
      return { nonce: bytes, serverTimeSec: Math.floor(issuedAtMs / 1000) };
    },
    take(nonce) {
      forget(nonce);
      return nonces.take(nonce);
    },
    size() {
      prune();
      return issued.size;
    },
  };
}
