import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AdminError } from '../../errors.ts';
import { unlinkIfExists, type PreparedFile } from '../atomic-file.ts';
import type { DeviceRecord, DeviceRegistry, StoreChange } from '../ports.ts';
import { checkSenderIdCount, counterOfSenderId, isSenderIdHex, senderIdsFrom } from '../sender-ids.ts';
import { BUCKET_IO_PARALLEL, bucketOf, forEachLimited, groupByBucket, prepareBucket, readBucket, writeBucket } from './device-buckets.ts';
import type { Mutate } from './mutate.ts';
import type { FileOscoreWindows } from './oscore-windows-file.ts';
import { emptyMeta, readMeta, writeMeta, type RegistryMeta } from './registry-meta.ts';
import {
  prepareSenderBucket, readSenderBucket, rebuildSenderIndex, senderBucketOf, writeSenderBucket, type SenderBucket,
} from './sender-index.ts';
import type { StoreCalls } from './store-calls.ts';

/** Where the registry's files are: device buckets and meta, and the index by OSCORE Sender ID. */
export interface RegistryDirs {
  devicesDir: string;
  sendersDir: string;
}

export interface DeviceRegistryContext extends RegistryDirs {
  bucketCount: number;
  /** The most devices one `list()` batch holds. */
  maxBatchDevices: number;
  calls: StoreCalls;
  mutate: Mutate;
  /** A rotated, dropped or removed context's window and sequence numbers end with it; a new one's window starts here. */
  oscore: Pick<FileOscoreWindows, 'endUnderLock' | 'startHere'>;
}

/**
 * A batch larger than this is journaled as one `resync` rather than a line per device: readers
 * re-read what they hold once instead of parsing a line for each of a hundred thousand devices.
 */
export const MOST_DEVICE_LINES = 1000;

