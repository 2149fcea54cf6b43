import { join } from 'node:path';
import { AdminError } from '../../errors.ts';
import { readTextIfExists, writeFileAtomic } from '../atomic-file.ts';
import type { PublicKeys, PublishedKey } from '../ports.ts';
import type { Mutate } from './mutate.ts';
import type { StoreCalls } from './store-calls.ts';

/** `<stateDir>/public-keys.json`: the fleet's published keys, a handful, rewritten whole under the lock. */
export const PUBLIC_KEYS_FILE = 'public-keys.json';

/** A retired key is kept this long after `retiredAt` (so that a late view still sees why), then pruned. */
export const RETIRED_KEY_KEEP_SEC = 7 * 24 * 3600;

export interface PublicKeysContext {
  stateDir: string;
  nowMs: () => number;
  calls: StoreCalls;
  mutate: Mutate;
}

export function createPublicKeys({ stateDir, nowMs, calls, mutate }: PublicKeysContext): PublicKeys {
  const file = join(stateDir, PUBLIC_KEYS_FILE);
  const load = async (): Promise<PublishedKey[]> => {
    calls.add();
    const text = await readTextIfExists(file);
    const keys = text === undefined ? [] : (JSON.parse(text) as PublishedKey[]);
    const cutoffMs = nowMs() - RETIRED_KEY_KEEP_SEC * 1000;
    return keys.filter((key) => key.state !== 'retired' || key.retiredAt === undefined || Date.parse(key.retiredAt) > cutoffMs);
  };
  const save = (keys: readonly PublishedKey[]): Promise<void> => {
    calls.add();
    return writeFileAtomic(file, `${JSON.stringify(keys, null, 2)}\n`, 0o600);
  };

  return {
    async publish(key) {
      if (typeof key?.kid !== 'string' || key.kid === '') throw new TypeError('a published key needs a non-empty string kid');
      await mutate(async (changes) => {
        const keys = await load();
        const index = keys.findIndex((known) => known.kid === key.kid);
        if (index === -1) keys.push(key);
        else keys[index] = key;
        await save(keys);
        changes.push({ kind: 'key', kid: key.kid });
      });
    },

    list: load,

    retire(kid, atIso) {
      return mutate(async (changes) => {
        const keys = await load();
        const index = keys.findIndex((known) => known.kid === kid);
        const key = keys[index];
        if (key === undefined || key.state === 'retired') return false;
        if (key.state === 'active') {
          throw new AdminError('GW_ERR_ADMIN_ONLY_ACTIVE_KEY', `"${kid}" is its gateway's active signing key; rotate first, then retire it`);
        }
        keys[index] = { ...key, state: 'retired', retiredAt: atIso };
        await save(keys);
        changes.push({ kind: 'key', kid });
        return true;
      });
    },
  };
}
