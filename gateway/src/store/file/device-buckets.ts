import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { prepareFileAtomic, readTextIfExists, unlinkIfExists, writeFileAtomic, type PreparedFile } from '../atomic-file.ts';
import type { DeviceRecord } from '../ports.ts';

/** `<stateDir>/devices/`: the bucket files and the registry's meta file. */
export const DEVICES_DIR = 'devices';

/**
 * 4096 buckets: a million devices make buckets of about 250 records (40 KB), so reading or
 * rewriting one for a single device costs well under a millisecond, and the directory stays
 * small enough to list. Fixed per state directory (recorded in the meta file).
 */
export const DEFAULT_BUCKET_COUNT = 4096;

/** How many bucket files are read or written at once by a bulk operation. */
export const BUCKET_IO_PARALLEL = 8;

/**
 * FNV-1a (32-bit) over the id's UTF-16 code units, its halves folded together so that the low
 * bits the bucket index keeps depend on every character. Any process must place an id in the
 * same bucket: this function and the bucket count are the layout, never change them in place.
 */
export function bucketOf(id: string, bucketCount: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i += 1) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return ((hash ^ (hash >>> 16)) >>> 0) % bucketCount;
}

export function bucketFile(devicesDir: string, bucket: number): string {
  return join(devicesDir, `${bucket.toString(16).padStart(3, '0')}.json`);
}

/** A bucket as a JSON array, one record a line (readable, diffable); a missing file is empty. */
export function formatBucket(records: readonly DeviceRecord[]): string {
  return `[\n${records.map((record) => JSON.stringify(record)).join(',\n')}\n]\n`;
}

export async function readBucket(devicesDir: string, bucket: number): Promise<DeviceRecord[]> {
  const text = await readTextIfExists(bucketFile(devicesDir, bucket));
  return text === undefined ? [] : (JSON.parse(text) as DeviceRecord[]);
}

/** Replaces a bucket atomically (0600); an empty bucket is removed. */
export async function writeBucket(devicesDir: string, bucket: number, records: readonly DeviceRecord[]): Promise<void> {
  const file = bucketFile(devicesDir, bucket);
  if (records.length === 0) await unlinkIfExists(file);
  else await writeFileAtomic(file, formatBucket(records), 0o600);
}

/** A bucket's next content, written but not yet in place (a bulk add checks every bucket first). */
export function prepareBucket(devicesDir: string, bucket: number, records: readonly DeviceRecord[]): Promise<PreparedFile> {
  return prepareFileAtomic(bucketFile(devicesDir, bucket), formatBucket(records), 0o600);
}

/** Records grouped between event-loop turns: a million take about 200 ms, which must not be one stall. */
const GROUP_PER_TURN = 10_000;

/**
 * Groups records by bucket, refusing an id that repeats within them (the duplicate's id in the
 * result, nothing grouped) and yielding to the event loop between slices of a large batch.
 */
export async function groupByBucket(
  records: readonly DeviceRecord[], bucketCount: number,
): Promise<{ groups: Map<number, DeviceRecord[]>; repeated?: string }> {
  const groups = new Map<number, DeviceRecord[]>();
  const seen = new Set<string>();
  for (let start = 0; start < records.length; start += GROUP_PER_TURN) {
    if (start > 0) await nextTurn();
    for (const record of records.slice(start, start + GROUP_PER_TURN)) {
      if (typeof record?.id !== 'string' || record.id === '') throw new TypeError('every device record needs a non-empty string id');
      if (seen.has(record.id)) return { groups: new Map(), repeated: record.id };
      seen.add(record.id);
      const bucket = bucketOf(record.id, bucketCount);
      const group = groups.get(bucket);
      if (group === undefined) groups.set(bucket, [record]);
      else group.push(record);
    }
  }
  return { groups };
}

/**
 * Runs `task` over `items`, at most `parallel` at a time: a bulk add touches thousands of
 * buckets, and neither a file handle per bucket nor one bucket at a time is right. After a
 * failure no new item starts, and it resolves only when none is under way (the caller holds
 * the lock until then), rejecting with the first error.
 */
export async function forEachLimited<T>(items: Iterable<T>, parallel: number, task: (item: T) => Promise<void>): Promise<void> {
  const iterator = items[Symbol.iterator]();
  let failed = false;
  const worker = async (): Promise<void> => {
    for (let next = iterator.next(); !failed && next.done !== true; next = iterator.next()) {
      try {
        await task(next.value);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: parallel }, worker));
  const rejected = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
}
