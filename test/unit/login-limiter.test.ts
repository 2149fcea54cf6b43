import t from 'tap';
import { createLoginLimiter } from '../../gateway/src/auth/limits/login-limiter.ts';

// Failed logins per source and per device id, one-minute windows of the injected clock, on
// rate-limiter-flexible's memory store; bounded by count.

function limiter(maxFailuresPerMinute = 3, maxEntries?: number) {
  // 15.5 s into a window, so Max-Age has a known value: 44.5 s left, rounded up.
  let now = 1_000 * 60_000 + 15_500;
  let evicted = 0;
  const logins = createLoginLimiter(maxFailuresPerMinute, () => now, { maxEntries, onEvicted: () => { evicted += 1; } });
  return { logins, advanceMs: (ms: number) => { now += ms; }, evicted: () => evicted };
}

async function failures(logins: ReturnType<typeof limiter>['logins'], n: number, deviceId: string | ((i: number) => string),
  address: string | ((i: number) => string)) {
  const results: (number | undefined)[] = [];
  for (let i = 0; i < n; i += 1) {
    results.push(await logins.recordFailure(typeof deviceId === 'string' ? deviceId : deviceId(i),
      typeof address === 'string' ? address : address(i)));
  }
  return results;
}

t.test('a source gets its budget of failures, then the seconds until the window ends', async (t) => {
  const { logins } = limiter(3);
  t.same(await failures(logins, 5, (i) => `dev-${i}`, '192.0.2.1'), [undefined, undefined, undefined, 45, 45],
    'three failures pass, the fourth and later wait 45 s');
  t.equal(await logins.recordFailure('dev-x', '192.0.2.2'), undefined, 'another source is not affected');
});

t.test('a device id gets its budget across sources', async (t) => {
  const { logins } = limiter(3);
  t.same(await failures(logins, 4, 'sensor-1', (i) => `192.0.2.${i + 1}`), [undefined, undefined, undefined, 45],
    'the fourth failure in its name is limited, from a fresh source');
  t.equal(await logins.recordFailure('sensor-2', '192.0.2.50'), undefined, 'another device is not affected');
});

t.test('the budget frees when the window ends, exactly when Max-Age said', async (t) => {
  const { logins, advanceMs } = limiter(1);
  await logins.recordFailure('sensor-1', '192.0.2.1');
  const waitSec = await logins.recordFailure('sensor-1', '192.0.2.1');
  t.equal(waitSec, 45);
  advanceMs(waitSec! * 1000 - 1_000);
  t.equal(await logins.recordFailure('sensor-1', '192.0.2.1'), 1, 'a second before: still limited, 1 s left');
  advanceMs(1_000);
  t.equal(await logins.recordFailure('sensor-1', '192.0.2.1'), undefined, 'at Max-Age: free again');
});

t.test('keys of past windows are dropped: the table holds one window', async (t) => {
  const { logins, advanceMs, evicted } = limiter(3);
  await failures(logins, 2, (i) => `dev-${i}`, (i) => `192.0.2.${i + 1}`);
  t.equal(logins.size(), 4, 'two sources and two device ids');
  advanceMs(60_000);
  t.equal(logins.size(), 0, 'a window later: nothing held');
  await logins.recordFailure('dev-9', '192.0.2.9');
  t.equal(logins.size(), 2);
  t.equal(evicted(), 0, 'dropping a past window is no eviction');
});

t.test('one source cannot fill the table with unique device ids: once limited, its ids are not counted', async (t) => {
  const { logins, evicted } = limiter(10, 1_000);
  const results = await failures(logins, 5_000, (i) => `unique-${i}-${'x'.repeat(50)}`, '192.0.2.1');
  t.equal(results.filter((r) => r === undefined).length, 10, 'ten failures pass, the rest are limited');
  t.equal(logins.size(), 11, 'its source and the ten ids it failed with before the limit');
  t.equal(evicted(), 0);
});

t.test('many sources with unique ids: the table stays at its bound, least recently failed out first', async (t) => {
  const { logins, evicted } = limiter(3, 100);
  // The attacker's own source keeps failing between the others: it stays the most recent key.
  for (let i = 0; i < 3; i += 1) await logins.recordFailure(`probe-${i}`, '198.51.100.7');
  let largest = 0;
  for (let i = 0; i < 500; i += 1) {
    await logins.recordFailure(`unique-${i}`, `10.0.${i >> 8}.${i & 255}`);
    largest = Math.max(largest, logins.size());
    if (i % 40 === 0) await logins.recordFailure(`probe-x${i}`, '198.51.100.7');
  }
  t.equal(largest, 100, 'never above the bound');
  t.equal(logins.size(), 100, 'full at the end');
  t.ok(evicted() >= 900, `evictions counted (${evicted()})`);
  t.ok((await logins.recordFailure('probe-last', '198.51.100.7')) !== undefined,
    'the busy source kept its count through the flood: still limited');
});

t.test('IPv6: one /64 is one source; IPv4-mapped addresses are their IPv4 source', async (t) => {
  const { logins } = limiter(2);
  t.same(await failures(logins, 3, (i) => `dev-${i}`, (i) => `2001:db8:1:2::${i + 1}`), [undefined, undefined, 45],
    'three addresses of one /64 share a budget');
  t.equal(await logins.recordFailure('dev-a', '2001:db8:1:3::1'), undefined, 'the next /64 has its own');
  t.same(await failures(logins, 3, (i) => `v4-${i}`, (i) => (i % 2 === 0 ? '192.0.2.77' : '::ffff:192.0.2.77')),
    [undefined, undefined, 45], 'mapped and plain IPv4 share a budget');
});

t.test('misuse throws TypeError', async (t) => {
  t.throws(() => createLoginLimiter(0, Date.now), TypeError);
  t.throws(() => createLoginLimiter(10, Date.now, { maxEntries: 1 }), TypeError);
});
