import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ConfigError } from '../../gateway/src/errors.ts';
import { bucketOf, buildFileStore } from '../../gateway/src/store/file/index.ts';
import { bucketFile, formatBucket } from '../../gateway/src/store/file/device-buckets.ts';
import { LOCK_FILE } from '../../gateway/src/store/file/state-lock.ts';
import type { Store, StoreChange } from '../../gateway/src/store/ports.ts';
import { deviceRecord, openFileStore, tempDir } from '../helpers/store-fixtures.ts';

const exists = (file: string) => stat(file).then(() => true, () => false);

function nextResync(store: Store): Promise<void> {
  return new Promise((resolve) => {
    const off = store.subscribe((change: StoreChange) => {
      if (change.kind !== 'resync') return;
      off();
      resolve();
    });
  });
}

t.test('an old devices.json moves into buckets on open, every field kept, and is renamed aside', async (t) => {
  const dir = await tempDir(t);
  const { recordId: _, ...legacy } = deviceRecord('legacy');
  const devices = [deviceRecord('a'), deviceRecord('b', { scopes: ['x:read', 'y:write'] }), legacy];
  const old = JSON.stringify({ version: 1, devices });
  await writeFile(join(dir, 'devices.json'), old, { mode: 0o600 });
  const store = await openFileStore(t, dir);
  t.notOk(await exists(join(dir, 'devices.json')), 'the old file is gone from its name');
  t.equal(await readFile(join(dir, 'devices.json.migrated'), 'utf8'), old, 'and kept, unchanged, beside');
  t.equal(await store.devices.count(), 3);
  for (const device of devices) t.strictSame(await store.devices.get(device.id), device, `${device.id} intact`);
  t.notOk('recordId' in (await store.devices.get('legacy'))!, 'a legacy record stays without recordId');
  const again = await openFileStore(t, dir);
  t.equal(await again.devices.count(), 3, 'a second open migrates nothing more');
});

t.test('a migration cut short runs again without doubling a device', async (t) => {
  const dir = await tempDir(t);
  const devicesDir = join(dir, 'devices');
  await mkdir(devicesDir, { recursive: true });
  // The first run wrote a's bucket, then died before renaming devices.json.
  await writeFile(bucketFile(devicesDir, bucketOf('a', 4096)), formatBucket([deviceRecord('a')]));
  await writeFile(join(dir, 'devices.json'), JSON.stringify({ version: 1, devices: [deviceRecord('a'), deviceRecord('b')] }));
  const store = await openFileStore(t, dir);
  t.equal(await store.devices.count(), 2);
  const ids: string[] = [];
  for await (const batch of store.devices.list()) ids.push(...batch.map((d) => d.id));
  t.same(ids.sort(), ['a', 'b']);
});

t.test('a devices.json this gateway does not know is refused, not guessed at', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'devices.json'), JSON.stringify({ version: 9, things: [] }));
  await t.rejects(buildFileStore(dir), ConfigError);
  t.ok(await exists(join(dir, 'devices.json')), 'left where it was');
});

t.test('after a writer died holding the lock, the next holder recounts and readers resync', async (t) => {
  const dir = await tempDir(t);
  const reader = await openFileStore(t, dir);
  await reader.devices.add([deviceRecord('a'), deviceRecord('b')]);
  // What a writer that died halfway leaves: a bucket changed, the count not, a temporary file, its lock.
  const devicesDir = join(dir, 'devices');
  await writeFile(bucketFile(devicesDir, bucketOf('c', 4096)), formatBucket([deviceRecord('c')]));
  await writeFile(join(devicesDir, '123.json.abcdef.tmp'), '[');
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 1, host: hostname(), token: 'dead' }));
  const resynced = nextResync(reader);
  const next = await openFileStore(t, dir);
  await resynced;
  t.equal(await next.devices.count(), 3, 'recounted');
  t.notOk((await readdir(devicesDir)).some((name) => name.endsWith('.tmp')), 'its temporary file removed');
});

t.test('a count marked dirty by a failed change is recounted by the next writer', async (t) => {
  const dir = await tempDir(t);
  const store = await openFileStore(t, dir);
  await store.devices.add([deviceRecord('a')]);
  const metaFile = join(dir, 'devices', 'meta.json');
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>;
  await writeFile(metaFile, JSON.stringify({ ...meta, count: 40, dirty: true }));
  await store.devices.add([deviceRecord('b')]);
  t.equal(await store.devices.count(), 2);
});
