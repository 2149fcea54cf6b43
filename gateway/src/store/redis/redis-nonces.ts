import type { NonceEntry, Nonces } from '../ports.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/** A nonce is a key that expires with it; taking it is GETDEL, so two gateways cannot both take one. */
export function createRedisNonces({ session, layout }: RedisPortContext): Nonces {
  return {
    async put(nonce, entry, ttlMs) {
      const atMs = entry.issuedAtMs + Math.max(1, Math.ceil(ttlMs));
      await session.run((client) => client.set(layout.nonce(nonce), JSON.stringify(entry), 'PXAT', atMs));
    },
    async take(nonce) {
      const json = await session.run((client) => client.getdel(layout.nonce(nonce)));
      return json === null ? undefined : (JSON.parse(json) as NonceEntry);
    },
  };
}
