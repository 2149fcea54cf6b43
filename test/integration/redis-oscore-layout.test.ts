import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import { REDIS_STORE_DEFAULTS } from '../../gateway/src/config/index.ts';
import type { Store } from '../../gateway/src/store/ports.ts';
import { buildRedisStore, type RedisStoreOptions } from '../../gateway/src/store/redis/index.ts';
import { MAX_SEQUENCE_NUMBER, RETIRED_SEQUENCE_KEEP_MS } from '../../gateway/src/store/replay-window.ts';
import { SENDER_ID_COUNTERS } from '../../gateway/src/store/sender-ids.ts';
import { oscoreContext } from '../contract/oscore-contract.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { deviceRecord } from '../helpers/store-fixtures.ts';

// The OSCORE keys the Redis store leaves in Redis (redis-key-layout.ts), read from Redis itself:
// the index and the counter beside the devices, a window per context that expires when idle and
// goes with its context, a sequence counter that outlives it a while. What every backend shares
// is in test/contract/oscore-contract.ts.

const redis = await startRedis(t);
const admin = new Redis({ path: redis.socketPath });
t.teardown(() => admin.quit());

async function openStore(t: Test, options: Partial<RedisStoreOptions> = {}): Promise<Store> {
  const store = await buildRedisStore({
    url: redis.url, keyPrefix: REDIS_STORE_DEFAULTS.keyPrefix, connectTimeoutMs: 5000, commandTimeoutMs: 5000, ...options,
  });
  t.teardown(() => store.close());
  return store;
}

t.test('the index, the counter, a window per context and its sequence counter, and what rotation and removal leave', async (t) => {
  await admin.flushdb();
  const store = await openStore(t, { oscoreWindowIdleSec: 600 });
  const [sender] = await store.devices.allocateSenderIds(1) as [string];
  t.equal(await admin.get('gw:oscore-sender-counter'), '1', 'the counter: ids handed out');
  const record = deviceRecord('dev', { oscore: oscoreContext(sender) });
  const generation = record.oscore!.generation;
  await store.devices.add([record]);
  t.same(await admin.hgetall('gw:oscore-senders'), { [sender]: 'dev' }, 'the index: Sender ID -> device id');
  t.equal(await admin.get(`gw:oscore-window:${generation}`), '-1:0', 'the new context\'s window, empty');
  const ttl = await admin.pttl(`gw:oscore-window:${generation}`);
  t.ok(ttl > 590_000 && ttl <= 600_000, `expiring when idle (${ttl} ms)`);

  for (const seq of [0, 2, 40, 39]) t.equal(await store.oscoreWindows.accept(generation, seq), 'fresh');
  const [highest, mask] = (await admin.get(`gw:oscore-window:${generation}`))!.split(':').map(Number) as [number, number];
  t.equal(highest, 40);
  t.equal(mask, 1, 'only 39 is in the mask (0 and 2 slid out, 33 and 31 below)');
  await store.oscoreWindows.accept(generation, 72);
  const [, slid] = (await admin.get(`gw:oscore-window:${generation}`))!.split(':').map(Number) as [number, number];
  t.equal(slid, -(2 ** 31), 'a shift of exactly 32 keeps the old highest in bit 31: the mask stays a 32-bit signed integer');

  t.equal(await store.oscoreWindows.reserveSequence(generation, 64), 0);
  t.equal(await admin.get(`gw:oscore-seq:${generation}`), '64', 'the sequence counter: the next free number');
  t.equal(await admin.pttl(`gw:oscore-seq:${generation}`), -1, 'a live context\'s counter never expires');

  const rotated = { ...record, oscore: oscoreContext(sender) };
  t.equal(await store.devices.replace(record, rotated), true);
  t.equal(await admin.exists(`gw:oscore-window:${generation}`), 0, 'rotation removes the old window');
  const kept = await admin.pttl(`gw:oscore-seq:${generation}`);
  t.ok(kept > RETIRED_SEQUENCE_KEEP_MS - 10_000 && kept <= RETIRED_SEQUENCE_KEEP_MS, 'and keeps the old counter a day, then lets it go');
  t.equal(await admin.get(`gw:oscore-window:${rotated.oscore.generation}`), '-1:0', 'the new context\'s window starts empty');
  t.same(await admin.hgetall('gw:oscore-senders'), { [sender]: 'dev' }, 'the index is unchanged: the same Sender ID');

  await store.oscoreWindows.reserveSequence(rotated.oscore.generation, 1);
  t.equal(await store.devices.remove('dev'), true);
  t.same(await admin.hgetall('gw:oscore-senders'), {}, 'removal empties the index entry');
  t.equal(await admin.exists(`gw:oscore-window:${rotated.oscore.generation}`), 0, 'and removes the window');
  t.ok(await admin.pttl(`gw:oscore-seq:${rotated.oscore.generation}`) > 0, 'and retires the counter');
  t.same((await admin.keys('*')).filter((k) => !k.startsWith('gw:')), [], 'nothing outside the prefix');
});

t.test('a context\'s sequence numbers end at 2^40 - 1; the Sender IDs at the last three-byte id', async (t) => {
  const store = await openStore(t, { keyPrefix: 'ends:' });
  await admin.set('ends:oscore-seq:full', String(MAX_SEQUENCE_NUMBER + 1 - 5));
  t.equal(await store.oscoreWindows.reserveSequence('full', 5), MAX_SEQUENCE_NUMBER + 1 - 5, 'the last block');
  await t.rejects(store.oscoreWindows.reserveSequence('full', 1), RangeError, 'then it is spent');
  t.equal(await admin.get('ends:oscore-seq:full'), String(MAX_SEQUENCE_NUMBER + 1), 'and nothing more was taken');
  await admin.set('ends:oscore-sender-counter', String(SENDER_ID_COUNTERS - 1));
  t.same((await store.devices.allocateSenderIds(1)).map((id) => id), ['ffffff'], 'the last id');
  await t.rejects(store.devices.allocateSenderIds(1), { name: 'AdminError', code: 'GW_ERR_ADMIN_STATE' });
});

t.test('a window established after an Echo recovery: its number and every one below count as seen', async (t) => {
  const store = await openStore(t, { keyPrefix: 'echo:' });
  await store.oscoreWindows.establish('recovered', 1000);
  t.equal(await admin.get('echo:oscore-window:recovered'), '1000:-1', 'the mask is all 32 bits');
  t.equal(await store.oscoreWindows.accept('recovered', 968), 'replay');
  t.equal(await store.oscoreWindows.accept('recovered', 1001), 'fresh');
  await store.oscoreWindows.forget('recovered');
  t.equal(await admin.exists('echo:oscore-window:recovered'), 0, 'forget removes the window');
});
