import { watch } from 'node:fs';
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { RateLimiterMemory } from '../rate-limiter-memory.ts';
import type { Store, StoreChange } from '../ports.ts';
import { STATE_DIR_MODE, tightenStateDir, type StateDirTightened } from '../state-dir-mode.ts';
import { appendChanges, ensureJournal, JOURNAL_FILE, readJournalPosition, type JournalPosition } from './change-journal.ts';
import { DEFAULT_BUCKET_COUNT, DEVICES_DIR } from './device-buckets.ts';
import { createDeviceRegistry, recoverRegistry, type RegistryDirs } from './device-registry.ts';
import { createJournalTailer } from './journal-tailer.ts';
import { migrateDevicesFile } from './migrate-devices-file.ts';
import type { Mutate } from './mutate.ts';
import { createOneTimeIds } from './once-ids-file.ts';
import { createFileOscoreWindows, DEFAULT_MAX_OSCORE_WINDOWS } from './oscore-windows-file.ts';
import { createMemoryNonces } from './nonces-memory.ts';
import { createPublicKeys } from './public-keys-file.ts';
import { createRefreshFamilies } from './refresh-families-file.ts';
import { emptyMeta, readMeta, writeMeta } from './registry-meta.ts';
import { createRevocations } from './revocations-file.ts';
import { SENDERS_DIR } from './sender-index.ts';
import { createStateLock, LOCK_FILE, type StateLock } from './state-lock.ts';
import { createStoreCalls, type StoreCalls } from './store-calls.ts';

export interface FileStoreOptions {
  /** The clock for expiries (spent ids, revocations, retired keys); the lock's timers use the real one. */
  nowMs?: () => number;
  /** Called when the state directory existed with a looser mode than 0700 and was tightened. */
  onTightened?: (change: StateDirTightened) => void;
  /** The most devices one `devices.list()` batch holds (default 1000). */
  maxBatchDevices?: number;
  /** OSCORE replay windows held in memory at once (default 100,000); past it the least recently used is forgotten. */
  maxOscoreWindows?: number;
  /** Called for each replay window forgotten to stay within maxOscoreWindows. */
  onOscoreWindowEvicted?: () => void;
}

const DEFAULT_MAX_BATCH_DEVICES = 1000;

/**
 * The embedded store: files in the state directory, shared by one gateway and the CLI.
 *
 *   devices/<000..fff>.json   devices, in 4096 buckets by a hash of the id
 *   devices/meta.json         bucket count and device count
 *   changes.log               the change journal that every open store tails (fs.watch)
 *   public-keys.json          the published keys
 *   revocations.log           revoked refresh families, one JSON line each
 *   spent-tokens.log          this gateway's spent one-time ids (assertion jtis)
 *   refresh-families.log      this gateway's refresh-token families (the hash of each current token)
 *   oscore-senders/<000..fff>.json    which device holds each OSCORE Sender ID (by a hash of the id)
 *   oscore-sequences/<000..fff>.json  the gateway's next sender sequence number per OSCORE context
 *   store.lock                held while a process rewrites any of them
 *
 * Device buckets hold the devices' OSCORE master secrets: like every file here they are 0600, in
 * a 0700 directory. OSCORE replay windows are this process's memory (see oscore-windows-file.ts).
 *
 * A change costs what it touches (one bucket, one meta file, one journal line), for the writer
 * and for every reader, whatever the size of the fleet.
 */
