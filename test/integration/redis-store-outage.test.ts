import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import t, { type Test } from 'tap';
import type { Store, StoreChange } from '../../gateway/src/store/ports.ts';
import { buildRedisStore, type RedisStoreOptions } from '../../gateway/src/store/redis/index.ts';
import { conditions } from '../helpers/condition.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { deviceRecord, tempDir } from '../helpers/store-fixtures.ts';

// Redis going away and coming back under a running store: every call fails at once with
// StoreUnavailableError (never a raw ioredis error, never a crash), the store says so once each
// way, reconnects by itself, and asks its listeners for a resync because the feed may have
// missed changes. A real redis-server, stopped and started again; events awaited, no sleeps.

const redis = await startRedis(t);

const COMMAND_TIMEOUT_MS = 1000;
const unavailable = { name: 'StoreUnavailableError', code: 'GW_ERR_STORE_UNAVAILABLE', maxAgeSec: 5 };

// Anything that escaped an event handler would land here (tap would also fail the file).
const escaped: unknown[] = [];
const keep = (error: unknown): void => {
  escaped.push(error);
};
process.on('uncaughtException', keep);
process.on('unhandledRejection', keep);
t.teardown(() => {
  process.off('uncaughtException', keep);
  process.off('unhandledRejection', keep);
});

interface LogLine {
  level: string;
  message: string;
  fields?: object;
}

async function openStore(t: Test, options: Partial<RedisStoreOptions> = {}) {
  const logs: LogLine[] = [];
  const events: string[] = [];
  const waits = conditions();
  const store = await buildRedisStore({
    url: redis.url, keyPrefix: 'outage:', connectTimeoutMs: 2000, commandTimeoutMs: COMMAND_TIMEOUT_MS,
    onLog: (level, message, fields) => {
      logs.push({ level, message, ...(fields === undefined ? {} : { fields }) });
      waits.notify();
    },
    ...options,
  });
  t.teardown(() => store.close());
  store.onAvailability((up) => {
    events.push(up ? 'up' : 'down');
    waits.notify();
  });
  store.subscribe((change: StoreChange) => {
    events.push(change.kind === 'resync' ? 'resync' : `${change.kind}`);
    waits.notify();
  });
  return { store, logs, events, until: waits.until };
}

/** Every port, once: each must reject with StoreUnavailableError. */
function everyCall(store: Store): [string, () => Promise<unknown>][] {
  const limiter = store.limits.limiter({ keyPrefix: 'outage-login', points: 5, durationSec: 60 });
  return [
    ['devices.get', () => store.devices.get('a')],
    ['devices.add', () => store.devices.add([deviceRecord('b')])],
    ['devices.remove', () => store.devices.remove('a')],
    ['devices.count', () => store.devices.count()],
    ['devices.list', async () => {
      for await (const _ of store.devices.list()) { /* drain */ }
    }],
    ['onceIds.consume', () => store.onceIds.consume('jti', Math.floor(Date.now() / 1000) + 60)],
    ['revocations.revokeFamily', () => store.revocations.revokeFamily({ family: 'f', deviceId: 'a', atSec: 1, untilSec: 2e9 })],
    ['revocations.list', () => store.revocations.list(0)],
    ['keys.list', () => store.keys.list()],
    ['keys.retire', () => store.keys.retire('k', '2026-11-24T00:00:00.000Z')],
    ['limiter.consume', () => limiter.consume('src')],
  ];
}

t.test('Redis stopped and started again: calls fail fast, availability and resync are reported, then all works', async (t) => {
  const { store, logs, events, until } = await openStore(t);
  const peer = await openStore(t);
  await store.devices.add([deviceRecord('a')]);
  await until(() => events.includes('device'), 'the store to hear its own add');
  events.length = 0;
  t.equal(store.available(), true);

  await redis.stop();
  await until(() => events.includes('down'), 'the store to report Redis down');
  t.equal(store.available(), false, 'not available while down');
  for (const [name, call] of everyCall(store)) {
    const started = performance.now();
    await t.rejects(call(), unavailable, `${name} rejects with StoreUnavailableError`);
    const elapsedMs = performance.now() - started;
    t.ok(elapsedMs < COMMAND_TIMEOUT_MS / 2, `${name} fails at once (${elapsedMs.toFixed(1)} ms), not after a timeout`);
  }
  t.same(events, ['down'], 'down reported once, however many calls failed');

  await redis.start();
  await until(() => events.includes('resync'), 'the store to come back and ask for a resync');
  t.same(events, ['down', 'up', 'resync'], 'up once, then a resync once the feed is subscribed again');
  t.equal(store.available(), true);

  // The restarted server kept what it had (its append-only file), and the store reads it again.
  t.same(await store.devices.get('a'), deviceRecord('a'), 'what was stored before the outage is there');
  await store.devices.add([deviceRecord('c')]);
  t.same(await store.devices.get('c'), deviceRecord('c'), 'commands work again');
  await until(() => peer.events.includes('resync'), 'the peer to resync too');
  await peer.store.devices.add([deviceRecord('from-peer')]);
  await until(() => events.filter((e) => e === 'device').length >= 2, 'the feed to carry the peer\'s change');
  t.equal(await store.devices.count(), 3, 'a (from before), c and the peer\'s device');

  t.same(logs.map((l) => [l.level, l.message]), [
    ['warn', 'store: redis is down; logins and refreshes answer 5.03 until it is back'],
    ['info', 'store: redis is back'],
  ], 'one line going down, one coming back');
  t.notMatch(JSON.stringify(logs), /password/i);
  t.same(escaped, [], 'nothing escaped an event handler');
});

