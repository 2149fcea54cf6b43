import { randomUUID } from 'node:crypto';
import t from 'tap';
import { buildRedisStore } from '../../gateway/src/store/redis/index.ts';
import { storeContract } from '../contract/store-contract.ts';
import { startRedis } from '../helpers/redis-server.ts';

// One real Redis for the file; each case gets a fresh key prefix, so it starts empty and no case
// sees another's keys. The server goes away with the test, and its keys with it.
const { url } = await startRedis(t);

storeContract(t, {
  name: 'redis',
  sharedLimits: true,
  sharedOnceIds: true,
  sharedWindows: true,
  async open(clock) {
    const options = { url, keyPrefix: `contract-${randomUUID()}:`, connectTimeoutMs: 2000, commandTimeoutMs: 2000, nowMs: () => clock.nowMs() };
    return {
      store: await buildRedisStore(options),
      openPeer: () => buildRedisStore(options),
    };
  },
});