export async function buildFileStore(stateDir: string, options: FileStoreOptions = {}): Promise<Store> {
  const nowMs = options.nowMs ?? Date.now;
  const maxBatchDevices = options.maxBatchDevices ?? DEFAULT_MAX_BATCH_DEVICES;
  if (!Number.isInteger(maxBatchDevices) || maxBatchDevices < 1) throw new TypeError('maxBatchDevices must be a positive integer');
  const tightened = await tightenStateDir(stateDir);
  if (tightened !== undefined) options.onTightened?.(tightened);
  await mkdir(stateDir, { recursive: true, mode: STATE_DIR_MODE });
  const devicesDir = join(stateDir, DEVICES_DIR);
  await mkdir(devicesDir, { recursive: true, mode: STATE_DIR_MODE });
  const sendersDir = join(stateDir, SENDERS_DIR);
  await mkdir(sendersDir, { recursive: true, mode: STATE_DIR_MODE });
  const dirs = { devicesDir, sendersDir };
  const journalFile = join(stateDir, JOURNAL_FILE);
  const calls = createStoreCalls();
  const lock = createStateLock(join(stateDir, LOCK_FILE));
  const { bucketCount, position } = await openUnderLock(lock, stateDir, dirs, journalFile, calls);

  const listeners = new Set<(change: StoreChange) => void>();
  const emit = (change: StoreChange): void => {
    for (const listener of listeners) {
      // One failing listener must not cost the others their changes, nor the feed its place.
      try {
        listener(change);
      } catch (err) {
        process.emitWarning(`a store change listener threw: ${String(err)}`, 'StoreListenerWarning');
      }
    }
  };
  const tailer = createJournalTailer(journalFile, position, emit);
  // inotify on the directory, not the file: a new journal generation is a new file renamed in.
  const watcher = watch(stateDir, { persistent: false }, (_event, name) => {
    if (name === JOURNAL_FILE) tailer.poke();
  });
  watcher.on('error', () => undefined);

  let closed = false;
  const mutate: Mutate = async (task) => {
    if (closed) throw new TypeError('the store is closed');
    try {
      return await lock.run(async ({ tookOver }) => {
        const changes: StoreChange[] = [];
        try {
          if (tookOver) await recoverRegistry(dirs, bucketCount, calls, changes);
          return await task(changes);
        } finally {
          // What was written is journaled even when a later step failed.
          if (changes.length > 0) {
            calls.add();
            await appendChanges(journalFile, changes);
          }
        }
      });
    } finally {
      // This process's listeners hear its own change before the call resolves.
      await tailer.catchUp();
    }
  };

  const onceIds = createOneTimeIds({ stateDir, nowMs, calls });
  const refreshFamilies = createRefreshFamilies({ stateDir, nowMs, calls });
  const oscoreWindows = createFileOscoreWindows({
    stateDir, bucketCount, calls, mutate, nowMs,
    maxWindows: options.maxOscoreWindows ?? DEFAULT_MAX_OSCORE_WINDOWS, onEvicted: options.onOscoreWindowEvicted ?? (() => undefined),
  });
  return {
    kind: 'file',
    devices: createDeviceRegistry({ ...dirs, bucketCount, maxBatchDevices, calls, mutate, oscore: oscoreWindows }),
    onceIds,
    refreshFamilies,
    nonces: createMemoryNonces(nowMs),
    revocations: createRevocations({ stateDir, nowMs, calls, mutate }),
    keys: createPublicKeys({ stateDir, nowMs, calls, mutate }),
    limits: {
      limiter: ({ keyPrefix, points, durationSec }) => new RateLimiterMemory({ keyPrefix, points, duration: durationSec }),
    },
    oscoreWindows,
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    onAvailability: () => () => undefined,
    available: () => true,
    calls: () => calls.total(),
    async close() {
      if (closed) return;
      closed = true;
      watcher.close();
      await lock.idle();
      await onceIds.idle();
      await refreshFamilies.idle();
      await tailer.close();
      listeners.clear();
    },
  };
}

/**
 * What an open does under the lock: migrate an old devices.json, recount after a writer that
 * died or failed mid-change, start the meta file and the journal in a new directory, and take
 * the journal's position (at the end of a line, since no writer is appending).
 */
async function openUnderLock(
  lock: StateLock, stateDir: string, dirs: RegistryDirs, journalFile: string, calls: StoreCalls,
): Promise<{ bucketCount: number; position: JournalPosition }> {
  const { devicesDir } = dirs;
  return lock.run(async ({ tookOver }) => {
    const changes: StoreChange[] = [];
    const meta = await readMeta(devicesDir);
    const bucketCount = meta?.buckets ?? DEFAULT_BUCKET_COUNT;
    const migrated = await migrateDevicesFile(stateDir, devicesDir, bucketCount);
    if (migrated !== undefined) {
      await writeMeta(devicesDir, { ...(meta ?? emptyMeta()), buckets: bucketCount, count: migrated, dirty: false });
      changes.push({ kind: 'resync' });
    } else if (tookOver || meta?.dirty === true || (meta === undefined && (await readdir(devicesDir)).length > 0)) {
      // A writer died or failed halfway, or the meta file was deleted beside its buckets.
      await recoverRegistry(dirs, bucketCount, calls, changes);
    } else if (meta === undefined) {
      await writeMeta(devicesDir, emptyMeta());
    }
    await ensureJournal(journalFile);
    await appendChanges(journalFile, changes);
    return { bucketCount, position: await readJournalPosition(journalFile) };
  });
}
