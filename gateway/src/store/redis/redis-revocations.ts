import type { FamilyRevocation, Revocations } from '../ports.ts';
import { encodeChange } from './redis-change-feed.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/**
 * Revoked refresh families: a hash of their JSON and a sorted set by untilSec, so a listing reads
 * only those still ahead and each revocation prunes those behind.
 */
export function createRedisRevocations({ session, scripts, layout, nowMs }: RedisPortContext): Revocations {
  const keys = [layout.revocations, layout.revocationsUntil];
  return {
    async revokeFamily(revocation) {
      const nowSec = Math.floor(nowMs() / 1000);
      await session.run(() => scripts.revokeFamily(keys, [
        revocation.family, JSON.stringify(revocation), revocation.untilSec, nowSec,
        layout.changes, encodeChange({ kind: 'revocation', revocation }),
      ]));
    },
    async list(nowSec) {
      const jsons = await session.run(() => scripts.listRevocations(keys, [nowSec]));
      return jsons.map((json) => JSON.parse(json) as FamilyRevocation);
    },
  };
}
