import { AdminError } from '../../errors.ts';
import type { DeviceRecord, DeviceRegistry } from '../ports.ts';
import { encodeChange } from './redis-change-feed.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/** Devices per HSCAN round trip when listing (a hint to Redis, which may return a few more). */
const LIST_BATCH = 1000;

/** The device registry as one hash: field = device id, value = the record's JSON. */
export function createRedisDevices({ session, scripts, layout }: RedisPortContext): DeviceRegistry {
  return {
    async get(id) {
      const json = await session.run((client) => client.hget(layout.devices, id));
      return json === null ? undefined : (JSON.parse(json) as DeviceRecord);
    },
    async add(records) {
      if (records.length === 0) return;
      const args: string[] = [layout.changes];
      const seen = new Set<string>();
      for (const record of records) {
        if (seen.has(record.id)) throw duplicate(record.id);
        seen.add(record.id);
        args.push(record.id, JSON.stringify(record), encodeChange({ kind: 'device', id: record.id }));
      }
      // All or none: the script checks every id before it writes any.
      const existing = await session.run(() => scripts.addDevices([layout.devices], args));
      if (existing !== null) throw duplicate(existing);
    },
    async replace(expected, next) {
      if (next?.id !== expected?.id) throw new TypeError('replace(expected, next): both records must have the same id');
      const replaced = await session.run(() => scripts.replaceDevice([layout.devices], [
        expected.id, JSON.stringify(expected), JSON.stringify(next), layout.changes, encodeChange({ kind: 'device', id: expected.id }),
      ]));
      return replaced === 1;
    },
    async remove(id) {
      const removed = await session.run(() => scripts.removeDevice([layout.devices], [id, layout.changes, encodeChange({ kind: 'device', id })]));
      return removed === 1;
    },
    count: () => session.run((client) => client.hlen(layout.devices)),
    async *list() {
      let cursor = '0';
      do {
        const [next, flat] = await session.run((client) => client.hscan(layout.devices, cursor, 'COUNT', LIST_BATCH));
        cursor = next;
        const batch: DeviceRecord[] = [];
        for (let i = 1; i < flat.length; i += 2) batch.push(JSON.parse(flat[i]!) as DeviceRecord);
        if (batch.length > 0) yield batch;
      } while (cursor !== '0');
    },
  };
}

const duplicate = (id: string): AdminError => new AdminError('GW_ERR_ADMIN_DUPLICATE_DEVICE', `device "${id}" already exists`);
