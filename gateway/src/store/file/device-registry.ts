import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AdminError } from '../../errors.ts';
import { unlinkIfExists, type PreparedFile } from '../atomic-file.ts';
import type { DeviceRecord, DeviceRegistry, StoreChange } from '../ports.ts';
import { BUCKET_IO_PARALLEL, bucketOf, forEachLimited, groupByBucket, prepareBucket, readBucket, writeBucket } from './device-buckets.ts';
import type { Mutate } from './mutate.ts';
import { emptyMeta, readMeta, writeMeta, type RegistryMeta } from './registry-meta.ts';
import type { StoreCalls } from './store-calls.ts';

export interface DeviceRegistryContext {
  devicesDir: string;
  bucketCount: number;
  /** The most devices one `list()` batch holds. */
  maxBatchDevices: number;
  calls: StoreCalls;
  mutate: Mutate;
}

/**
 * A batch larger than this is journaled as one `resync` rather than a line per device: readers
 * re-read what they hold once instead of parsing a line for each of a hundred thousand devices.
 */
export const MOST_DEVICE_LINES = 1000;

export function createDeviceRegistry(context: DeviceRegistryContext): DeviceRegistry {
  const { devicesDir, bucketCount, calls, mutate } = context;

  const read = (bucket: number): Promise<DeviceRecord[]> => {
    calls.add();
    return readBucket(devicesDir, bucket);
  };
  const write = (bucket: number, records: readonly DeviceRecord[]): Promise<void> => {
    calls.add();
    return writeBucket(devicesDir, bucket, records);
  };
  const saveMeta = (meta: RegistryMeta): Promise<void> => {
    calls.add();
    return writeMeta(devicesDir, meta);
  };
  // Under the lock: the meta as the last writer left it, recounted first if that writer's change failed halfway.
  const metaForWrite = async (changes: StoreChange[]): Promise<RegistryMeta> => {
    calls.add();
    const meta = (await readMeta(devicesDir)) ?? { ...emptyMeta(), buckets: bucketCount };
    return meta.dirty ? recoverRegistry(devicesDir, bucketCount, calls, changes) : meta;
  };
  // After buckets changed: the count follows them, or failing that, the next writer recounts.
  const settleCount = async (meta: RegistryMeta, count: number): Promise<void> => {
    try {
      await saveMeta({ ...meta, count, dirty: false });
    } catch (err) {
      await saveMeta({ ...meta, dirty: true }).catch(() => undefined);
      throw err;
    }
  };

  return {
    async get(id) {
      const records = await read(bucketOf(id, bucketCount));
      return records.find((record) => record.id === id);
    },

    async add(records) {
      if (records.length === 0) return;
      const { groups, repeated } = await groupByBucket(records, bucketCount);
      if (repeated !== undefined) throw duplicate(repeated);
      await mutate(async (changes) => {
        const meta = await metaForWrite(changes);
        // Each bucket's next content is written beside it while the batch is checked; only when no id
        // is taken do they all replace their buckets (all or none), each bucket read and parsed once.
        const prepared: PreparedFile[] = [];
        try {
          await forEachLimited(groups, BUCKET_IO_PARALLEL, async ([bucket, group]) => {
            const existing = await read(bucket);
            const ids = new Set(existing.map((record) => record.id));
            const taken = group.find((record) => ids.has(record.id));
            if (taken !== undefined) throw duplicate(taken.id);
            calls.add();
            prepared.push(await prepareBucket(devicesDir, bucket, existing.concat(group)));
          });
        } catch (err) {
          await Promise.all(prepared.map((file) => file.discard()));
          throw err;
        }
        try {
          await forEachLimited(prepared, BUCKET_IO_PARALLEL, (file) => file.commit());
        } catch (err) {
          // Some buckets replaced, some not: readers re-read, the next writer recounts.
          await Promise.all(prepared.map((file) => file.discard()));
          await saveMeta({ ...meta, dirty: true }).catch(() => undefined);
          changes.push({ kind: 'resync' });
          throw err;
        }
        await settleCount(meta, meta.count + records.length);
        if (records.length > MOST_DEVICE_LINES) changes.push({ kind: 'resync' });
        else for (const record of records) changes.push({ kind: 'device', id: record.id });
      });
    },

    replace(expected, next) {
      if (next?.id !== expected?.id) return Promise.reject(new TypeError('replace(expected, next): both records must have the same id'));
      return mutate(async (changes) => {
        const bucket = bucketOf(expected.id, bucketCount);
        const existing = await read(bucket);
        const index = existing.findIndex((record) => record.id === expected.id);
        if (index === -1 || !sameRecord(existing[index]!, expected)) return false;
        await write(bucket, existing.with(index, next));
        changes.push({ kind: 'device', id: expected.id });
        return true;
      });
    },

    remove(id) {
      return mutate(async (changes) => {
        const meta = await metaForWrite(changes);
        const bucket = bucketOf(id, bucketCount);
        const existing = await read(bucket);
        const kept = existing.filter((record) => record.id !== id);
        if (kept.length === existing.length) return false;
        await write(bucket, kept);
        changes.push({ kind: 'device', id });
        await settleCount(meta, meta.count - 1);
        return true;
      });
    },

    async count() {
      calls.add();
      return (await readMeta(devicesDir))?.count ?? 0;
    },

    list() {
      return listBuckets(context);
    },
  };
}

