import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readTextIfExists, unlinkIfExists, writeFileDurable } from '../atomic-file.ts';
import type { OscoreWindows } from '../ports.ts';
import {
  MAX_SEQUENCE_NUMBER, RETIRED_SEQUENCE_KEEP_MS, checkGeneration, checkSequenceBlock, checkSequenceNumber, emptyWindow, slideWindow, windowAt,
  type ReplayWindow,
} from '../replay-window.ts';
import { STATE_DIR_MODE } from '../state-dir-mode.ts';
import { bucketOf } from './device-buckets.ts';
import type { Mutate } from './mutate.ts';
import type { StoreCalls } from './store-calls.ts';

/**
 * `<stateDir>/oscore-sequences/<000..fff>.json`: the next sender sequence number of each context
 * the gateway ever reserved for, by a hash of its generation; a retired context's entry is kept
 * RETIRED_SEQUENCE_KEEP_MS, then pruned when its bucket is next written.
 */
export const SEQUENCES_DIR = 'oscore-sequences';

/** Replay windows held at once when the caller gives no bound (~100 bytes each). */
export const DEFAULT_MAX_OSCORE_WINDOWS = 100_000;

interface SequenceEntry {
  next: number;
  retiredAtMs?: number;
}

export interface FileOscoreWindowsContext {
  stateDir: string;
  bucketCount: number;
  calls: StoreCalls;
  mutate: Mutate;
  nowMs: () => number;
  /** Replay windows held at once; past it the least recently used is forgotten (`onEvicted`), and its next request recovers with Echo. */
  maxWindows: number;
  onEvicted: () => void;
}

/** What the device registry, holding the lock already, does to a context it ends or starts. */
export interface FileOscoreWindows extends OscoreWindows {
  /** The context was rotated, dropped or removed: its window goes, its sequence numbers are retired. Call under the lock. */
  endUnderLock(generation: string): Promise<void>;
  /** A context this process made: its window starts empty here (another process's never sees it: it recovers with Echo). */
  startHere(generation: string): void;
}

/**
 * The `file` store's OSCORE state. Replay windows are this process's memory, bounded: the store
 * serves one gateway, and a restart (or an eviction) loses them, which is what 'unknown' and the
 * Echo recovery are for. Sender sequence numbers are reserved under the state-directory lock and
 * written to disk (fsync) before the first of a block is handed out (Appendix B.1.1), so that no
 * restart, and no second process on the directory, ever gets a number twice.
 */
export function createFileOscoreWindows(context: FileOscoreWindowsContext): FileOscoreWindows {
  const { stateDir, bucketCount, calls, mutate, nowMs, maxWindows, onEvicted } = context;
  if (!Number.isInteger(maxWindows) || maxWindows < 1) throw new TypeError(`maxOscoreWindows must be a positive integer, got ${maxWindows}`);
  const dir = join(stateDir, SEQUENCES_DIR);
  // Map order is the eviction order: an accepted request moves its window to the back.
  const windows = new Map<string, ReplayWindow>();

  const hold = (generation: string, window: ReplayWindow): void => {
    if (windows.delete(generation) === false && windows.size >= maxWindows) {
      windows.delete(windows.keys().next().value!);
      onEvicted();
    }
    windows.set(generation, window);
  };
  const bucketFile = (generation: string): string => join(dir, `${bucketOf(generation, bucketCount).toString(16).padStart(3, '0')}.json`);
  const readBucket = async (file: string): Promise<Map<string, SequenceEntry>> => {
    calls.add();
    const text = await readTextIfExists(file);
    return new Map(text === undefined ? [] : Object.entries(JSON.parse(text) as Record<string, SequenceEntry>));
  };
  const writeBucket = async (file: string, entries: Map<string, SequenceEntry>): Promise<void> => {
    const keepFrom = nowMs() - RETIRED_SEQUENCE_KEEP_MS;
    for (const [generation, entry] of entries) if (entry.retiredAtMs !== undefined && entry.retiredAtMs < keepFrom) entries.delete(generation);
    calls.add();
    if (entries.size === 0) {
      await unlinkIfExists(file);
      return;
    }
    await mkdir(dir, { recursive: true, mode: STATE_DIR_MODE });
    await writeFileDurable(file, `{\n${[...entries].map(([g, e]) => `${JSON.stringify(g)}:${JSON.stringify(e)}`).join(',\n')}\n}\n`);
  };
  const endUnderLock = async (generation: string): Promise<void> => {
    windows.delete(generation);
    const file = bucketFile(generation);
    const entries = await readBucket(file);
    const entry = entries.get(generation);
    if (entry === undefined || entry.retiredAtMs !== undefined) return;
    entries.set(generation, { ...entry, retiredAtMs: nowMs() });
    await writeBucket(file, entries);
  };

  return {
    async accept(generation, sequenceNumber) {
      checkSequenceNumber(sequenceNumber);
      const window = windows.get(generation);
      if (window === undefined) return 'unknown';
      const next = slideWindow(window, sequenceNumber);
      if (next === undefined) return 'replay';
      hold(generation, next);
      return 'fresh';
    },
    async establish(generation, sequenceNumber) {
      checkGeneration(generation);
      if (sequenceNumber !== undefined) checkSequenceNumber(sequenceNumber);
      hold(generation, sequenceNumber === undefined ? emptyWindow() : windowAt(sequenceNumber));
    },
    reserveSequence(generation, count) {
      try {
        checkGeneration(generation);
        checkSequenceBlock(count);
      } catch (err) {
        return Promise.reject(err);
      }
      return mutate(async () => {
        const file = bucketFile(generation);
        const entries = await readBucket(file);
        const entry = entries.get(generation) ?? { next: 0 };
        if (entry.next + count > MAX_SEQUENCE_NUMBER + 1) {
          throw new RangeError(`the sender sequence numbers of context ${generation} are spent: rotate the device's context`);
        }
        entries.set(generation, { ...entry, next: entry.next + count });
        await writeBucket(file, entries);
        return entry.next;
      });
    },
    async forget(generation) {
      checkGeneration(generation);
      windows.delete(generation);
      await mutate(() => endUnderLock(generation));
    },
    endUnderLock,
    startHere: (generation) => hold(generation, emptyWindow()),
  };
}
