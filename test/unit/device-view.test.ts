import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildFileStore } from '../../gateway/src/store/file/index.ts';
import { createDeviceView, type DeviceRecord, type Store, type StoreChange } from '../../gateway/src/store/index.ts';

const record = (id: string): DeviceRecord => ({
  id, secretHash: 'h', scopes: ['telemetry:write'], createdAt: '2026-11-23T00:00:00.000Z', recordId: `r-${id}`,
});

async function openStores(t: Test): Promise<{ store: Store; other: Store }> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-view-'));
  const store = await buildFileStore(dir);
  const other = await buildFileStore(dir);
  t.teardown(async () => {
    await store.close();
    await other.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { store, other };
}

function nextChange(store: Store, match: (change: StoreChange) => boolean): Promise<void> {
  return new Promise((resolve) => {
    const off = store.subscribe((change) => {
      if (match(change)) {
        off();
        resolve();
      }
    });
  });
}

t.test('holds what it was asked for; a cached lookup costs no store call', async (t) => {
  const { store } = await openStores(t);
  await store.devices.add([record('a')]);
  const view = createDeviceView(store, { maxEntries: 1000 });
  t.equal(view.peek('a'), undefined, 'nothing held before anyone asks');
  t.equal((await view.get('a'))?.id, 'a');
  const calls = store.calls();
  t.equal(view.peek('a')?.id, 'a');
  t.equal((await view.get('a'))?.id, 'a');
  t.equal(store.calls(), calls, 'no store call once held');
  t.equal(await view.get('nobody'), undefined);
  t.equal(view.size(), 1, 'an unknown id is never held');
  view.close();
});

t.test('a change made by another process drops the device; the next get reads it again', async (t) => {
  const { store, other } = await openStores(t);
  await other.devices.add([record('a')]);
  const view = createDeviceView(store, { maxEntries: 1000 });
  await view.get('a');
  const heard = nextChange(store, (c) => c.kind === 'device' && c.id === 'a');
  await other.devices.remove('a');
  await heard;
  t.equal(view.peek('a'), undefined, 'dropped on the change');
  t.equal(await view.get('a'), undefined, 'and gone from the store');
  view.close();
});

t.test('bounded: the least recently used goes first (to within half the view), counted', async (t) => {
  const { store } = await openStores(t);
  await store.devices.add(['a', 'b', 'c', 'd', 'e', 'f'].map(record));
  let evicted = 0;
  const view = createDeviceView(store, { maxEntries: 4, onEvicted: () => { evicted += 1; } });
  for (const id of ['a', 'b', 'c', 'd']) await view.get(id);
  view.peek('a'); // in the older half: moved to the back
  await view.get('e');
  t.equal(view.size(), 4);
  t.equal(evicted, 1);
  t.equal(view.peek('b'), undefined, 'b, the least recently used, went');
  t.ok(view.peek('a') !== undefined, 'a, used in the older half, stayed');
  view.peek('e'); // placed last: a hit costs no move
  await view.get('f');
  t.equal(view.peek('c'), undefined, 'then c');
  t.same(['a', 'd', 'e', 'f'].map((id) => view.peek(id)?.id), ['a', 'd', 'e', 'f']);
  view.close();
});

t.test('a read under way when a change arrives is not kept (it may be stale)', async (t) => {
  const { store } = await openStores(t);
  await store.devices.add([record('a')]);
  const view = createDeviceView(store, { maxEntries: 1000 });
  const reading = view.get('a');
  const heard = nextChange(store, (c) => c.kind === 'device' && c.id === 'a');
  await store.devices.remove('a');
  await heard;
  await reading;
  t.equal(view.peek('a'), undefined, 'the read that raced the removal left nothing behind');
  view.close();
});

t.test('an id is remembered absent only when the caller authenticated it; adding the device forgets it; bounded', async (t) => {
  const { store, other } = await openStores(t);
  let evicted = 0;
  const view = createDeviceView(store, { maxEntries: 1000, maxAbsentEntries: 2, onEvicted: () => { evicted += 1; } });
  t.equal(await view.get('ghost'), undefined);
  t.equal(view.absent('ghost'), false, 'a plain lookup (an id a sender chose) leaves nothing behind');
  t.equal(view.size(), 0);

  t.equal(await view.get('ghost', { rememberAbsent: true }), undefined);
  t.equal(view.absent('ghost'), true, 'an authenticated lookup is remembered');
  const calls = store.calls();
  t.equal(await view.get('ghost'), undefined);
  t.equal(store.calls(), calls, 'and answered from memory');

  const heard = nextChange(store, (c) => c.kind === 'device' && c.id === 'ghost');
  await other.devices.add([record('ghost')]);
  await heard;
  t.equal(view.absent('ghost'), false, 'the device added by another process is no longer absent');
  t.equal((await view.get('ghost'))?.id, 'ghost');

  for (const id of ['x', 'y', 'z']) await view.get(id, { rememberAbsent: true });
  t.equal(evicted, 1, 'the third absent id pushed out the first, counted');
  t.same(['x', 'y', 'z'].map((id) => view.absent(id)), [false, true, true]);
  view.close();
});
