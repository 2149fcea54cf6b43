import { appendFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readTextIfExists, writeFileAtomic } from '../atomic-file.ts';
import { revocationKey, type FamilyRevocation, type Revocation, type Revocations, type TokenRevocation } from '../ports.ts';
import type { Mutate } from './mutate.ts';
import type { StoreCalls } from './store-calls.ts';

/** `<stateDir>/revocations.log`: one JSON line per revoked family or token, appended under the lock. */
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
  const live = async (nowSec: number): Promise<Revocation[]> => {
    calls.add();
    const text = await readTextIfExists(file);
    // One entry per family or jti, its latest line winning. Lines from before token revocations have no kind: families.
    const byKey = new Map<string, Revocation>();
    for (const line of (text ?? '').split('\n')) {
      if (line === '') continue;
      let revocation: Revocation;
      try {
        revocation = JSON.parse(line) as Revocation;
      } catch {
        continue; // cut short by a crash mid-append: the lines before it still hold
      }
      byKey.set(revocationKey(revocation), revocation);
    }
    return [...byKey.values()].filter((revocation) => revocation.untilSec > nowSec);
  };
  const record = (entry: Revocation): Promise<void> => mutate(async (changes) => {
    const size = await stat(file).then((stats) => stats.size, () => 0);
    calls.add();
    if (size > compactAtBytes) {
      const key = revocationKey(entry);
      const kept = (await live(Math.floor(nowMs() / 1000))).filter((known) => revocationKey(known) !== key);
      const text = [...kept, entry].map((known) => `${JSON.stringify(known)}\n`).join('');
      await writeFileAtomic(file, text, 0o600);
      compactAtBytes = Math.max(REVOCATIONS_COMPACT_BYTES, 2 * Buffer.byteLength(text));
    } else {
      await appendFile(file, `${JSON.stringify(entry)}\n`, { mode: 0o600 });
    }
    changes.push({ kind: 'revocation', revocation: entry });
  });

  return {
    revokeFamily(revocation) {
      if (typeof revocation?.family !== 'string' || !Number.isFinite(revocation.untilSec)) {
        return Promise.reject(new TypeError('a revocation needs a string family and a numeric untilSec'));
      }
      const entry: FamilyRevocation = {
        family: revocation.family, deviceId: revocation.deviceId, atSec: revocation.atSec, untilSec: revocation.untilSec,
      };
      return record(entry);
    },
    revokeToken(revocation) {
      if (typeof revocation?.jti !== 'string' || revocation.jti === '' || !Number.isFinite(revocation.untilSec)) {
        return Promise.reject(new TypeError('a token revocation needs a string jti and a numeric untilSec'));
      }
      const entry: TokenRevocation = { kind: 'token', jti: revocation.jti, atSec: revocation.atSec, untilSec: revocation.untilSec };
      return record(entry);
    },
    list: live,
  };
}
