import type { DeviceRecord } from '../../store/index.ts';
import { quoted } from '../../log/index.ts';
import { recordIdOf } from './record-id.ts';
import { recordTag } from './token-id.ts';

/**
 * What ties a token to the device record it was issued for, so that removing a device and
 * adding it again (the answer to a compromise), or revoking it, refuses its old tokens, even
 * within the same second:
 * - `tag`: a compact JWT's jti carries 4 bytes of SHA-256 of the record id (token-id.ts);
 * - `record`: the whole record id, of a token already verified (and of a full-shape JWT's rid);
 * - `signed`: a CWT signs the record id as external AAD, so its signature check is the binding
 *   and only the record's presence and state are checked here;
 * - `created`: a token from before records had ids is bound as it was then, to the record's
 *   creation second.
 */
export type Binding =
  | { kind: 'tag'; tag: Buffer }
  | { kind: 'record'; recordId: string }
  | { kind: 'signed' }
  | { kind: 'created'; iatSec: number };

/** Why `device` is not the record a token of `sub` was issued for; undefined when it is. */
export function bindingProblem(device: DeviceRecord | undefined, sub: string, binding: Binding): string | undefined {
  if (device === undefined) return `device ${quoted(sub)} is not provisioned`;
  if (device.disabled === true) return `device ${quoted(sub)} is disabled`;
  switch (binding.kind) {
    case 'tag':
      return recordTag(recordIdOf(device)).equals(binding.tag) ? undefined : earlierRecord(sub);
    case 'record':
      return binding.recordId === recordIdOf(device) ? undefined : earlierRecord(sub);
    case 'signed':
      return undefined;
    case 'created':
      return binding.iatSec >= Math.floor(Date.parse(device.createdAt) / 1000) ? undefined : earlierRecord(sub);
  }
}

/** The binding a verified token keeps for its cache hits. */
export function bindingOf(token: { rid: string; iat: number }): Binding {
  return token.rid === '' ? { kind: 'created', iatSec: token.iat } : { kind: 'record', recordId: token.rid };
}

const earlierRecord = (sub: string) => `token of an earlier record of device ${quoted(sub)}`;
