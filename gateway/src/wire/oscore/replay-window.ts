import { MAX_SEQUENCE_NUMBER } from './partial-iv.ts';

/** RFC 8613 section 3.2.2: the default window, 32 (RFC 6347 section 4.1.2.6, as in IPsec). */
export const REPLAY_WINDOW_SIZE = 32;

/**
 * A replay window as data, so that it can be kept anywhere (memory, a store) and the same
 * arithmetic done there (a Redis Lua script):
 * - `highest`: the highest sequence number accepted, -1 when none has been;
 * - `bits`: an unsigned 32-bit mask (0 to 2^32-1) over the window, the 32 numbers from
 *   `highest` down to `highest - 31`: bit i (value 2^i) set means `highest - i` was accepted, so
 *   bit 0 (`highest` itself) is set whenever `highest` >= 0.
 * A number above `highest` is fresh; one in the window is fresh when its bit is clear; one below
 * the window (`highest - 32` and older) is a replay, since it can no longer be told apart from one.
 * Accepting a number d above `highest` shifts the mask left by d (all of it gone when d >= 32)
 * and sets bit 0; accepting one in the window sets bit `highest - n`. Sequence numbers go up to
 * 2^40-1, past 32 bits: they are only ever subtracted and compared; the bit operators touch the
 * mask and shift counts below 32 only (Lua: bit.band/bit.bor/bit.lshift on the mask alone).
 */
export interface ReplayState {
  readonly highest: number;
  readonly bits: number;
}

export type ReplayVerdict = 'fresh' | 'replay';

export const EMPTY_REPLAY_STATE: ReplayState = Object.freeze({ highest: -1, bits: 0 });

function checkNumber(sequenceNumber: number): void {
  if (!Number.isSafeInteger(sequenceNumber) || sequenceNumber < 0 || sequenceNumber > MAX_SEQUENCE_NUMBER) {
    throw new TypeError('a sequence number is an integer from 0 to 2^40 - 1');
  }
}

/** Whether `sequenceNumber` may be accepted under `state` (section 7.4). */
export function replayCheck(state: ReplayState, sequenceNumber: number): ReplayVerdict {
  checkNumber(sequenceNumber);
  if (state.highest < 0 || sequenceNumber > state.highest) return 'fresh';
  const below = state.highest - sequenceNumber;
  if (below >= REPLAY_WINDOW_SIZE) return 'replay';
  return ((state.bits >>> below) & 1) === 1 ? 'replay' : 'fresh';
}

/** The state after accepting `sequenceNumber`, or undefined when it is a replay (the state stays as it was). */
export function replayAccept(state: ReplayState, sequenceNumber: number): ReplayState | undefined {
  if (replayCheck(state, sequenceNumber) === 'replay') return undefined;
  if (state.highest < 0) return { highest: sequenceNumber, bits: 1 };
  if (sequenceNumber > state.highest) {
    const ahead = sequenceNumber - state.highest;
    return { highest: sequenceNumber, bits: ahead >= REPLAY_WINDOW_SIZE ? 1 : ((state.bits << ahead) | 1) >>> 0 };
  }
  return { highest: state.highest, bits: (state.bits | (1 << (state.highest - sequenceNumber))) >>> 0 };
}

/** One recipient context's window in memory, over the functions above. */
export class ReplayWindow {
  #state: ReplayState;

  constructor(state: ReplayState = EMPTY_REPLAY_STATE) {
    this.#state = state;
  }

  get state(): ReplayState {
    return this.#state;
  }

  check(sequenceNumber: number): ReplayVerdict {
    return replayCheck(this.#state, sequenceNumber);
  }

  /** Accepts `sequenceNumber` if it is fresh; false (and nothing changed) if it is a replay. Check and update in one step (section 7.4: atomic). */
  accept(sequenceNumber: number): boolean {
    const next = replayAccept(this.#state, sequenceNumber);
    if (next === undefined) return false;
    this.#state = next;
    return true;
  }
}
