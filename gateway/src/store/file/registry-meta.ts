import { join } from 'node:path';
import { ConfigError } from '../../errors.ts';
import { readTextIfExists, writeFileAtomic } from '../atomic-file.ts';
import { DEFAULT_BUCKET_COUNT } from './device-buckets.ts';

/** `<stateDir>/devices/meta.json`, written only under the state-directory lock. */
export const META_FILE = 'meta.json';

export interface RegistryMeta {
  version: 1;
  /** Fixed when the directory is created: every process must place an id in the same bucket. */
  buckets: number;
  /** Devices in all buckets, so that `count()` reads one small file, not a million records. */
  count: number;
  /**
   * Set by a writer whose change failed halfway (a full disk): the next writer recounts the
   * buckets. A writer that died halfway leaves its lock behind instead, which tells the next
   * holder the same. Those are the only times a count reads every bucket.
   */
  dirty: boolean;
  /**
   * The OSCORE Sender ID counter: the next id handed out is `senderIdOfCounter(nextSenderId)`.
   * Absent: none handed out yet. Recovery raises it past every id a record holds.
   */
  nextSenderId?: number;
}

export const emptyMeta = (): RegistryMeta => ({ version: 1, buckets: DEFAULT_BUCKET_COUNT, count: 0, dirty: false });

export const metaFile = (devicesDir: string): string => join(devicesDir, META_FILE);

export async function readMeta(devicesDir: string): Promise<RegistryMeta | undefined> {
  const text = await readTextIfExists(metaFile(devicesDir));
  if (text === undefined) return undefined;
  const meta = JSON.parse(text) as RegistryMeta;
  if (meta.version !== 1 || !Number.isInteger(meta.buckets) || meta.buckets < 1) {
    throw new ConfigError([`state: ${metaFile(devicesDir)} is not a device registry this gateway knows (version ${String(meta.version)})`]);
  }
  return meta;
}

export async function writeMeta(devicesDir: string, meta: RegistryMeta): Promise<void> {
  await writeFileAtomic(metaFile(devicesDir), `${JSON.stringify(meta)}\n`, 0o600);
}
