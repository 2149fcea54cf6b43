import { MAX_FAMILIES_PER_DEVICE, type RefreshFamilies, type RefreshFamily } from '../ports.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/**
 * Refresh families as one key each (their JSON, expiring with the current token) and a sorted
 * set per device; starting and rotating are one script each, so two gateways presented the same
 * token at once cannot both rotate it: one rotates, the other sees a reuse.
 */
export function createRedisRefreshFamilies({ session, scripts, layout, nowMs }: RedisPortContext): RefreshFamilies {
  return {
    async start(family) {
      if (typeof family?.family !== 'string' || family.family === '') throw new TypeError('a refresh family needs a string id');
      await session.run(() => scripts.startFamily([layout.family(family.family), layout.deviceFamilies(family.deviceId)], [
        JSON.stringify(family), family.expiresAtSec * 1000, nowMs(), family.family, MAX_FAMILIES_PER_DEVICE, layout.familyPrefix,
      ]));
    },
    async rotate(id, presentedHash, next) {
      const [outcome, json] = await session.run(() => scripts.rotateFamily([layout.family(id)], [
        presentedHash, next.currentHash, next.expiresAtSec, layout.deviceFamiliesPrefix,
      ]));
      if (outcome === 'unknown' || json === undefined) return { outcome: 'unknown' };
      const family = JSON.parse(json) as RefreshFamily;
      return outcome === 'rotated' ? { outcome: 'rotated', family } : { outcome: 'reused', family };
    },
    async end(id) {
      const deleted = await session.run((client) => client.del(layout.family(id)));
      return deleted === 1;
    },
  };
}
