import type { OscoreWindows } from '../ports.ts';
import {
  MAX_SEQUENCE_NUMBER, RETIRED_SEQUENCE_KEEP_MS, checkGeneration, checkSequenceBlock, checkSequenceNumber,
} from '../replay-window.ts';
import type { RedisPortContext } from './redis-key-layout.ts';

/**
 * The fleet's OSCORE replay windows and sender sequence counters, one key each per context
 * generation. Every accept is one script (check and set in one step), so the window is shared:
 * a request accepted by one gateway and replayed to another is refused there, at the cost of a
 * round trip per protected request. A window idle for `oscoreWindowIdleMs` expires (its next
 * request recovers with Echo), so the windows of contexts no gateway serves any more cost nothing.
 * Sequence blocks are INCRBY on a counter that outlives restarts, as Redis's own persistence does:
 * a Redis that can lose acknowledged writes (no AOF, or a restored backup) can hand out a block twice.
 */
export function createRedisOscoreWindows({ session, scripts, layout, oscoreWindowIdleMs }: RedisPortContext): OscoreWindows {
  return {
    async accept(generation, sequenceNumber) {
      checkSequenceNumber(sequenceNumber);
      return session.run(() => scripts.acceptSequence([layout.oscoreWindow(generation)], [sequenceNumber, oscoreWindowIdleMs]));
    },
    async establish(generation, sequenceNumber) {
      checkGeneration(generation);
      if (sequenceNumber !== undefined) checkSequenceNumber(sequenceNumber);
      // At a number received: it and all 32 below count as seen (mask -1: every bit, as the script keeps masks).
      const window = sequenceNumber === undefined ? '-1:0' : `${sequenceNumber}:-1`;
      await session.run((client) => client.set(layout.oscoreWindow(generation), window, 'PX', oscoreWindowIdleMs));
    },
    async reserveSequence(generation, count) {
      checkGeneration(generation);
      checkSequenceBlock(count);
      const first = await session.run(() => scripts.reserveSequence([layout.oscoreSequence(generation)], [count, MAX_SEQUENCE_NUMBER + 1]));
      if (first < 0) throw new RangeError(`the sender sequence numbers of context ${generation} are spent: rotate the device's context`);
      return first;
    },
    async forget(generation) {
      checkGeneration(generation);
      await session.run((client) => client.multi()
        .del(layout.oscoreWindow(generation))
        .pexpire(layout.oscoreSequence(generation), RETIRED_SEQUENCE_KEEP_MS)
        .exec());
    },
  };
}
