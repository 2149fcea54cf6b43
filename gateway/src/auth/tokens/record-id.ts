import { randomBytes } from 'node:crypto';
import type { DeviceRecord } from '../../store/index.ts';

/** A new device record's id: 16 random bytes, base64url. Made once, when the device is provisioned. */
export function newRecordId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * The id tokens are bound to (their `rid` claim). A record from an older state file has none;
 * its creation time stands in, which is as good as the old binding to the creation second.
 */
export function recordIdOf(device: Pick<DeviceRecord, 'recordId' | 'createdAt'>): string {
  return device.recordId ?? `legacy:${device.createdAt}`;
}
