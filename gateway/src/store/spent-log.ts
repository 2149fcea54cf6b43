import { appendFile, readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file.ts';

export interface SpentLog {
  /**
   * Marks `id` spent until `expiresAtSec`; resolves false when it was spent already. The caller
   * serializes calls, and only one process may spend into a file: the map is this process's.
   */
  spend(id: string, expiresAtSec: number): Promise<boolean>;
  /** Ids remembered now. */
  size(): number;
}

/**
 * One-use token ids, kept until they expire: an in-memory map backed by an append-only file
 * (one `id expiresAtSec` line each), so spending a token costs one small append, not a rewrite
 * of every spent id. The file is compacted when most of its lines have expired.
 */
export async function openSpentLog(file: string, nowMs: () => number): Promise<SpentLog> {
  const spent = new Map<string, number>();
  let lines = 0;
  try {
    for (const line of (await readFile(file, 'utf8')).split('\n')) {
      const [id, exp] = line.split(' ');
      if (id === undefined || id === '' || exp === undefined) continue;
      lines += 1;
      spent.set(id, Number(exp));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }

  // Ids arrive with ever later expiries (now + a fixed lifetime), so the expired ones are at the
  // head of the map: pruning stops at the first live one.
  const prune = (nowSec: number): void => {
    for (const [id, exp] of spent) {
      if (exp >= nowSec) return;
      spent.delete(id);
    }
  };
  prune(Math.floor(nowMs() / 1000));

  return {
    async spend(id: string, expiresAtSec: number): Promise<boolean> {
      prune(Math.floor(nowMs() / 1000));
      if (spent.has(id)) return false;
      spent.set(id, expiresAtSec);
      if (lines > 2 * spent.size + 1000) {
        await writeFileAtomic(file, [...spent].map(([key, exp]) => `${key} ${exp}\n`).join(''));
        lines = spent.size;
      } else {
        await appendFile(file, `${id} ${expiresAtSec}\n`, { mode: 0o600 });
        lines += 1;
      }
      return true;
    },
    size: () => spent.size,
  };
}
