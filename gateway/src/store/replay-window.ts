// The replay window's arithmetic is the wire core's (wire/oscore/replay-window.ts), which the
// Redis store's Lua mirrors; what only the stores check is here.
import { MAX_SEQUENCE_NUMBER } from '../wire/oscore/index.ts';

export { MAX_SEQUENCE_NUMBER, REPLAY_WINDOW_SIZE, emptyWindow, slideWindow, windowAt, type ReplayWindow } from '../wire/oscore/index.ts';

/** Rejects what is not a sequence number (a RangeError: a caller's bug, never a device's input: the wire layer bounds the Partial IV). */
export function checkSequenceNumber(sequenceNumber: number): void {
  if (!Number.isSafeInteger(sequenceNumber) || sequenceNumber < 0 || sequenceNumber > MAX_SEQUENCE_NUMBER) {
    throw new RangeError(`a sequence number is a whole number from 0 to 2^40 - 1, got ${sequenceNumber}`);
  }
}

/** Rejects a block size of sender sequence numbers that is not a whole number from 1 to 2^20. */
export function checkSequenceBlock(count: number): void {
  if (!Number.isSafeInteger(count) || count < 1 || count > 2 ** 20) throw new RangeError(`reserveSequence: count must be 1 to 2^20, got ${count}`);
}

/** A generation names a context: base64url, as `DeviceOscore.generation`, at most 64 characters. */
export function checkGeneration(generation: string): void {
  if (typeof generation !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(generation)) throw new TypeError('a context generation is 1-64 base64url characters');
}

/** How long a context's retired sender sequence numbers are kept after it was rotated, dropped or removed. */
export const RETIRED_SEQUENCE_KEEP_MS = 24 * 3600 * 1000;
