import { AdminError } from '../../errors.ts';
import type { DeviceRecord, DeviceRegistry } from '../ports.ts';
import { RETIRED_SEQUENCE_KEEP_MS } from '../replay-window.ts';
import { checkSenderIdCount, isSenderIdHex, senderIdsFrom } from '../sender-ids.ts';
import { encodeChange } from './redis-change-feed.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/** Devices per HSCAN round trip when listing (a hint to Redis, which may return a few more). */
const LIST_BATCH = 1000;

/**
 * The device registry as one hash: field = device id, value = the record's JSON; beside it the
 * index by OSCORE Sender ID (a hash, written by the same scripts as the records, so it is never
 * out of step) and the Sender ID counter (INCRBY: two gateways never get the same id).
 */
export function createRedisDevices({ session, scripts, layout, oscoreWindowIdleMs }: RedisPortContext): DeviceRegistry {
  const keys = [layout.devices, layout.oscoreSenders];
  return {
    async get(id) {
      const json = await session.run((client) => client.hget(layout.devices, id));
      return json === null ? undefined : (JSON.parse(json) as DeviceRecord);
    },
    async add(records) {
      if (records.length === 0) return;
      const args: (string | number)[] = [layout.changes, layout.oscoreWindowPrefix, oscoreWindowIdleMs];
      const seen = new Set<string>();
      const senders = new Map<string, string>();
      for (const record of records) {
        if (seen.has(record.id)) throw duplicate(record.id);
        seen.add(record.id);
        const sender = record.oscore?.senderId;
        if (sender !== undefined) {
          const other = senders.get(sender);
          if (other !== undefined) throw new AdminError('GW_ERR_ADMIN_CONFLICT', `devices "${other}" and "${record.id}" were given the same OSCORE Sender ID ${sender}`);
          senders.set(sender, record.id);
        }
        args.push(record.id, JSON.stringify(record), encodeChange({ kind: 'device', id: record.id }), sender ?? '', record.oscore?.generation ?? '');
      }
      // All or none: the script checks every id and Sender ID before it writes any.
      const refused = await session.run(() => scripts.addDevices(keys, args));
      if (refused === null) return;
      if (refused[0] === 'sender') throw senderTaken(refused[1]!, refused[2]!);
      throw duplicate(refused[1]!);
    },
    async replace(expected, next) {
      if (next?.id !== expected?.id) throw new TypeError('replace(expected, next): both records must have the same id');
      const replaced = await session.run(() => scripts.replaceDevice(keys, [
        expected.id, JSON.stringify(expected), JSON.stringify(next), layout.changes, encodeChange({ kind: 'device', id: expected.id }),
        expected.oscore?.senderId ?? '', expected.oscore?.generation ?? '', next.oscore?.senderId ?? '', next.oscore?.generation ?? '',
        layout.oscoreWindowPrefix, layout.oscoreSequencePrefix, oscoreWindowIdleMs, RETIRED_SEQUENCE_KEEP_MS,
      ]));
      if (Array.isArray(replaced)) throw senderTaken(next.oscore!.senderId, replaced[1]!);
      return replaced === 1;
    },
    async remove(id) {
      const removed = await session.run(() => scripts.removeDevice(keys, [
        id, layout.changes, encodeChange({ kind: 'device', id }), layout.oscoreWindowPrefix, layout.oscoreSequencePrefix, RETIRED_SEQUENCE_KEEP_MS,
      ]));
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
    async idOfSender(senderIdHex) {
      if (!isSenderIdHex(senderIdHex)) return undefined;
      return (await session.run((client) => client.hget(layout.oscoreSenders, senderIdHex))) ?? undefined;
    },
    async allocateSenderIds(count) {
      checkSenderIdCount(count);
      // Spent even when past the last (nothing is ever handed out twice).
      const end = await session.run((client) => client.incrby(layout.oscoreSenderCounter, count));
      return senderIdsFrom(end - count, count);
    },
  };
}

const duplicate = (id: string): AdminError => new AdminError('GW_ERR_ADMIN_DUPLICATE_DEVICE', `device "${id}" already exists`);

const senderTaken = (sender: string, holder: string): AdminError =>
  new AdminError('GW_ERR_ADMIN_CONFLICT', `OSCORE Sender ID ${sender} is device "${holder}"'s`);
