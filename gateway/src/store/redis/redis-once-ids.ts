import type { OneTimeIds } from '../ports.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/** A spent id is a key that expires when the id stops mattering: SET NX EXAT, one round trip. */
export function createRedisOnceIds({ session, layout, nowMs }: RedisPortContext): OneTimeIds {
  return {
    async consume(id, expiresAtSec) {
      if (!Number.isFinite(expiresAtSec)) throw new TypeError(`expiresAtSec must be a number of seconds, got ${expiresAtSec}`);
      // An id already past its expiry still has to be refused once more while it is checked:
      // keep it at least a second (EXAT in the past would not store it at all).
      const atSec = Math.max(Math.ceil(expiresAtSec), Math.floor(nowMs() / 1000) + 1);
      const set = await session.run((client) => client.set(layout.onceId(id), '1', 'EXAT', atSec, 'NX'));
      return set === 'OK';
    },
  };
}
