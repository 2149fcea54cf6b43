import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError } from '../../gateway/src/errors.ts';
import { bucketOf, buildFileStore } from '../../gateway/src/store/file/index.ts';
import { bucketFile, formatBucket } from '../../gateway/src/store/file/device-buckets.ts';
import { LOCK_FILE } from '../../gateway/src/store/file/state-lock.ts';
import type { DeviceRecord, Store, StoreChange } from '../../gateway/src/store/ports.ts';

const record = (id: string, extra: Partial<DeviceRecord> = {}): DeviceRecord =>
  ({ id, secretHash: `hash-${id}`, scopes: ['telemetry:write'], createdAt: '2025-06-01T00:00:00.000Z', recordId: `rid-${id}`, ...extra });

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'file-store-migration-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function open(t: Test, dir: string): Promise<Store> {
  const store = await buildFileStore(dir);
  t.teardown(() => store.close());
  return store;
}

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
  const { recordId: _, ...legacy } = record('legacy');
  const devices = [record('a'), record('b', { scopes: ['x:read', 'y:write'] }), legacy];
  const old = JSON.stringify({ version: 1, devices });
  await writeFile(join(dir, 'devices.json'), old, { mode: 0o600 });
  const store = await open(t, dir);
  t.notOk(await exists(join(dir, 'devices.json')), 'the old file is gone from its name');
  t.equal(await readFile(join(dir, 'devices.json.migrated'), 'utf8'), old, 'and kept, unchanged, beside');
  t.equal(await store.devices.count(), 3);
  for (const device of devices) t.strictSame(await store.devices.get(device.id), device, `${device.id} intact`);
  t.notOk('recordId' in (await store.devices.get('legacy'))!, 'a legacy record stays without recordId');
  const again = await open(t, dir);
  t.equal(await again.devices.count(), 3, 'a second open migrates nothing more');
});

t.test('a migration cut short runs again without doubling a device', async (t) => {
  const dir = await tempDir(t);
  const devicesDir = join(dir, 'devices');
  await mkdir(devicesDir, { recursive: true });
  // The first run wrote a's bucket, then died before renaming devices.json.
  await writeFile(bucketFile(devicesDir, bucketOf('a', 4096)), formatBucket([record('a')]));
  await writeFile(join(dir, 'devices.json'), JSON.stringify({ version: 1, devices: [record('a'), record('b')] }));
  const store = await open(t, dir);
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
  const reader = await open(t, dir);
  await reader.devices.add([record('a'), record('b')]);
  // What a writer that died halfway leaves: a bucket changed, the count not, a temporary file, its lock.
  const devicesDir = join(dir, 'devices');
  await writeFile(bucketFile(devicesDir, bucketOf('c', 4096)), formatBucket([record('c')]));
  await writeFile(join(devicesDir, '123.json.abcdef.tmp'), '[');
  await writeFile(join(dir, LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 1, host: hostname(), token: 'dead' }));
  const resynced = nextResync(reader);
  const next = await open(t, dir);
  await resynced;
  t.equal(await next.devices.count(), 3, 'recounted');
  t.notOk((await readdir(devicesDir)).some((name) => name.endsWith('.tmp')), 'its temporary file removed');
});

t.test('a count marked dirty by a failed change is recounted by the next writer', async (t) => {
  const dir = await tempDir(t);
  const store = await open(t, dir);
  await store.devices.add([record('a')]);
  const metaFile = join(dir, 'devices', 'meta.json');
  const meta = JSON.parse(await readFile(metaFile, 'utf8')) as Record<string, unknown>;
  await writeFile(metaFile, JSON.stringify({ ...meta, count: 40, dirty: true }));
  await store.devices.add([record('b')]);
  t.equal(await store.devices.count(), 2);
});
