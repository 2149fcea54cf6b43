/**
 * The replay window of RFC 8613 section 7.4 with the default size of 32: the highest sequence
 * number accepted, and a 32-bit mask of which of the 32 numbers below it were (bit i: highest - 1
 * - i). The gateway's file store keeps it in memory and its Redis store runs the same steps in Lua
 * (store/redis/redis-scripts.ts), so they are written for that: sequence numbers (up to 2^40 - 1)
 * are only compared and subtracted as numbers, bit operators touch only the mask, with shifts
 * under 32.
 */

export const REPLAY_WINDOW_SIZE = 32;

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
