import { appendFile, readFile } from 'node:fs/promises';
import { writeFileAtomic } from './atomic-file.ts';

export interface SpentLog {
  /**
   * Marks `id` spent until `expiresAtSec`; resolves false when it was spent already, true once the
   * spend is on disk. Only one process may spend into a file: the map is this process's.
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

  // Lines waiting for the next write and the callers waiting on it: one write at a time takes
  // every line queued meanwhile, so spends are not held to one file write each.
  let pending: { lines: string[]; done: { resolve(): void; reject(err: unknown): void }[] } | undefined;
  let writing: Promise<void> = Promise.resolve();
  const flush = async (): Promise<void> => {
    const batch = pending!;
    pending = undefined;
    try {
      if (lines + batch.lines.length > 2 * spent.size + 1000) {
        await writeFileAtomic(file, [...spent].map(([key, exp]) => `${key} ${exp}\n`).join(''));
        lines = spent.size;
      } else {
        await appendFile(file, batch.lines.join(''), { mode: 0o600 });
        lines += batch.lines.length;
      }
      for (const waiter of batch.done) waiter.resolve();
    } catch (err) {
      for (const waiter of batch.done) waiter.reject(err);
    }
  };

  return {
    spend(id: string, expiresAtSec: number): Promise<boolean> {
      prune(Math.floor(nowMs() / 1000));
      // Checked and marked in one synchronous step: two spends of one id cannot both succeed.
      if (spent.has(id)) return Promise.resolve(false);
      spent.set(id, expiresAtSec);
      return new Promise<void>((resolve, reject) => {
        if (pending === undefined) {
          pending = { lines: [], done: [] };
          writing = writing.then(flush);
        }
        pending.lines.push(`${id} ${expiresAtSec}\n`);
        pending.done.push({ resolve, reject });
      }).then(() => true);
    },
    size: () => spent.size,
  };
}
