import { AdminError } from '../../errors.ts';
import { StoreUnavailableError, type PublishedKey, type PublicKeys } from '../ports.ts';
import { encodeChange } from './redis-change-feed.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/** A retired key stays listed this long (its tokens are refused; operators can still see it). */
export const RETIRED_KEY_KEPT_MS = 7 * 24 * 3600 * 1000;
/** Retire reads, decides, then writes only if the key is unchanged: this many tries under contention. */
const RETIRE_ATTEMPTS = 5;

/** The fleet's public keys as one hash (kid -> JSON), with retired kids in a sorted set for pruning. */
export function createRedisPublicKeys({ session, scripts, layout, nowMs }: RedisPortContext): PublicKeys {
  const keys = [layout.keys, layout.keysRetired];
  const pruneBeforeMs = (): number => nowMs() - RETIRED_KEY_KEPT_MS;
  return {
    async publish(key) {
      const retiredAtMs = key.state === 'retired' ? retiredAtOf(key, nowMs) : '';
      await session.run(() => scripts.publishKey(keys, [
        key.kid, JSON.stringify(key), retiredAtMs, pruneBeforeMs(), layout.changes, encodeChange({ kind: 'key', kid: key.kid }),
      ]));
    },
    async list() {
      const jsons = await session.run(() => scripts.listKeys(keys, [pruneBeforeMs()]));
      return jsons.map((json) => JSON.parse(json) as PublishedKey);
    },
    async retire(kid, atIso) {
      const retiredAtMs = Date.parse(atIso);
      if (Number.isNaN(retiredAtMs)) throw new TypeError(`atIso must be an ISO 8601 time, got "${atIso}"`);
      for (let attempt = 0; attempt < RETIRE_ATTEMPTS; attempt += 1) {
        const json = await session.run((client) => client.hget(layout.keys, kid));
        if (json === null) return false;
        const key = JSON.parse(json) as PublishedKey;
        if (key.state === 'retired') return false;
        if (key.state === 'active') {
          throw new AdminError('GW_ERR_ADMIN_ONLY_ACTIVE_KEY', `"${kid}" is the active signing key; rotate first (gateway keys rotate), then retire it`);
        }
        const retired: PublishedKey = { ...key, state: 'retired', retiredAt: atIso };
        const swapped = await session.run(() => scripts.retireKey(keys, [
          kid, json, JSON.stringify(retired), retiredAtMs, pruneBeforeMs(), layout.changes, encodeChange({ kind: 'key', kid }),
        ]));
        if (swapped === 1) return true;
      }
      throw new StoreUnavailableError(`key "${kid}" changed under each of ${RETIRE_ATTEMPTS} attempts to retire it`);
    },
  };
}

function retiredAtOf(key: PublishedKey, nowMs: () => number): number {
  const at = key.retiredAt === undefined ? Number.NaN : Date.parse(key.retiredAt);
  return Number.isNaN(at) ? nowMs() : at;
}