t.test('only the feed\'s connection dropped: a resync, and no outage reported', async (t) => {
  const { store, events, until } = await openStore(t);
  const admin = new Redis({ path: redis.socketPath });
  t.teardown(() => admin.quit());
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
  await until(() => events.includes('resync'), 'the store to resubscribe and ask for a resync');
  t.same(events, ['resync'], 'commands were never down');
  await store.devices.add([deviceRecord('after-kill')]);
  await until(() => events.includes('device'), 'the feed to work again');
});

t.test('close while Redis is down resolves at once and stops reconnecting', async (t) => {
  const { store, events, until } = await openStore(t);
  await redis.stop();
  t.teardown(() => redis.start());
  await until(() => events.includes('down'), 'the store to report Redis down');
  const started = performance.now();
  await store.close();
  t.ok(performance.now() - started < 100, 'no wait for a server that is gone');
  // A reconnect timer left behind would keep this file's process alive past its tests (tap's timeout).
});

t.test('a Redis that stops answering (writes paused): a call fails after commandTimeoutMs with StoreUnavailableError', async (t) => {
  const { store } = await openStore(t, { commandTimeoutMs: 200 });
  const admin = new Redis({ path: redis.socketPath });
  t.teardown(() => admin.quit());
  // WRITE, not ALL: the admin connection's own UNPAUSE must not wait for the pause to end.
  await admin.call('CLIENT', 'PAUSE', '10000', 'WRITE');
  const started = performance.now();
  await t.rejects(store.onceIds.consume('paused', Math.floor(Date.now() / 1000) + 60), { ...unavailable, message: /timed out/ });
  const elapsedMs = performance.now() - started;
  t.ok(elapsedMs >= 190 && elapsedMs < 1000, `rejected after the command timeout (${elapsedMs.toFixed(0)} ms)`);
  t.equal(store.available(), true, 'a slow answer is not an outage: the connection is up');
  await admin.call('CLIENT', 'UNPAUSE');
  t.equal(await store.onceIds.consume('after-pause', Math.floor(Date.now() / 1000) + 60), true, 'answers again once Redis does');
});

t.test('Redis unreachable at start: opening rejects with StoreUnavailableError after connectTimeoutMs', async (t) => {
  const dir = await tempDir(t, 'gw-no-redis-');
  const started = performance.now();
  await t.rejects(buildRedisStore({ url: `redis+unix://${join(dir, 'none.sock')}`, keyPrefix: 'outage:', connectTimeoutMs: 300, commandTimeoutMs: 300 }),
    { ...unavailable, message: /did not answer within 300 ms/ });
  const elapsedMs = performance.now() - started;
  t.ok(elapsedMs >= 290 && elapsedMs < 1500, `after the connect timeout (${elapsedMs.toFixed(0)} ms)`);
});

t.test('Redis that comes up while the store is opening: opening waits for it and resolves', async (t) => {
  await redis.stop();
  const opening = openStore(t, { connectTimeoutMs: 8000 });
  await redis.start();
  const { store } = await opening;
  t.equal(store.available(), true);
  await store.devices.add([deviceRecord('opened-late')]);
  t.same(await store.devices.get('opened-late'), deviceRecord('opened-late'), 'and it answers');
});

t.test('a listener that throws, and a malformed message on the channel, crash nothing', async (t) => {
  const { store, logs, events, until } = await openStore(t);
  store.subscribe(() => {
    throw new Error('listener bug');
  });
  const admin = new Redis({ path: redis.socketPath });
  t.teardown(() => admin.quit());
  await admin.publish('outage:changes', 'not json');
  await admin.publish('outage:changes', JSON.stringify({ kind: 'device' }));
  await store.devices.add([deviceRecord('after')]);
  await until(() => events.includes('device'), 'the other listener to hear the add');
  t.match(logs, [
    { level: 'warn', message: /malformed message/ },
    { level: 'warn', message: /malformed message/ },
    { level: 'error', message: /listener failed/, fields: { error: /listener bug/ } },
  ]);
  t.same(escaped, []);
});
