import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import type { Store } from '../../gateway/src/store/ports.ts';
import { REDIS_STORE_DEFAULTS } from '../../gateway/src/config/index.ts';
import { buildRedisStore, type RedisStoreOptions } from '../../gateway/src/store/redis/index.ts';
import { conditions } from '../helpers/condition.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { deviceRecord, publishedKey } from '../helpers/store-fixtures.ts';

// What the Redis store leaves in Redis (the key layout store/redis/redis-key-layout.ts describes), how it expires and
// prunes, and what each call costs in round trips, read from Redis itself (MONITOR). The
// behaviour every backend shares is in test/contract, run by redis-store-contract.test.ts.

const redis = await startRedis(t);
const admin = new Redis({ path: redis.socketPath });
t.teardown(() => admin.quit());

const DAY_MS = 24 * 3600 * 1000;

async function openStore(t: Test, options: Partial<RedisStoreOptions> = {}): Promise<Store> {
  const store = await buildRedisStore({
    url: redis.url, keyPrefix: REDIS_STORE_DEFAULTS.keyPrefix, connectTimeoutMs: 2000, commandTimeoutMs: 2000, ...options,
  });
  t.teardown(() => store.close());
  return store;
}

t.test('the key layout under the default prefix gw:', async (t) => {
  await admin.flushdb();
  const store = await openStore(t);
  await store.devices.add([deviceRecord('a'), deviceRecord('b')]);
  t.equal(await admin.hlen('gw:devices'), 2, 'devices: one hash');
  t.same(JSON.parse((await admin.hget('gw:devices', 'a'))!), deviceRecord('a'), 'field = id, value = the record JSON');
  const expiresAtSec = Math.floor(Date.now() / 1000) + 3600;
  await store.onceIds.consume('jti-1', expiresAtSec);
  t.equal(await admin.call('EXPIRETIME', 'gw:once:jti-1'), expiresAtSec, 'a spent id expires when it stops mattering');
  await store.revocations.revokeFamily({ family: 'fam', deviceId: 'a', atSec: 1, untilSec: expiresAtSec });
  t.equal(await admin.zscore('gw:revocations:until', 'family:fam'), String(expiresAtSec), 'revocations are scored by untilSec');
  t.ok(await admin.hexists('gw:revocations', 'family:fam'));
  await store.keys.publish(publishedKey('k1', 'active'));
  t.ok(await admin.hexists('gw:keys', 'k1'), 'keys: one hash by kid');
  const limiter = store.limits.limiter({ keyPrefix: 'login', points: 5, durationSec: 60 });
  await limiter.consume('10.0.0.1');
  t.equal(await admin.get('gw:limits:login:10.0.0.1'), '1', 'limiter counters under gw:limits:<keyPrefix>:');
  t.same((await admin.keys('*')).filter((k) => !k.startsWith('gw:')), [], 'nothing outside the prefix');
});

t.test('a one-time id already past its expiry is still refused for a second use', async (t) => {
  // The store's clock a minute ahead of Redis: the id is kept until that clock's now + 1 s.
  const aheadMs = 60_000;
  const store = await openStore(t, { keyPrefix: 'ahead:', nowMs: () => Date.now() + aheadMs });
  const pastSec = Math.floor(Date.now() / 1000) - 10;
  t.equal(await store.onceIds.consume('late', pastSec), true);
  t.equal(await store.onceIds.consume('late', pastSec), false, 'refused: EXAT in the past would have stored nothing');
  t.ok(Number(await admin.call('EXPIRETIME', 'ahead:once:late')) > Date.now() / 1000 + 59, 'kept until the store\'s now + 1 s');
});

t.test('retired keys are pruned 7 days after retirement; revocations once past untilSec', async (t) => {
  let nowMs = Date.parse('2026-11-24T08:00:00.000Z');
  const store = await openStore(t, { keyPrefix: 'prune:', nowMs: () => nowMs });
  await store.keys.publish(publishedKey('old', 'verifying'));
  await store.keys.publish(publishedKey('current', 'active'));
  t.equal(await store.keys.retire('old', new Date(nowMs).toISOString()), true);
  t.equal(await admin.zscore('prune:keys:retired', 'old'), String(nowMs), 'retired kids scored by retiredAt');
  nowMs += 7 * DAY_MS - 1000;
  t.same((await store.keys.list()).map((k) => k.kid).sort(), ['current', 'old'], 'kept for 7 days');
  nowMs += 2000;
  t.same((await store.keys.list()).map((k) => k.kid), ['current'], 'pruned after');
  t.equal(await admin.zcard('prune:keys:retired'), 0);
  await store.keys.publish(publishedKey('current', 'active'));
  t.equal(await admin.zcard('prune:keys:retired'), 0, 'an active key is not in the retired set');

  const nowSec = Math.floor(nowMs / 1000);
  await store.revocations.revokeFamily({ family: 'short', deviceId: 'a', atSec: nowSec, untilSec: nowSec + 10 });
  nowMs += 11_000;
  await store.revocations.revokeFamily({ family: 'long', deviceId: 'a', atSec: nowSec, untilSec: nowSec + 3600 });
  t.same(await admin.hkeys('prune:revocations'), ['family:long'], 'a revocation prunes those past their untilSec');
  t.same(await admin.zrange('prune:revocations:until', '0', '-1'), ['family:long']);
});

