import t, { type Test } from 'tap';
import { createDeviceView, type DeviceRecord, type Store, type StoreChange } from '../../gateway/src/store/index.ts';
import { oscoreContext } from '../contract/oscore-contract.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

// The device view's answer to "which device is this kid's": from what it holds, else from the
// store's index, remembering kids that are no device's (bounded, counted) until a device changes.
// The rest of the view is device-view.test.ts.

async function openStores(t: Test): Promise<{ store: Store; other: Store }> {
  const dir = await tempDir(t, 'gw-view-senders-');
  return { store: await openFileStore(t, dir), other: await openFileStore(t, dir) };
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
const deviceChange = (id: string) => (c: StoreChange) => c.kind === 'device' && c.id === id;

const withContext = (id: string, sender: string): DeviceRecord => deviceRecord(id, { oscore: oscoreContext(sender) });

t.test('a kid finds its device through the store once, then from the view at no store call', async (t) => {
  const { store } = await openStores(t);
  await store.devices.add([withContext('dev-1', '01'), deviceRecord('plain')]);
  const view = createDeviceView(store, { maxEntries: 1000 });
  t.equal(view.peekSender('01'), undefined, 'nothing held before anyone asks');
  t.equal((await view.getBySender('01'))?.id, 'dev-1');
  const calls = store.calls();
  t.equal(view.peekSender('01')?.id, 'dev-1', 'held now: peekSender answers');
  t.equal((await view.getBySender('01'))?.id, 'dev-1');
  t.equal(view.peek('dev-1')?.oscore?.senderId, '01', 'the same record as by its id');
  t.equal(store.calls(), calls, 'no store call once held');
  await view.get('plain');
  t.equal(view.peekSender('00'), undefined, 'a held device without a context answers no kid');
  const afterPlain = store.calls();
  for (const bad of ['', '0G', 'AB', '001122334455667788', 'xyz']) t.equal(await view.getBySender(bad), undefined, `${JSON.stringify(bad)} is no Sender ID`);
  t.equal(store.calls(), afterPlain, 'and those cost no store call either');
  view.close();
});

t.test('a kid that is no device\'s is remembered, bounded and counted, until a device changes', async (t) => {
  const { store, other } = await openStores(t);
  let evicted = 0;
  const view = createDeviceView(store, { maxEntries: 1000, maxAbsentSenders: 2, onEvicted: () => { evicted += 1; } });
  t.equal(await view.getBySender('2a'), undefined);
  const calls = store.calls();
  t.equal(await view.getBySender('2a'), undefined);
  t.equal(store.calls(), calls, 'the second lookup is answered from memory');
  t.equal(view.size(), 1, 'and counts in the view\'s size');

  const heard = nextChange(store, deviceChange('late'));
  await other.devices.add([withContext('late', '2a')]);
  await heard;
  t.equal((await view.getBySender('2a'))?.id, 'late', 'a device added meanwhile (by another process) is found');

  for (const kid of ['b1', 'b2', 'b3']) await view.getBySender(kid);
  t.equal(evicted, 1, 'the third unknown kid pushed out the first, counted');
  const before = store.calls();
  await view.getBySender('b3');
  t.equal(store.calls(), before, 'the newest is still remembered');
  await view.getBySender('b1');
  t.ok(store.calls() > before, 'the pushed-out one costs a store call again');
  view.close();
});

t.test('a rotated or removed context leaves the view at once; the next lookup reads the new one', async (t) => {
  const { store, other } = await openStores(t);
  const record = withContext('dev-r', '03');
  await store.devices.add([record]);
  const view = createDeviceView(store, { maxEntries: 1000 });
  t.equal((await view.getBySender('03'))?.oscore?.generation, record.oscore!.generation);

  const rotated = { ...record, oscore: oscoreContext('03') };
  let heard = nextChange(store, deviceChange('dev-r'));
  t.equal(await other.devices.replace(record, rotated), true);
  await heard;
  t.equal(view.peekSender('03'), undefined, 'the rotated-out context is dropped on the change');
  t.equal((await view.getBySender('03'))?.oscore?.generation, rotated.oscore.generation, 'and the new one read');

  const moved = { ...rotated, oscore: { ...rotated.oscore, senderId: '04' } };
  heard = nextChange(store, deviceChange('dev-r'));
  t.equal(await other.devices.replace(rotated, moved), true);
  await heard;
  t.equal(await view.getBySender('03'), undefined, 'its old Sender ID is no device\'s');
  t.equal((await view.getBySender('04'))?.id, 'dev-r');

  heard = nextChange(store, deviceChange('dev-r'));
  await other.devices.remove('dev-r');
  await heard;
  t.equal(view.peekSender('04'), undefined, 'removed: dropped');
  t.equal(await view.getBySender('04'), undefined, 'and no device\'s');
  view.close();
});

t.test('evicting a held device drops its kid too', async (t) => {
  const { store } = await openStores(t);
  await store.devices.add([withContext('e1', '11'), withContext('e2', '12')]);
  const view = createDeviceView(store, { maxEntries: 1 });
  await view.getBySender('11');
  await view.getBySender('12');
  t.equal(view.peekSender('11'), undefined, 'e1 was evicted, and with it its kid');
  t.equal(view.peekSender('12')?.id, 'e2');
  t.equal(view.size(), 1);
  view.close();
});
