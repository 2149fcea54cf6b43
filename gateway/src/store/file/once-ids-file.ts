import { join } from 'node:path';
import type { OneTimeIds } from '../ports.ts';
import { openSpentLog, type SpentLog } from '../spent-log.ts';
import type { StoreCalls } from './store-calls.ts';

/** `<stateDir>/spent-tokens.log`, the name the file store always used (restarts keep what was spent). */
export const SPENT_FILE = 'spent-tokens.log';

export interface OneTimeIdsContext {
  stateDir: string;
  nowMs: () => number;
  calls: StoreCalls;
}

/**
 * Spent ids in this process's memory, appended to the spent log. Only a gateway spends (the CLI
 * never does) and the `file` store serves one gateway, so the log has one writer: its writes go
 * one at a time (each taking every spend queued meanwhile) and take no state-directory lock, so
 * that a login or refresh never waits behind a CLI bulk add holding the lock for seconds. The log is read at the first spend,
 * not at open: a CLI command never reads it.
 */
export function createOneTimeIds({ stateDir, nowMs, calls }: OneTimeIdsContext): OneTimeIds & { idle(): Promise<void> } {
  const file = join(stateDir, SPENT_FILE);
  let log: Promise<SpentLog> | undefined;
  let last: Promise<unknown> = Promise.resolve();

  return {
    consume(id, expiresAtSec) {
      if (typeof id !== 'string' || id === '' || /\s/.test(id)) return Promise.reject(new TypeError('a one-time id is a non-empty string without spaces'));
      if (log === undefined) {
        calls.add();
        log = openSpentLog(file, nowMs);
        // A failed read is retried by the next call rather than remembered.
        log.catch(() => { log = undefined; });
      }
      const next = log.then(async (opened) => {
        const spent = await opened.spend(id, expiresAtSec);
        if (spent) calls.add();
        return spent;
      });
      last = next.catch(() => undefined);
      return next;
    },
    idle: () => last.then(() => undefined),
  };
}