t.test('a second revocation of a family replaces the first', async (t) => {
  const store = await openStore(t, { keyPrefix: 'again:' });
  await store.revocations.revokeFamily({ family: 'f', deviceId: 'a', atSec: 1, untilSec: 2_000_000_000 });
  await store.revocations.revokeFamily({ family: 'f', deviceId: 'a', atSec: 2, untilSec: 2_000_000_100 });
  t.same(await store.revocations.list(0), [{ family: 'f', deviceId: 'a', atSec: 2, untilSec: 2_000_000_100 }]);
});

t.test('a bulk add of 100,000 devices is one round trip and lists in batches', async (t) => {
  // One script writing 100,000 records takes a second or more, several on a loaded machine: the
  // test counts round trips, so it gives the command the time (bulk import at scale is its own work).
  const store = await openStore(t, { keyPrefix: 'bulk:', commandTimeoutMs: 30_000 });
  const total = 100_000;
  const before = store.calls();
  const started = performance.now();
  await store.devices.add(Array.from({ length: total }, (_, i) => deviceRecord(`dev-${i}`)));
  const addMs = performance.now() - started;
  t.equal(store.calls() - before, 1, 'one script');
  t.equal(await store.devices.count(), total);
  let listed = 0;
  let batches = 0;
  const listStart = store.calls();
  for await (const batch of store.devices.list()) {
    listed += batch.length;
    batches += 1;
  }
  t.equal(listed, total);
  t.equal(store.calls() - listStart, batches, 'one HSCAN per batch');
  t.comment(`add ${total}: ${addMs.toFixed(0)} ms; list: ${batches} batches`);
});

t.test('each call is the round trips calls() counts (MONITOR sees every command the store sends)', async (t) => {
  const store = await openStore(t, { keyPrefix: 'trips:' });
  const monitor = await admin.monitor();
  t.teardown(() => monitor.disconnect());
  const seen: string[][] = [];
  const waits = conditions();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    // Commands run by a script are listed too, as from "lua": they are not round trips.
    if (source !== 'lua') seen.push(args);
    waits.notify();
  });
  const marker = new Redis({ path: redis.socketPath });
  t.teardown(() => marker.quit());
  let markers = 0;
  /** The commands the store sent since the last call. Redis runs one command at a time, so once MONITOR shows the marker it has shown them all. */
  const sent = async (): Promise<string[]> => {
    markers += 1;
    const name = `marker-${markers}`;
    await marker.echo(name);
    await waits.until(() => seen.some((args) => args[1] === name), `MONITOR to show ${name}`);
    const upTo = seen.findIndex((args) => args[1] === name);
    const mine = seen.splice(0, upTo + 1).slice(0, -1);
    return mine.map((args) => args[0]!.toLowerCase());
  };
  await sent();
  const limiter = store.limits.limiter({ keyPrefix: 'trips', points: 100, durationSec: 60 });
  await store.keys.publish(publishedKey('k-old', 'verifying'));
  const calls: [string, () => Promise<unknown>][] = [
    ['devices.add', () => store.devices.add([deviceRecord('a'), deviceRecord('b')])],
    ['devices.get', () => store.devices.get('a')],
    ['devices.count', () => store.devices.count()],
    ['devices.remove', () => store.devices.remove('b')],
    ['onceIds.consume', () => store.onceIds.consume('jti', Math.floor(Date.now() / 1000) + 60)],
    ['revocations.revokeFamily', () => store.revocations.revokeFamily({ family: 'f', deviceId: 'a', atSec: 1, untilSec: 2e9 })],
    ['revocations.list', () => store.revocations.list(0)],
    ['keys.publish', () => store.keys.publish(publishedKey('k-new', 'active'))],
    ['keys.list', () => store.keys.list()],
    ['keys.retire', () => store.keys.retire('k-old', new Date().toISOString())],
    ['limiter.consume', () => limiter.consume('src')],
  ];
  await sent();
  for (const [name, call] of calls) {
    const before = store.calls();
    const started = performance.now();
    await call();
    const elapsedMs = performance.now() - started;
    const commands = await sent();
    t.equal(store.calls() - before, commands.length, `${name}: ${commands.join(', ')} (${elapsedMs.toFixed(2)} ms)`);
  }
});

t.test('redis+unix ?db=N: the store\'s keys land in that database', async (t) => {
  const store = await openStore(t, { url: `${redis.url}?db=3`, keyPrefix: 'db3:' });
  await store.devices.add([deviceRecord('in-db-3')]);
  const db3 = new Redis({ path: redis.socketPath, db: 3 });
  t.teardown(() => db3.quit());
  t.equal(await db3.hexists('db3:devices', 'in-db-3'), 1);
  t.equal(await admin.exists('db3:devices'), 0, 'not in db 0');
});
