import type { DeviceRecord, Store, StoreChange } from './ports.ts';
import { isSenderIdHex } from './sender-ids.ts';

export interface DeviceViewOptions {
  /** Devices held at once (the config's deviceViewEntries); past it the least recently used is forgotten (`onEvicted`). */
  maxEntries: number;
  /** Ids known to be absent held at once (see `get`'s `rememberAbsent`); past it the oldest is forgotten. */
  maxAbsentEntries?: number;
  /**
   * OSCORE Sender IDs known to be no device's, held at once (see `getBySender`); past it the oldest
   * is forgotten. Apart from the ids, so that a flood of made-up kids never pushes those out.
   */
  maxAbsentSenders?: number;
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
  /**
   * The held device whose OSCORE context has this Sender ID (lower-case hex, a request's kid), or
   * undefined when none held has it (which says nothing).
   */
  peekSender(senderIdHex: string): DeviceRecord | undefined;
  /**
   * The device whose OSCORE context has this Sender ID: from the view, else from the store (its
   * index, then the record, which the view then holds). Sender IDs the store knows no device of are
   * remembered (bounded, `maxAbsentSenders`) until the next device change, so a kid repeated by a
   * device nobody provisioned costs one store call, not one per datagram. Anything that cannot be a
   * Sender ID (`isSenderIdHex`) is no device's, at no cost. Rejects with StoreUnavailableError when
   * the store is down.
   */
  getBySender(senderIdHex: string): Promise<DeviceRecord | undefined>;
  /** Entries held: devices, ids known to be absent, and Sender IDs known to be no device's. */
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
  const maxAbsentSenders = options.maxAbsentSenders ?? DEFAULT_MAX_ABSENT_ENTRIES;
  for (const [name, value] of [['maxAbsentEntries', maxAbsentEntries], ['maxAbsentSenders', maxAbsentSenders]] as const) {
    if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name} must be a whole number, got ${value}`);
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
  // Sender ID -> device id, for each held device that has an OSCORE context.
  const heldSenders = new Map<string, string>();
  const absentSenders = new Set<string>();
  // Bumped by every change: a read that started in an older epoch may be stale, so it is not kept.
  let epoch = 0;
  // A fleet has a handful of distinct scope lists: one shared array per list saves ~130 bytes a device.
  const scopeLists = new Map<string, string[]>();

  const unhold = (id: string): void => {
    const sender = held.get(id)?.record.oscore?.senderId;
    if (sender !== undefined && heldSenders.get(sender) === id) heldSenders.delete(sender);
    held.delete(id);
  };
  const hold = (record: DeviceRecord): void => {
    const key = record.scopes.join(' ');
    const shared = scopeLists.get(key);
    if (shared === undefined) {
      if (scopeLists.size < 1000) scopeLists.set(key, record.scopes);
    } else {
      record.scopes = shared;
    }
    if (held.size >= maxEntries) {
      unhold(held.keys().next().value!);
      onEvicted();
    }
    place(record.id, { record, placed: 0 });
    if (record.oscore !== undefined) heldSenders.set(record.oscore.senderId, record.id);
  };
  const holdAbsent = (id: string): void => {
    if (maxAbsentEntries === 0) return;
    if (absentIds.size >= maxAbsentEntries) {
      absentIds.delete(absentIds.values().next().value!);
      onEvicted();
    }
    absentIds.add(id);
  };
  const holdAbsentSender = (sender: string): void => {
    if (maxAbsentSenders === 0) return;
    if (absentSenders.size >= maxAbsentSenders) {
      absentSenders.delete(absentSenders.values().next().value!);
      onEvicted();
    }
    absentSenders.add(sender);
  };
  const unsubscribe = store.subscribe((change: StoreChange) => {
    if (change.kind === 'device') {
      epoch += 1;
      unhold(change.id);
      absentIds.delete(change.id);
      // The change names the device, not the Sender ID it may have taken: none is known absent now.
      absentSenders.clear();
    } else if (change.kind === 'resync') {
      epoch += 1;
      held.clear();
      heldSenders.clear();
      absentIds.clear();
      absentSenders.clear();
    }
  });

  const peek = (id: string): DeviceRecord | undefined => {
    const entry = held.get(id);
    if (entry === undefined) return undefined;
    if (placements - entry.placed > maxEntries / 2) {
      held.delete(id);
      place(id, entry);
    }
    return entry.record;
  };
  const get = async (id: string, lookup: DeviceLookup = {}): Promise<DeviceRecord | undefined> => {
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
  };
  const peekSender = (sender: string): DeviceRecord | undefined => {
    const id = heldSenders.get(sender);
    const record = id === undefined ? undefined : peek(id);
    return record?.oscore?.senderId === sender ? record : undefined;
  };

  return {
    peek,
    absent: (id) => absentIds.has(id),
    get,
    peekSender,
    async getBySender(sender) {
      if (!isSenderIdHex(sender)) return undefined;
      const known = peekSender(sender);
      if (known !== undefined) return known;
      if (absentSenders.has(sender)) return undefined;
      const startedIn = epoch;
      const id = await store.devices.idOfSender(sender);
      if (id === undefined) {
        if (epoch === startedIn) holdAbsentSender(sender);
        return undefined;
      }
      const record = await get(id);
      // Changed between the index and the record (rotated to another id, removed): no device of it now.
      return record?.oscore?.senderId === sender ? record : undefined;
    },
    size: () => held.size + absentIds.size + absentSenders.size,
    close: unsubscribe,
  };
}
