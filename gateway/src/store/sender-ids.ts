import { AdminError } from '../errors.ts';

/**
 * The fleet's OSCORE Sender IDs, from one counter in the store: counter n is 1 byte while n < 256,
 * 2 bytes for the next 65536, 3 bytes for the next 2^24. The id is the kid of every request the
 * device sends (RFC 8613 section 6.1), so a short one saves radio bytes: the first 256 devices
 * pay one byte, a million pay three. No id is empty: the gateway's own Sender ID is '' in every
 * context, and a device's must differ from it for the nonces to (section 3.3).
 */

const ONE_BYTE = 256;
const TWO_BYTES = ONE_BYTE + 65_536;
const THREE_BYTES = TWO_BYTES + 16_777_216;

/** How many Sender IDs the counter can ever hand out (16,843,008). */
export const SENDER_ID_COUNTERS = THREE_BYTES;

/** Counter n as a Sender ID, lower-case hex. */
export function senderIdOfCounter(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= THREE_BYTES) throw new RangeError(`no Sender ID for counter ${n}`);
  if (n < ONE_BYTE) return n.toString(16).padStart(2, '0');
  if (n < TWO_BYTES) return (n - ONE_BYTE).toString(16).padStart(4, '0');
  return (n - TWO_BYTES).toString(16).padStart(6, '0');
}

/** The counter a Sender ID was made from, or undefined when the counter never makes this id. */
export function counterOfSenderId(hex: string): number | undefined {
  if (!/^(?:[0-9a-f]{2}){1,3}$/.test(hex)) return undefined;
  const value = Number.parseInt(hex, 16);
  return hex.length === 2 ? value : hex.length === 4 ? value + ONE_BYTE : value + TWO_BYTES;
}

/** The Sender IDs of counters first .. first + count - 1; AdminError GW_ERR_ADMIN_STATE past the last. */
export function senderIdsFrom(first: number, count: number): string[] {
  if (first + count > THREE_BYTES) {
    throw new AdminError('GW_ERR_ADMIN_STATE', `the fleet's OSCORE Sender IDs are spent (${THREE_BYTES} handed out, ids are never reused)`);
  }
  return Array.from({ length: count }, (_, i) => senderIdOfCounter(first + i));
}

/** A count of Sender IDs to allocate: a whole number from 1 to 1,000,000 (a bulk add's most). */
export function checkSenderIdCount(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > 1_000_000) throw new TypeError(`allocateSenderIds: count must be 1 to 1000000, got ${count}`);
}

/**
 * Whether `hex` can be a device's Sender ID as a request names it (its kid): lower-case hex of 1
 * to 7 bytes (the AES-CCM-16-64-128 nonce holds at most 7, section 5.2). Anything else is no
 * device's, and costs no store lookup.
 */
export const isSenderIdHex = (hex: unknown): hex is string => typeof hex === 'string' && /^(?:[0-9a-f]{2}){1,7}$/.test(hex);
