// rate-limiter-flexible's package entry loads every store it supports (about 10 MB of RSS, see
// store/rate-limiter-memory.ts): only its Redis limiter is loaded here.
import { createRequire } from 'node:module';
import type * as Flexible from 'rate-limiter-flexible';
import type { Limits } from '../ports.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

const require = createRequire(import.meta.url);
const RateLimiterRedis = require('rate-limiter-flexible/lib/RateLimiterRedis.js') as typeof Flexible.RateLimiterRedis;

/** The limiter's own round trips (each one Lua script or one MULTI); not in its public types. */
interface RedisLimiterRoundTrips {
  _upsert(...args: unknown[]): Promise<unknown>;
  _get(...args: unknown[]): Promise<unknown>;
  _delete(...args: unknown[]): Promise<unknown>;
}
type LimiterBase = new (options: ConstructorParameters<typeof Flexible.RateLimiterRedis>[0]) => Flexible.RateLimiterRedis & RedisLimiterRoundTrips;

/**
 * Counters shared by the fleet, on the command connection. Each round trip is counted, and Redis
 * down or slow rejects with StoreUnavailableError (`rejectIfRedisNotReady`: at once, not after a
 * timeout); a limit reached still rejects with the library's RateLimiterRes.
 */
export function createRedisLimits({ session, layout }: RedisPortContext): Limits {
  const guard = async (roundTrip: Promise<unknown>): Promise<unknown> => {
    try {
      return await roundTrip;
    } catch (error) {
      throw session.unavailable(error);
    }
  };
  class StoreRateLimiter extends (RateLimiterRedis as unknown as LimiterBase) {
    override _upsert(...args: unknown[]): Promise<unknown> {
      session.count();
      return guard(super._upsert(...args));
    }

    override _get(...args: unknown[]): Promise<unknown> {
      session.count();
      return guard(super._get(...args));
    }

    override _delete(...args: unknown[]): Promise<unknown> {
      session.count();
      return guard(super._delete(...args));
    }
  }
  return {
    limiter: ({ keyPrefix, points, durationSec }) => new StoreRateLimiter({
      storeClient: session.client,
      keyPrefix: `${layout.limits}${keyPrefix}`,
      points,
      duration: durationSec,
      rejectIfRedisNotReady: true,
    }),
  };
}
