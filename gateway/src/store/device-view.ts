import type { DeviceRecord, Store, StoreChange } from './ports.ts';

export interface DeviceViewOptions {
  /** Devices held at once; past it the least recently used is forgotten (`onEvicted`). */
  maxEntries?: number;
  onEvicted?: () => void;
}

/**
 * This gateway's in-memory view of the devices it serves, fed by the store's change feed: the
 * hot path reads it synchronously (`peek`), so a cached token costs no store round trip.
 *
 * Only devices that exist are held, and only after someone asked for them: ids nobody
 * provisioned cost a store call each time but never memory. A change to a device drops it from
 * the view at once (it is read again on next use); a resync drops everything. A read that was
 * under way when a change arrived does not put its (perhaps stale) answer into the view.
 */
export interface DeviceView {
  /** The device if this view holds it now; undefined when not held (which says nothing). */
  peek(id: string): DeviceRecord | undefined;
  /** The device from the view, else from the store (rejects with StoreUnavailableError when it is down). */
  get(id: string): Promise<DeviceRecord | undefined>;
  size(): number;
  close(): void;
}

const DEFAULT_MAX_ENTRIES = 200_000;

export function createDeviceView(store: Store, options: DeviceViewOptions = {}): DeviceView {
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`maxEntries must be a positive integer, got ${maxEntries}`);
  const onEvicted = options.onEvicted ?? (() => undefined);
  const held = new Map<string, DeviceRecord>();
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
    held.set(record.id, record);
  };
  const unsubscribe = store.subscribe((change: StoreChange) => {
    if (change.kind === 'device') {
      epoch += 1;
      held.delete(change.id);
    } else if (change.kind === 'resync') {
      epoch += 1;
      held.clear();
    }
  });

  return {
    peek(id) {
      const record = held.get(id);
      if (record !== undefined && held.size > 1) {
        // Least recently used first: a hit moves to the back.
        held.delete(id);
        held.set(id, record);
      }
      return record;
    },
    async get(id) {
      const record = held.get(id);
      if (record !== undefined) return record;
      const startedIn = epoch;
      const fetched = await store.devices.get(id);
      if (fetched !== undefined && epoch === startedIn && fetched.id === id) hold(fetched);
      return fetched;
    },
    size: () => held.size,
    close: unsubscribe,
  };
}
