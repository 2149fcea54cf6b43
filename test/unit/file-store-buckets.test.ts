import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { AdminError } from '../../gateway/src/errors.ts';
import { bucketOf, buildFileStore } from '../../gateway/src/store/file/index.ts';
import { bucketFile, formatBucket, forEachLimited, groupByBucket } from '../../gateway/src/store/file/device-buckets.ts';
import type { DeviceRecord, Store } from '../../gateway/src/store/ports.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

/** A state directory that does not exist yet: the store makes it, so its mode is the store's doing. */
async function stateDir(t: Test): Promise<string> {
  return join(await tempDir(t), 'state');
}

async function listAll(store: Store): Promise<DeviceRecord[][]> {
  const batches: DeviceRecord[][] = [];
  for await (const batch of store.devices.list()) batches.push(batch);
  return batches;
}

t.test('the bucket of an id is fixed: every process must find a device where another put it', async (t) => {
  t.equal(bucketOf('sim-0000001', 4096), bucketOf('sim-0000001', 4096));
  // Pinned (FNV-1a of 'a' is 0xe40c292c; folded, 0xe40ccd20; mod 4096, 0xd20): a change here moves
  // every device of every existing state directory.
  t.same(['a', 'sim-0000001', 'device-42'].map((id) => bucketOf(id, 4096)), [3360, 219, 639]);
  const counts = new Array<number>(4096).fill(0);
  for (let i = 1; i <= 200_000; i += 1) counts[bucketOf(`sim-${String(i).padStart(7, '0')}`, 4096)]! += 1;
  t.ok(Math.max(...counts) < 2 * (200_000 / 4096), 'sequential ids spread evenly (no bucket twice the mean)');
  t.equal(bucketFile('/s/devices', 10), '/s/devices/00a.json');
  t.same(JSON.parse(formatBucket([deviceRecord('x')])), [deviceRecord('x')], 'a bucket is a JSON array');
  const { groups } = await groupByBucket([deviceRecord('a'), deviceRecord('b'), deviceRecord('a2')], 4096);
  t.same([...groups.values()].flat().map((r) => r.id).sort(), ['a', 'a2', 'b']);
});

t.test('forEachLimited: no new item starts after a failure, and it waits for those under way', async (t) => {
  const started: number[] = [];
  let running = 0;
  let most = 0;
  await t.rejects(forEachLimited([1, 2, 3, 4, 5, 6, 7, 8], 2, async (n) => {
    started.push(n);
    running += 1;
    most = Math.max(most, running);
    await new Promise((resolve) => setImmediate(resolve));
    running -= 1;
    if (n === 3) throw new Error('disk full');
  }), /disk full/);
  t.equal(running, 0, 'nothing under way after it rejects');
  t.equal(most, 2, 'at most two at once');
  t.ok(started.length < 8, 'items after the failure never started');
});

t.test('add, get, remove, count: a device lives in one bucket file, 0600, in a 0700 directory', async (t) => {
  const dir = await stateDir(t);
  const store = await openFileStore(t, dir);
  t.equal((await stat(dir)).mode & 0o777, 0o700, 'the state directory is made owner-only');
  await store.devices.add([deviceRecord('a'), deviceRecord('b', { recordId: undefined }), deviceRecord('c')]);
  t.same(await store.devices.get('a'), deviceRecord('a'), 'every field kept');
  t.equal(await store.devices.get('nope'), undefined);
  t.equal(await store.devices.count(), 3);
  const file = bucketFile(join(dir, 'devices'), bucketOf('a', 4096));
  t.equal((await stat(file)).mode & 0o777, 0o600, 'bucket files are owner-only');
  t.ok((JSON.parse(await readFile(file, 'utf8')) as DeviceRecord[]).some((r) => r.id === 'a'));
  t.equal(await store.devices.remove('a'), true);
  t.equal(await store.devices.remove('a'), false, 'already gone');
  t.equal(await store.devices.get('a'), undefined);
  t.equal(await store.devices.count(), 2);
  const reopened = await openFileStore(t, dir);
  t.same((await listAll(reopened)).flat().map((r) => r.id).sort(), ['b', 'c'], 'persisted');
  t.equal(await reopened.devices.count(), 2);
});

t.test('a duplicate refuses the whole batch, whether it exists or repeats within the batch', async (t) => {
  const store = await openFileStore(t, await stateDir(t));
  await store.devices.add([deviceRecord('a')]);
  const existing = store.devices.add([deviceRecord('new-1'), deviceRecord('new-2'), deviceRecord('a')]);
  await t.rejects(existing, AdminError);
  await existing.catch((err: AdminError) => t.equal(err.code, 'GW_ERR_ADMIN_DUPLICATE_DEVICE'));
  await t.rejects(store.devices.add([deviceRecord('x'), deviceRecord('x')]), { code: 'GW_ERR_ADMIN_DUPLICATE_DEVICE' });
  t.equal(await store.devices.get('new-1'), undefined, 'nothing of the refused batch was added');
  t.equal(await store.devices.get('x'), undefined);
  t.equal(await store.devices.count(), 1);
  await t.rejects(store.devices.add([{ ...deviceRecord('y'), id: '' }]), TypeError, 'an empty id is caller misuse');
});

t.test('a bulk add groups by bucket; list() yields every device in batches of at most maxBatchDevices', async (t) => {
  const dir = await stateDir(t);
  const store = await openFileStore(t, dir, { maxBatchDevices: 300 });
  const fleet = Array.from({ length: 1200 }, (_, i) => deviceRecord(`sim-${i}`));
  const before = store.calls();
  await store.devices.add(fleet);
  const buckets = (await readdir(join(dir, 'devices'))).filter((name) => name !== 'meta.json');
  t.ok(store.calls() - before <= 2 * buckets.length + 4, 'one read and one write per bucket touched, plus meta and journal');
  t.equal(await store.devices.count(), 1200);
  const batches = await listAll(store);
  t.ok(batches.every((batch) => batch.length <= 300 && batch.length > 0));
  const ids = batches.flat().map((r) => r.id);
  t.equal(ids.length, 1200);
  t.equal(new Set(ids).size, 1200, 'each device once');
  await t.rejects(buildFileStore(dir, { maxBatchDevices: 0 }), TypeError);
});

t.test('a looser state directory is tightened and reported; calls() counts file operations', async (t) => {
  const dir = await stateDir(t);
  await mkdir(dir, { mode: 0o755 });
  await chmod(dir, 0o755);
  const changes: number[] = [];
  const store = await openFileStore(t, dir, { onTightened: (change) => changes.push(change.fromMode) });
  t.same(changes, [0o755]);
  t.equal((await stat(dir)).mode & 0o777, 0o700);
  const before = store.calls();
  await store.devices.get('a');
  t.equal(store.calls(), before + 1, 'a lookup reads one bucket');
  t.equal(store.available(), true);
  t.equal(store.kind, 'file');
});
