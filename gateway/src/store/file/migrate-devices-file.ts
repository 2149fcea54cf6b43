import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../../errors.ts';
import { readTextIfExists } from '../atomic-file.ts';
import type { DeviceRecord } from '../ports.ts';
import { BUCKET_IO_PARALLEL, forEachLimited, groupByBucket, readBucket, writeBucket } from './device-buckets.ts';

/** The registry before buckets: one JSON file that every change rewrote whole. */
export const OLD_DEVICES_FILE = 'devices.json';
/** Where it goes once migrated: kept (not deleted) so that an operator can go back. */
export const MIGRATED_DEVICES_FILE = 'devices.json.migrated';

interface OldDevicesFile {
  version: 1;
  devices: DeviceRecord[];
}

/**
 * Moves the devices of an old `devices.json` into buckets, then renames the file aside. Run under
 * the state-directory lock when a store opens. Records keep every field they had. A migration
 * cut short runs again at the next open: records already in a bucket are replaced by the file's,
 * so nothing is doubled. Resolves with the number of devices in all buckets afterwards, or
 * undefined when there was nothing to migrate.
 *
 * The old file is parsed whole (2 to 3 s and a few hundred MB for a million devices): once, at
 * the first start after an upgrade, before the store serves anything.
 */
export async function migrateDevicesFile(stateDir: string, devicesDir: string, bucketCount: number): Promise<number | undefined> {
  const file = join(stateDir, OLD_DEVICES_FILE);
  const text = await readTextIfExists(file);
  if (text === undefined) return undefined;
  const old = JSON.parse(text) as Partial<OldDevicesFile>;
  if (old.version !== 1 || !Array.isArray(old.devices)) {
    throw new ConfigError([`state: ${file} is not a device registry this gateway can migrate (version ${String(old.version)})`]);
  }
  // A repeated id in the old file: the last record wins, as it did when that file was read into a map.
  const latest = new Map(old.devices.map((record) => [record.id, record]));
  const { groups } = await groupByBucket([...latest.values()], bucketCount);
  let count = 0;
  // Every bucket, touched or not, so that the count comes out of the same pass.
  await forEachLimited(Array.from({ length: bucketCount }, (_, bucket) => bucket), BUCKET_IO_PARALLEL, async (bucket) => {
    const existing = await readBucket(devicesDir, bucket);
    const incoming = groups.get(bucket);
    if (incoming === undefined) {
      count += existing.length;
      return;
    }
    const merged = new Map(existing.map((record) => [record.id, record]));
    for (const record of incoming) merged.set(record.id, record);
    await writeBucket(devicesDir, bucket, [...merged.values()]);
    count += merged.size;
  });
  await rename(file, join(stateDir, MIGRATED_DEVICES_FILE));
  return count;
}
