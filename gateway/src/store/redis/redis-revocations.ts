import { asRevocation, revocationKey, type Revocation, type Revocations } from '../ports.ts';
import { encodeChange } from './redis-change-feed.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/**
 * Revoked refresh families and tokens: a hash of their JSON and a sorted set by untilSec, so a
 * listing reads only those still ahead and each revocation prunes those behind.
 */
export function createRedisRevocations({ session, scripts, layout, nowMs }: RedisPortContext): Revocations {
  const keys = [layout.revocations, layout.revocationsUntil];
  const record = async (revocation: Revocation): Promise<void> => {
    const nowSec = Math.floor(nowMs() / 1000);
    await session.run(() => scripts.revoke(keys, [
      revocationKey(revocation), JSON.stringify(revocation), revocation.untilSec, nowSec,
      layout.changes, encodeChange({ kind: 'revocation', revocation }),
    ]));
  };
  return {
    revokeFamily: (revocation) => record({
      family: revocation.family, deviceId: revocation.deviceId, atSec: revocation.atSec, untilSec: revocation.untilSec,
    }),
    revokeToken: (revocation) => record({ kind: 'token', jti: revocation.jti, atSec: revocation.atSec, untilSec: revocation.untilSec }),
    async list(nowSec) {
      const jsons = await session.run(() => scripts.listRevocations(keys, [nowSec]));
      return jsons.flatMap((json) => {
        const revocation = asRevocation(JSON.parse(json));
        return revocation === undefined ? [] : [revocation];
      });
    },
  };
}
