import type { DeviceRecord, Store, StoreChange } from './ports.ts';

export interface DeviceViewOptions {
  /** Devices held at once (the config's deviceViewEntries); past it the least recently used is forgotten (`onEvicted`). */
  maxEntries: number;
  /** Ids known to be absent held at once (see `get`'s `rememberAbsent`); past it the oldest is forgotten. */
  maxAbsentEntries?: number;
  onEvicted?: () => void;
}

export interface DeviceLookup {
  /**
   * Remember that the store has no such device, so that `absent(id)` answers from memory until
   * the device is added. Only for ids that someone authenticated (a token this gateway signed,
   * for a device removed since): an id a sender merely chose must never cost the view memory.
   */
  rememberAbsent?: boolean;
}

/**
 * This gateway's in-memory view of the devices it serves, fed by the store's change feed: the
 * hot path reads it synchronously (`peek`), so a cached token costs no store round trip.
 *
 * Only devices that exist are held, and only after someone asked for them: ids nobody
 * provisioned cost a store call each time but never memory, unless the caller authenticated the
 * id (`rememberAbsent`: a removed device's tokens, replayed). A change to a device drops it from
 * the view at once (it is read again on next use); a resync drops everything. A read that was
 * under way when a change arrived does not put its (perhaps stale) answer into the view.
 */
export interface DeviceView {
  /** The device if this view holds it now; undefined when not held (which says nothing). */
  peek(id: string): DeviceRecord | undefined;
  /** Whether an authenticated lookup found no such device, and no change to it has arrived since. */
  absent(id: string): boolean;
  /** The device from the view, else from the store (rejects with StoreUnavailableError when it is down). */
  get(id: string, lookup?: DeviceLookup): Promise<DeviceRecord | undefined>;
  /** Entries held: devices, and ids known to be absent. */
  size(): number;
  close(): void;
}

interface HeldDevice {
  record: DeviceRecord;
  /** The placement count when it was last put at the back of the order. */
  placed: number;
}
const DEFAULT_MAX_ABSENT_ENTRIES = 10_000;

export function createDeviceView(store: Store, options: DeviceViewOptions): DeviceView {
  const { maxEntries } = options;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`maxEntries must be a positive integer, got ${maxEntries}`);
  const maxAbsentEntries = options.maxAbsentEntries ?? DEFAULT_MAX_ABSENT_ENTRIES;
  if (!Number.isInteger(maxAbsentEntries) || maxAbsentEntries < 0) {
    throw new TypeError(`maxAbsentEntries must be a whole number, got ${maxAbsentEntries}`);
  }
  const onEvicted = options.onEvicted ?? (() => undefined);
  // Map order is the eviction order. A hit moves its entry to the back only once the entry has
  // fallen into the older half (`placed` more than maxEntries / 2 placements ago): moving on every
  // hit made a device that sends often pay a Map delete and insert per request, a quarter of a
  // cached verification's time. A device seen at least once per maxEntries / 2 placements is
  // never evicted, so the order is least recently used to within half the view.
  const held = new Map<string, HeldDevice>();
  let placements = 0;
  const place = (id: string, entry: HeldDevice): void => {
    placements += 1;
    entry.placed = placements;
    held.set(id, entry);
  };
  const absentIds = new Set<string>();
  // Bumped by every change: a read that started in an older epoch may be stale, so it is not kept.
  let epoch = 0;
  // A fleet has a handful of distinct scope lists: one shared array per list saves ~130 bytes a device.
  const scopeLists = new Map<string, string[]>();

  const hold = (record: DeviceRecord): void => {
    const key = record.scopes.join(' ');
    const shared = scopeLists.get(key);
    if (shared === undefined) {
      if (scopeLists.size < 1000) scopeLists.set(key, record.scopes);
    } else {
      record.scopes = shared;
    }
    if (held.size >= maxEntries) {
      held.delete(held.keys().next().value!);
      onEvicted();
    }
    place(record.id, { record, placed: 0 });
  };
  const holdAbsent = (id: string): void => {
    if (maxAbsentEntries === 0) return;
    if (absentIds.size >= maxAbsentEntries) {
      absentIds.delete(absentIds.values().next().value!);
      onEvicted();
    }
    absentIds.add(id);
  };
  const unsubscribe = store.subscribe((change: StoreChange) => {
    if (change.kind === 'device') {
      epoch += 1;
      held.delete(change.id);
      absentIds.delete(change.id);
    } else if (change.kind === 'resync') {
      epoch += 1;
      held.clear();
      absentIds.clear();
    }
  });

  return {
    peek(id) {
      const entry = held.get(id);
      if (entry === undefined) return undefined;
      if (placements - entry.placed > maxEntries / 2) {
        held.delete(id);
        place(id, entry);
      }
      return entry.record;
    },
    absent: (id) => absentIds.has(id),
    async get(id, lookup = {}) {
      const entry = held.get(id);
      if (entry !== undefined) return entry.record;
      if (absentIds.has(id)) return undefined;
      const startedIn = epoch;
      const fetched = await store.devices.get(id);
      if (epoch === startedIn) {
        if (fetched === undefined) {
          if (lookup.rememberAbsent === true) holdAbsent(id);
        } else if (fetched.id === id) {
          hold(fetched);
        }
      }
      return fetched;
    },
    size: () => held.size + absentIds.size,
    close: unsubscribe,
  };
}
