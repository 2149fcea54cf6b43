import { hash } from 'node:crypto';
import type { VerifiedToken } from './claims.ts';

export interface VerifiedTokenCacheOptions {
  /** Tokens remembered at once; 0 turns the cache off. */
  maxEntries: number;
  /** A verified token pushed out of the full cache (it is verified again when seen; metrics). */
  onEvicted?: () => void;
}

export interface VerifiedTokenCache {
  /** The key of `token` as a `typ` token; undefined when the cache is off. */
  keyOf(token: string, typ: string): string | undefined;
  get(key: string): VerifiedToken | undefined;
  set(key: string, verified: VerifiedToken): void;
  delete(key: string): void;
}

/**
 * Access tokens that verified, by SHA-256 of their text, so a device's next request costs a map
 * read instead of a signature check. It holds only tokens that verified: a hit is canonical by
 * construction. What can change since (expiry, key, device record, revocation) the verifier
 * checks again on every hit. Bounded by count, oldest first.
 */
export function createVerifiedTokenCache(options: VerifiedTokenCacheOptions): VerifiedTokenCache {
  const { maxEntries } = options;
  const entries = new Map<string, VerifiedToken>();
  return {
    keyOf: (token, typ) => (maxEntries > 0 ? hash('sha256', `${typ} ${token}`, 'base64') : undefined),
    get: (key) => entries.get(key),
    set(key, verified) {
      if (maxEntries === 0) return;
      if (entries.size >= maxEntries) {
        entries.delete(entries.keys().next().value!);
        options.onEvicted?.();
      }
      entries.set(key, verified);
    },
    delete(key) {
      entries.delete(key);
    },
  };
}
