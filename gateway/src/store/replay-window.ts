/**
 * The replay window of RFC 8613 section 7.4 with the default size of 32, as the `file` store
 * keeps it in memory (the `redis` store runs the same steps in Lua, redis-scripts.ts): the highest
 * sequence number accepted, and a 32-bit mask of which of the 32 numbers below it were (bit i:
 * highest - 1 - i).
 */

export const REPLAY_WINDOW_SIZE = 32;

/** The largest sequence number: a Partial IV is at most 5 bytes (RFC 8613 section 6.1). */
export const MAX_SEQUENCE_NUMBER = 2 ** 40 - 1;

export interface ReplayWindow {
  /** The highest sequence number accepted; -1 for a new context's empty window. */
  highest: number;
  /** Unsigned 32 bits: bit i set when highest - 1 - i was accepted. */
  mask: number;
}

/** A new context's window: any first sequence number is fresh. */
export const emptyWindow = (): ReplayWindow => ({ highest: -1, mask: 0 });

/**
 * The window after an Echo recovery (Appendix B.1.2): the number received counts as seen, and so
 * does every number below it, since what was accepted before the window was lost is unknown.
 */
export const windowAt = (sequenceNumber: number): ReplayWindow => ({ highest: sequenceNumber, mask: 0xffffffff });

/** The window with `sequenceNumber` accepted, or undefined when it is a replay (seen, or below the window). */
export function slideWindow(window: ReplayWindow, sequenceNumber: number): ReplayWindow | undefined {
  const { highest, mask } = window;
  if (sequenceNumber > highest) {
    const shift = sequenceNumber - highest;
    // The old highest moves to bit shift - 1; past the window's width nothing of it stays.
    // (An empty window's -1 was never a sequence number: it leaves no bit.)
    let next = 0;
    if (highest >= 0 && shift < REPLAY_WINDOW_SIZE) next = ((mask << shift) | (1 << (shift - 1))) >>> 0;
    else if (highest >= 0 && shift === REPLAY_WINDOW_SIZE) next = 0x80000000;
    return { highest: sequenceNumber, mask: next };
  }
  const below = highest - sequenceNumber;
  if (below === 0 || below > REPLAY_WINDOW_SIZE) return undefined;
  const bit = (1 << (below - 1)) >>> 0;
  if ((mask & bit) !== 0) return undefined;
  return { highest, mask: (mask | bit) >>> 0 };
}

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
