import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { AdminError } from '../../gateway/src/errors.ts';
import { buildFileStore, type DeviceRecord } from '../../gateway/src/store/index.ts';

const record = (id: string): DeviceRecord => ({ id, secretHash: 'h', scopes: ['telemetry:write'], createdAt: new Date(0).toISOString() });

t.test('devices: all or none, duplicates refused, removal reported', async (t) => {
  const dir = t.testdir();
  const store = await buildFileStore(dir);
  await store.addDevices([record('a'), record('b')]);
  await t.rejects(store.addDevices([record('c'), record('a')]), AdminError, 'a duplicate refuses the whole batch');
  t.same(store.listDevices().map((d) => d.id), ['a', 'b'], 'c was not added either');
  t.equal(await store.removeDevice('a'), true);
  t.equal(await store.removeDevice('a'), false, 'already gone');
  const reopened = await buildFileStore(dir);
  t.same(reopened.listDevices().map((d) => d.id), ['b'], 'persisted');
});

t.test('reload sees another process\'s change and tells listeners once', async (t) => {
  const dir = t.testdir();
  const gateway = await buildFileStore(dir);
  const cli = await buildFileStore(dir);
  let changes = 0;
  gateway.onChange(() => { changes += 1; });
  await cli.addDevices([record('new')]);
  t.equal(gateway.getDevice('new'), undefined, 'not seen before a reload');
  await gateway.reload();
  t.ok(gateway.getDevice('new'));
  await gateway.reload();
  t.equal(changes, 1, 'a reload without change tells nobody');
});

t.test('one-use ids: spent once, remembered across a restart, forgotten after expiry', async (t) => {
  const dir = t.testdir();
  let nowMs = 1_000_000_000;
  const store = await buildFileStore(dir, () => nowMs);
  t.equal(await store.consumeOnce('r1', 1_000_100), true);
  t.equal(await store.consumeOnce('r1', 1_000_100), false, 'second use refused');
  const restarted = await buildFileStore(dir, () => nowMs);
  t.equal(await restarted.consumeOnce('r1', 1_000_100), false, 'still spent after a restart');
  nowMs = 1_000_101_000;
  t.equal(await restarted.consumeOnce('r1', 1_000_200), true, 'forgotten once expired');
});

t.test('the spent log is appended to, and compacted when mostly expired', async (t) => {
  const dir = t.testdir();
  let nowMs = 1_000_000_000;
  const store = await buildFileStore(dir, () => nowMs);
  for (let i = 0; i < 1200; i += 1) await store.consumeOnce(`old-${i}`, 1_000_010);
  const file = join(dir, 'spent-tokens.log');
  t.equal((await readFile(file, 'utf8')).trim().split('\n').length, 1200, 'one line per spent id');
  nowMs = 1_000_020_000;
  await store.consumeOnce('live', 1_000_100);
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  t.same(lines, ['live 1000100'], 'expired ids dropped from the file');
  t.equal(await store.consumeOnce('live', 1_000_100), false);
});
