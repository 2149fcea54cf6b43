import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { prepareFileAtomic, readTextIfExists, unlinkIfExists, writeFileAtomic, type PreparedFile } from '../atomic-file.ts';
import { bucketOf } from './device-buckets.ts';

/**
 * `<stateDir>/oscore-senders/<000..fff>.json`: which device holds each OSCORE Sender ID, in as
 * many buckets as the devices (by a hash of the id, hex), so that finding the device of a request's
 * kid reads one small file, and a change rewrites one. Written only under the state-directory
 * lock, new entries before the device records that hold them and old ones after, so that a writer
 * that dies halfway leaves an entry too many (which lookups check against the record, and the
 * next recovery rebuilds away), never one missing.
 */
export const SENDERS_DIR = 'oscore-senders';

export type SenderBucket = Map<string, string>;

export function senderBucketFile(sendersDir: string, bucket: number): string {
  return join(sendersDir, `${bucket.toString(16).padStart(3, '0')}.json`);
}

export const senderBucketOf = (senderIdHex: string, bucketCount: number): number => bucketOf(senderIdHex, bucketCount);

/** A bucket as one JSON object, an entry a line; a missing file is empty. */
function formatSenders(entries: SenderBucket): string {
  return `{\n${[...entries].map(([sender, id]) => `${JSON.stringify(sender)}:${JSON.stringify(id)}`).join(',\n')}\n}\n`;
}

export async function readSenderBucket(sendersDir: string, bucket: number): Promise<SenderBucket> {
  const text = await readTextIfExists(senderBucketFile(sendersDir, bucket));
  return new Map(text === undefined ? [] : Object.entries(JSON.parse(text) as Record<string, string>));
}

/** Replaces a bucket atomically (0600); an empty one is removed. */
export async function writeSenderBucket(sendersDir: string, bucket: number, entries: SenderBucket): Promise<void> {
  const file = senderBucketFile(sendersDir, bucket);
  if (entries.size === 0) await unlinkIfExists(file);
  else await writeFileAtomic(file, formatSenders(entries), 0o600);
}

export function prepareSenderBucket(sendersDir: string, bucket: number, entries: SenderBucket): Promise<PreparedFile> {
  return prepareFileAtomic(senderBucketFile(sendersDir, bucket), formatSenders(entries), 0o600);
}

/**
 * Rewrites the whole index from `senders` (every Sender ID a record holds), removing buckets no
 * record needs and stray temporary files: recovery, after a writer died or failed halfway.
 */
export async function rebuildSenderIndex(sendersDir: string, bucketCount: number, senders: ReadonlyMap<string, string>): Promise<void> {
  const groups = new Map<number, SenderBucket>();
  for (const [sender, id] of senders) {
    const bucket = senderBucketOf(sender, bucketCount);
    const group = groups.get(bucket) ?? new Map<string, string>();
    group.set(sender, id);
    groups.set(bucket, group);
  }
  let names: string[] = [];
  try {
    names = await readdir(sendersDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await Promise.all(names.filter((name) => name.endsWith('.tmp')).map((name) => unlinkIfExists(join(sendersDir, name))));
  const existing = names.filter((name) => /^[0-9a-f]{3,}\.json$/.test(name)).map((name) => Number.parseInt(name, 16));
  for (const bucket of new Set([...existing, ...groups.keys()])) {
    await writeSenderBucket(sendersDir, bucket, groups.get(bucket) ?? new Map());
  }
}