/** Bucket by bucket, the next one read while the caller handles a batch. Not a snapshot. */
async function* listBuckets(context: DeviceRegistryContext): AsyncGenerator<DeviceRecord[]> {
  const { devicesDir, bucketCount, maxBatchDevices, calls } = context;
  const read = (bucket: number): Promise<DeviceRecord[]> => {
    calls.add();
    const reading = readBucket(devicesDir, bucket);
    // A caller that stops early leaves the prefetch unawaited: its failure must not go unhandled.
    reading.catch(() => undefined);
    return reading;
  };
  let batch: DeviceRecord[] = [];
  let next = read(0);
  for (let bucket = 0; bucket < bucketCount; bucket += 1) {
    const records = await next;
    if (bucket + 1 < bucketCount) next = read(bucket + 1);
    for (const record of records) {
      batch.push(record);
      if (batch.length >= maxBatchDevices) {
        yield batch;
        batch = [];
      }
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Recounts the devices after a change that failed or died halfway (the only times a count reads
 * every bucket), removes the temporary files it may have left, and tells readers to resync (its
 * buckets may have changed without a journal line). Call under the lock.
 */
export async function recoverRegistry(devicesDir: string, bucketCount: number, calls: StoreCalls, changes: StoreChange[]): Promise<RegistryMeta> {
  const strays = (await readdir(devicesDir)).filter((name) => name.endsWith('.tmp'));
  await Promise.all(strays.map((name) => unlinkIfExists(join(devicesDir, name))));
  let count = 0;
  await forEachLimited(Array.from({ length: bucketCount }, (_, bucket) => bucket), BUCKET_IO_PARALLEL, async (bucket) => {
    calls.add();
    const records = await readBucket(devicesDir, bucket);
    count += records.length;
  });
  calls.add(2);
  const meta = { ...((await readMeta(devicesDir)) ?? emptyMeta()), buckets: bucketCount, count, dirty: false };
  await writeMeta(devicesDir, meta);
  changes.push({ kind: 'resync' });
  return meta;
}

/** Field by field, whatever the order of the keys. */
function sameRecord(a: DeviceRecord, b: DeviceRecord): boolean {
  return canonical(a) === canonical(b);
}

function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const duplicate = (id: string): AdminError =>
  new AdminError('GW_ERR_ADMIN_DUPLICATE_DEVICE', `device "${id}" already exists`);
