import { appendFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../atomic-file.ts';
import { MAX_FAMILIES_PER_DEVICE, type RefreshFamilies, type RefreshFamily } from '../ports.ts';
import type { StoreCalls } from './store-calls.ts';

/** `<stateDir>/refresh-families.log`: one JSON line per start or rotation, `{"end": family}` per end. */
export const REFRESH_FAMILIES_FILE = 'refresh-families.log';

export interface RefreshFamiliesContext {
  stateDir: string;
  nowMs: () => number;
  calls: StoreCalls;
}

/**
 * Refresh families in this process's memory, appended to a log so a restart keeps them. As with
 * spent ids, only a gateway writes them (the CLI never does) and the `file` store serves one
 * gateway: the log has one writer, its writes are one at a time (each taking every line queued
 * meanwhile), and no state-directory lock is taken. The log is read at the first call and rewritten with the live families once most of its
 * lines are stale. Bounded by the devices: at most MAX_FAMILIES_PER_DEVICE each.
 */
export function createRefreshFamilies({ stateDir, nowMs, calls }: RefreshFamiliesContext): RefreshFamilies & { idle(): Promise<void> } {
  const file = join(stateDir, REFRESH_FAMILIES_FILE);
  let state: Promise<FamilyTable> | undefined;
  // Lines waiting for the next write, and the callers waiting for them to be on disk. One write
  // at a time takes every line queued meanwhile: a login costs one append of its own only when
  // the log is idle, so logins are not held to one file write each.
  let pending: { lines: object[]; done: { resolve(): void; reject(err: unknown): void }[] } | undefined;
  let writing: Promise<void> = Promise.resolve();

  const table = (): Promise<FamilyTable> => {
    if (state === undefined) {
      calls.add();
      state = loadTable(file);
      // A failed read is retried by the next call rather than remembered.
      state.catch(() => { state = undefined; });
    }
    return state;
  };
  const flush = async (loaded: FamilyTable): Promise<void> => {
    const batch = pending!;
    pending = undefined;
    try {
      calls.add();
      loaded.lines += batch.lines.length;
      if (loaded.lines > 2 * loaded.families.size + 1000) {
        // The rewrite drops expired families too; until then an expired one costs only its entry
        // (a device holds few), and is refused when presented.
        loaded.prune(Math.floor(nowMs() / 1000));
        await writeFileAtomic(file, [...loaded.families.values()].map((f) => `${JSON.stringify(f)}\n`).join(''));
        loaded.lines = loaded.families.size;
      } else {
        await appendFile(file, batch.lines.map((line) => `${JSON.stringify(line)}\n`).join(''), { mode: 0o600 });
      }
      for (const waiter of batch.done) waiter.resolve();
    } catch (err) {
      for (const waiter of batch.done) waiter.reject(err);
    }
  };
  /** Resolves once `lines` are in the log (the table already holds what they say). */
  const append = (loaded: FamilyTable, lines: readonly object[]): Promise<void> => new Promise((resolve, reject) => {
    if (pending === undefined) {
      pending = { lines: [], done: [] };
      writing = writing.then(() => flush(loaded));
    }
    pending.lines.push(...lines);
    pending.done.push({ resolve, reject });
  });

  return {
    async start(family) {
      if (typeof family?.family !== 'string' || family.family === '') throw new TypeError('a refresh family needs a string id');
      const loaded = await table();
      const ended = loaded.add({ ...family });
      await append(loaded, [...ended.map((id) => ({ end: id })), family]);
    },
    async rotate(id, presentedHash, next) {
      const loaded = await table();
      // Checked and changed in one synchronous step: two refreshes of one token cannot both rotate.
      const family = loaded.families.get(id);
      if (family === undefined || family.expiresAtSec <= Math.floor(nowMs() / 1000)) return { outcome: 'unknown' } as const;
      if (family.currentHash !== presentedHash) return { outcome: 'reused', family: { ...family } } as const;
      const rotated = { ...family, ...next };
      loaded.families.set(id, rotated);
      await append(loaded, [rotated]);
      return { outcome: 'rotated', family: { ...rotated } } as const;
    },
    async end(id) {
      const loaded = await table();
      if (!loaded.remove(id)) return false;
      await append(loaded, [{ end: id }]);
      return true;
    },
    idle: () => writing,
  };
}

interface FamilyTable {
  families: Map<string, RefreshFamily>;
  /** Lines in the log now (stale ones included), for compaction. */
  lines: number;
  /** Adds (or updates) a family; returns the ids of the device's oldest families it ended to stay within the bound. */
  add(family: RefreshFamily): string[];
  remove(id: string): boolean;
  prune(nowSec: number): void;
}

function createTable(): FamilyTable {
  const families = new Map<string, RefreshFamily>();
  // Per device, its families oldest first.
  const byDevice = new Map<string, string[]>();
  const forget = (id: string): boolean => {
    const family = families.get(id);
    if (family === undefined) return false;
    families.delete(id);
    const list = byDevice.get(family.deviceId)?.filter((known) => known !== id) ?? [];
    if (list.length === 0) byDevice.delete(family.deviceId);
    else byDevice.set(family.deviceId, list);
    return true;
  };
  return {
    families,
    lines: 0,
    add(family) {
      // A rotation read back from the log: the family keeps its place among the device's.
      if (families.has(family.family)) {
        families.set(family.family, family);
        return [];
      }
      const list = byDevice.get(family.deviceId) ?? [];
      const ended: string[] = [];
      while (list.length >= MAX_FAMILIES_PER_DEVICE) {
        const oldest = list.shift()!;
        families.delete(oldest);
        ended.push(oldest);
      }
      list.push(family.family);
      byDevice.set(family.deviceId, list);
      families.set(family.family, family);
      return ended;
    },
    remove: forget,
    prune(nowSec) {
      for (const [id, family] of families) if (family.expiresAtSec <= nowSec) forget(id);
    },
  };
}

async function loadTable(file: string): Promise<FamilyTable> {
  const table = createTable();
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    table.lines += 1;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      continue; // a line cut short by a crash: the families before it still count
    }
    const { end } = entry as { end?: unknown };
    if (typeof end === 'string') table.remove(end);
    else if (isFamily(entry)) table.add(entry);
  }
  return table;
}

function isFamily(value: unknown): value is RefreshFamily {
  const f = value as Partial<RefreshFamily> | null;
  return typeof f?.family === 'string' && typeof f.deviceId === 'string' && typeof f.recordId === 'string'
    && typeof f.currentHash === 'string' && typeof f.expiresAtSec === 'number';
}
