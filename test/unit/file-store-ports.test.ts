import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { AdminError } from '../../gateway/src/errors.ts';
import { REVOCATIONS_COMPACT_BYTES } from '../../gateway/src/store/file/revocations-file.ts';
import type { FamilyRevocation } from '../../gateway/src/store/ports.ts';
import { openFileStore, publishedKey, tempDir } from '../helpers/store-fixtures.ts';

const DAY_MS = 24 * 3600 * 1000;

t.test('one-time ids: spent once, remembered across a restart, forgotten after expiry', async (t) => {
  const dir = await tempDir(t);
  let nowMs = 1_000_000_000;
  const store = await openFileStore(t, dir, { nowMs: () => nowMs });
  t.equal(await store.onceIds.consume('r1', 1_000_100), true);
  t.equal(await store.onceIds.consume('r1', 1_000_100), false, 'second use refused');
  const results = await Promise.all([store.onceIds.consume('r2', 1_000_100), store.onceIds.consume('r2', 1_000_100)]);
  t.same(results.sort(), [false, true], 'two at once: exactly one wins');
  const restarted = await openFileStore(t, dir, { nowMs: () => nowMs });
  t.equal(await restarted.onceIds.consume('r1', 1_000_100), false, 'still spent after a restart');
  nowMs = 1_000_101_000;
  t.equal(await restarted.onceIds.consume('r1', 1_000_200), true, 'forgotten once expired');
  await t.rejects(store.onceIds.consume('has space', 1), TypeError);
  t.equal((await readFile(join(dir, 'spent-tokens.log'), 'utf8')).split('\n').filter(Boolean).length, 3, 'one line per spend');
});

t.test('revocations: listed until they run out, one per family, pruned when the file is compacted', async (t) => {
  const dir = await tempDir(t);
  let nowMs = 1_000_000_000;
  const store = await openFileStore(t, dir, { nowMs: () => nowMs });
  const revocation: FamilyRevocation = { family: 'f1', deviceId: 'd1', atSec: 1_000_000, untilSec: 1_000_600 };
  await store.revocations.revokeFamily(revocation);
  await store.revocations.revokeFamily({ ...revocation, untilSec: 1_000_900 });
  t.same(await store.revocations.list(1_000_000), [{ ...revocation, untilSec: 1_000_900 }], 'the latest entry of a family');
  t.same(await store.revocations.list(1_000_900), [], 'gone once untilSec is reached');
  await t.rejects(store.revocations.revokeFamily({ ...revocation, untilSec: Number.NaN }), TypeError);

  const file = join(dir, 'revocations.log');
  const expired = Array.from({ length: 2000 }, (_, i) => JSON.stringify({ family: `old-${i}`, deviceId: 'd', atSec: 1, untilSec: 2 })).join('\n');
  await writeFile(file, `${expired}\n${JSON.stringify({ ...revocation, untilSec: 1_000_900 })}\n`);
  t.ok((await stat(file)).size > REVOCATIONS_COMPACT_BYTES);
  nowMs = 1_000_100_000;
  await store.revocations.revokeFamily({ family: 'f2', deviceId: 'd2', atSec: 1_000_100, untilSec: 1_000_700 });
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  t.same(lines.map((line) => (JSON.parse(line) as FamilyRevocation).family), ['f1', 'f2'], 'expired entries pruned');
});

t.test('keys: publish upserts by kid; retire only a verifying key; retired keys pruned after 7 days', async (t) => {
  const dir = await tempDir(t);
  let nowMs = Date.parse('2026-02-01T00:00:00Z');
  const store = await openFileStore(t, dir, { nowMs: () => nowMs });
  await store.keys.publish(publishedKey('k1', 'active'));
  await store.keys.publish(publishedKey('k2', 'active'));
  await store.keys.publish({ ...publishedKey('k1', 'verifying'), verifyUntil: '2026-02-08T00:00:00Z' });
  t.same((await store.keys.list()).map((k) => [k.kid, k.state]), [['k1', 'verifying'], ['k2', 'active']]);

  const refused = store.keys.retire('k2', '2026-02-01T00:00:00Z');
  await t.rejects(refused, AdminError);
  await refused.catch((err: AdminError) => t.equal(err.code, 'GW_ERR_ADMIN_ONLY_ACTIVE_KEY'));
  t.equal(await store.keys.retire('nope', '2026-02-01T00:00:00Z'), false, 'unknown kid');
  t.equal(await store.keys.retire('k1', '2026-02-01T00:00:00.000Z'), true);
  t.equal(await store.keys.retire('k1', '2026-02-01T00:00:00.000Z'), false, 'already retired');
  const retired = (await store.keys.list()).find((k) => k.kid === 'k1');
  t.equal(retired?.state, 'retired');
  t.equal(retired?.retiredAt, '2026-02-01T00:00:00.000Z');
  t.equal((await stat(join(dir, 'public-keys.json'))).mode & 0o777, 0o600);

  nowMs += 7 * DAY_MS + 1000;
  t.same((await store.keys.list()).map((k) => k.kid), ['k2'], 'retired a week ago: pruned');
  await t.rejects(store.keys.publish({ ...publishedKey('', 'active') }), TypeError);
});

t.test('limits, availability, calls and close', async (t) => {
  const store = await openFileStore(t, await tempDir(t), { nowMs: Date.now });
  const limiter = store.limits.limiter({ keyPrefix: 'login', points: 2, durationSec: 60 });
  await limiter.consume('src');
  await limiter.consume('src');
  await t.rejects(limiter.consume('src'), 'the third point is refused');
  await store.limits.limiter({ keyPrefix: 'other', points: 1, durationSec: 60 }).consume('src');
  t.equal(store.available(), true);
  let told = 0;
  store.onAvailability(() => { told += 1; })();
  t.equal(told, 0);
  const before = store.calls();
  await limiter.get('src');
  t.equal(store.calls(), before, 'a limiter costs no store call');
  await store.devices.count();
  t.equal(store.calls(), before + 1, 'a count reads one small file');
  await store.close();
  await store.close();
  await t.rejects(store.devices.add([{ id: 'late', secretHash: 'h', scopes: [], createdAt: 'now' }]), TypeError, 'a closed store takes no change');
});
