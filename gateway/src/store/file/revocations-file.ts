import { appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readTextIfExists, writeFileAtomic } from '../atomic-file.ts';
import type { FamilyRevocation, Revocations } from '../ports.ts';
import type { Mutate } from './mutate.ts';
import type { StoreCalls } from './store-calls.ts';

/** `<stateDir>/revocations.log`: one JSON line per revoked family, appended under the lock. */
export const REVOCATIONS_FILE = 'revocations.log';

/**
 * Past this size a revocation rewrites the file with the live entries only (expired ones pruned);
 * the next rewrite waits until the file has doubled, so that many live revocations never make
 * each new one rewrite them all.
 */
export const REVOCATIONS_COMPACT_BYTES = 64 * 1024;

export interface RevocationsContext {
  stateDir: string;
  nowMs: () => number;
  calls: StoreCalls;
  mutate: Mutate;
}

export function createRevocations({ stateDir, nowMs, calls, mutate }: RevocationsContext): Revocations {
  const file = join(stateDir, REVOCATIONS_FILE);
  let compactAtBytes = REVOCATIONS_COMPACT_BYTES;
  const live = async (nowSec: number): Promise<FamilyRevocation[]> => {
    calls.add();
    const text = await readTextIfExists(file);
    // One entry per family, its latest line winning.
    const byFamily = new Map<string, FamilyRevocation>();
    for (const line of (text ?? '').split('\n')) {
      if (line === '') continue;
      const revocation = JSON.parse(line) as FamilyRevocation;
      byFamily.set(revocation.family, revocation);
    }
    return [...byFamily.values()].filter((revocation) => revocation.untilSec > nowSec);
  };

  return {
    async revokeFamily(revocation) {
      if (typeof revocation?.family !== 'string' || !Number.isFinite(revocation.untilSec)) {
        throw new TypeError('a revocation needs a string family and a numeric untilSec');
      }
      const entry: FamilyRevocation = {
        family: revocation.family, deviceId: revocation.deviceId, atSec: revocation.atSec, untilSec: revocation.untilSec,
      };
      await mutate(async (changes) => {
        const size = await stat(file).then((stats) => stats.size, () => 0);
        calls.add();
        if (size > compactAtBytes) {
          const kept = (await live(Math.floor(nowMs() / 1000))).filter((known) => known.family !== entry.family);
          const text = [...kept, entry].map((known) => `${JSON.stringify(known)}\n`).join('');
          await writeFileAtomic(file, text, 0o600);
          compactAtBytes = Math.max(REVOCATIONS_COMPACT_BYTES, 2 * Buffer.byteLength(text));
        } else {
          await appendFile(file, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
        }
        changes.push({ kind: 'revocation', revocation: entry });
      });
    },

    list: live,
  };
}