export function createDeviceRegistry(context: DeviceRegistryContext): DeviceRegistry {
  const { devicesDir, sendersDir, bucketCount, calls, mutate, oscore } = context;

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
    return meta.dirty ? recoverRegistry(context, bucketCount, calls, changes) : meta;
  };
  const readSenders = (bucket: number): Promise<SenderBucket> => {
    calls.add();
    return readSenderBucket(sendersDir, bucket);
  };
  // Whether device `id` holds `sender` now: an index entry is trusted only as far as the record
  // agrees (a writer that died between the two leaves an entry too many).
  const holds = async (id: string, sender: string): Promise<boolean> => {
    const record = (await read(bucketOf(id, bucketCount))).find((r) => r.id === id);
    return record?.oscore?.senderId === sender;
  };
  // Under the lock: refuses a Sender ID another device holds, else makes the entries (not yet in place).
  const prepareSenders = async (senders: ReadonlyMap<string, string>): Promise<PreparedFile[]> => {
    const groups = new Map<number, [string, string][]>();
    for (const entry of senders) {
      const bucket = senderBucketOf(entry[0], bucketCount);
      const group = groups.get(bucket);
      if (group === undefined) groups.set(bucket, [entry]);
      else group.push(entry);
    }
    const prepared: PreparedFile[] = [];
    try {
      await forEachLimited(groups, BUCKET_IO_PARALLEL, async ([bucket, group]) => {
        const entries = await readSenders(bucket);
        for (const [sender, id] of group) {
          const holder = entries.get(sender);
          if (holder !== undefined && holder !== id && await holds(holder, sender)) throw senderTaken(sender, holder);
          entries.set(sender, id);
        }
        calls.add();
        prepared.push(await prepareSenderBucket(sendersDir, bucket, entries));
      });
    } catch (err) {
      await Promise.all(prepared.map((file) => file.discard()));
      throw err;
    }
    return prepared;
  };
  // After the record let go of it: the entry goes, unless another device holds the id by now. A
  // failure leaves an entry too many, which lookups see through: the change stands.
  const dropSender = async (sender: string, id: string): Promise<void> => {
    try {
      const bucket = senderBucketOf(sender, bucketCount);
      const entries = await readSenders(bucket);
      if (entries.get(sender) !== id) return;
      entries.delete(sender);
      calls.add();
      await writeSenderBucket(sendersDir, bucket, entries);
    } catch {
      // (see above)
    }
  };
  // A context the record no longer has: its window and sequence numbers end (best effort, as dropSender:
  // a retired entry not written only stays on disk).
  const endContext = async (generation: string | undefined): Promise<void> => {
    if (generation === undefined) return;
    try {
      await oscore.endUnderLock(generation);
    } catch {
      // (see above)
    }
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
      const senders = sendersOf(records);
      await mutate(async (changes) => {
        const meta = await metaForWrite(changes);
        // Each bucket's next content is written beside it while the batch is checked; only when no id
        // is taken do they all replace their buckets (all or none), each bucket read and parsed once.
        const prepared: PreparedFile[] = [];
        const indexed: PreparedFile[] = [];
        try {
          await forEachLimited(groups, BUCKET_IO_PARALLEL, async ([bucket, group]) => {
            const existing = await read(bucket);
            const ids = new Set(existing.map((record) => record.id));
            const taken = group.find((record) => ids.has(record.id));
            if (taken !== undefined) throw duplicate(taken.id);
            calls.add();
            prepared.push(await prepareBucket(devicesDir, bucket, existing.concat(group)));
          });
          if (senders.size > 0) indexed.push(...await prepareSenders(senders));
          // The index first: a failure from here on leaves entries too many, never a record unindexed.
          await forEachLimited(indexed, BUCKET_IO_PARALLEL, (file) => file.commit());
        } catch (err) {
          await Promise.all([...prepared, ...indexed].map((file) => file.discard()));
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
        for (const record of records) if (record.oscore !== undefined) oscore.startHere(record.oscore.generation);
      });
    },

    replace(expected, next) {
      if (next?.id !== expected?.id) return Promise.reject(new TypeError('replace(expected, next): both records must have the same id'));
      return mutate(async (changes) => {
        const bucket = bucketOf(expected.id, bucketCount);
        const existing = await read(bucket);
        const index = existing.findIndex((record) => record.id === expected.id);
        if (index === -1 || !sameRecord(existing[index]!, expected)) return false;
        const before = existing[index]!.oscore;
        const after = next.oscore;
        if (after !== undefined && after.senderId !== before?.senderId) {
          const [file] = await prepareSenders(new Map([[after.senderId, next.id]]));
          await file!.commit();
        }
        await write(bucket, existing.with(index, next));
        changes.push({ kind: 'device', id: expected.id });
        if (before !== undefined && before.senderId !== after?.senderId) await dropSender(before.senderId, expected.id);
        if (before?.generation !== after?.generation) {
          await endContext(before?.generation);
          if (after !== undefined) oscore.startHere(after.generation);
        }
        return true;
      });
    },

    remove(id) {
      return mutate(async (changes) => {
        const meta = await metaForWrite(changes);
        const bucket = bucketOf(id, bucketCount);
        const existing = await read(bucket);
        const gone = existing.find((record) => record.id === id);
        if (gone === undefined) return false;
        await write(bucket, existing.filter((record) => record.id !== id));
        changes.push({ kind: 'device', id });
        await settleCount(meta, meta.count - 1);
        if (gone.oscore !== undefined) {
          await dropSender(gone.oscore.senderId, id);
          await endContext(gone.oscore.generation);
        }
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

    async idOfSender(senderIdHex) {
      if (!isSenderIdHex(senderIdHex)) return undefined;
      const holder = (await readSenders(senderBucketOf(senderIdHex, bucketCount))).get(senderIdHex);
      return holder !== undefined && await holds(holder, senderIdHex) ? holder : undefined;
    },

    async allocateSenderIds(count) {
      checkSenderIdCount(count);
      return mutate(async (changes) => {
        const meta = await metaForWrite(changes);
        const first = meta.nextSenderId ?? 0;
        const ids = senderIdsFrom(first, count);
        await saveMeta({ ...meta, nextSenderId: first + count });
        return ids;
      });
    },
  };
}

/** Sender ID -> device id of the records that have a context; AdminError GW_ERR_ADMIN_CONFLICT for one given twice. */
function sendersOf(records: readonly DeviceRecord[]): Map<string, string> {
  const senders = new Map<string, string>();
  for (const record of records) {
    const sender = record.oscore?.senderId;
    if (sender === undefined) continue;
    const other = senders.get(sender);
    if (other !== undefined) throw new AdminError('GW_ERR_ADMIN_CONFLICT', `devices "${other}" and "${record.id}" were given the same OSCORE Sender ID ${sender}`);
    senders.set(sender, record.id);
  }
  return senders;
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
 * every bucket), rebuilds the index by Sender ID from the records, keeps the Sender ID counter
 * past every id a record holds, removes the temporary files it may have left, and tells readers
 * to resync (its buckets may have changed without a journal line). Call under the lock.
 */
export async function recoverRegistry(dirs: RegistryDirs, bucketCount: number, calls: StoreCalls, changes: StoreChange[]): Promise<RegistryMeta> {
  const { devicesDir, sendersDir } = dirs;
  const strays = (await readdir(devicesDir)).filter((name) => name.endsWith('.tmp'));
  await Promise.all(strays.map((name) => unlinkIfExists(join(devicesDir, name))));
  let count = 0;
  let counters = 0;
  const senders = new Map<string, string>();
  await forEachLimited(Array.from({ length: bucketCount }, (_, bucket) => bucket), BUCKET_IO_PARALLEL, async (bucket) => {
    calls.add();
    const records = await readBucket(devicesDir, bucket);
    count += records.length;
    for (const record of records) {
      const sender = record.oscore?.senderId;
      if (sender === undefined) continue;
      senders.set(sender, record.id);
      counters = Math.max(counters, (counterOfSenderId(sender) ?? -1) + 1);
    }
  });
  await rebuildSenderIndex(sendersDir, bucketCount, senders);
  calls.add(2);
  const before = (await readMeta(devicesDir)) ?? emptyMeta();
  const nextSenderId = Math.max(before.nextSenderId ?? 0, counters);
  const meta = { ...before, buckets: bucketCount, count, dirty: false, ...(nextSenderId > 0 ? { nextSenderId } : {}) };
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

const senderTaken = (sender: string, holder: string): AdminError =>
  new AdminError('GW_ERR_ADMIN_CONFLICT', `OSCORE Sender ID ${sender} is device "${holder}"'s`);
