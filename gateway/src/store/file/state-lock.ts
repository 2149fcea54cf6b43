import { randomBytes } from 'node:crypto';
import { link, open, readFile, rename, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { StoreUnavailableError } from '../ports.ts';

/** `<stateDir>/store.lock`: exists while one process rewrites store files. */
export const LOCK_FILE = 'store.lock';

export interface StateLockOptions {
  /**
   * How long to wait for another holder. Long enough for a bulk add of a hundred thousand devices
   * or the one-time migration of a large devices.json (seconds), after which the caller hears
   * StoreUnavailableError (an admin call answers 503) rather than waiting forever.
   */
  timeoutMs?: number;
  /** A holder touches the file this often, so that others can tell it is alive... */
  heartbeatMs?: number;
  /** ...and a lock untouched for this long is taken over (a holder on another host or PID namespace). */
  staleMs?: number;
}

/** What a task learns as it gets the lock. */
export interface LockHeld {
  /**
   * The lock was taken over from a holder that died holding it, maybe halfway through a change:
   * the task first repairs what such a change can leave (a device count, an unjournaled change).
   */
  tookOver: boolean;
}

export interface StateLock {
  /** Runs `task` holding the lock: after this process's earlier tasks, and with no other process's. */
  run<T>(task: (held: LockHeld) => Promise<T>): Promise<T>;
  /** Resolves when no task of this process is queued or running. */
  idle(): Promise<void>;
}

interface Holder {
  pid: number;
  host: string;
  /** Tells this holding from any other by the same process (two stores in one process). */
  token: string;
}

/**
 * An exclusive lock between the processes sharing a state directory (the gateway's admin API,
 * the CLI), made of a file created with O_EXCL: no native module, and it works wherever
 * `open(..., 'wx')` is atomic (local file systems). A lock whose holder died is taken over at
 * once when the holder ran on this host (its pid is gone), else once its heartbeat is stale.
 */
export function createStateLock(file: string, options: StateLockOptions = {}): StateLock {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const heartbeatMs = options.heartbeatMs ?? 2_000;
  const staleMs = options.staleMs ?? 10_000;
  const host = hostname();
  let queue: Promise<unknown> = Promise.resolve();

  const acquire = async (): Promise<{ tookOver: boolean; release(): Promise<void> }> => {
    const me: Holder = { pid: process.pid, host, token: randomBytes(8).toString('hex') };
    const content = JSON.stringify(me);
    const deadline = Date.now() + timeoutMs;
    let delayMs = 1;
    let tookOver = false;
    for (;;) {
      try {
        const handle = await open(file, 'wx', 0o600);
        try {
          await handle.writeFile(content);
        } finally {
          await handle.close();
        }
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      if (await takeOverIfStale(file, host, staleMs)) {
        tookOver = true;
        continue;
      }
      if (Date.now() >= deadline) {
        throw new StoreUnavailableError(`the state directory is locked by another process (${file}) for over ${timeoutMs} ms`);
      }
      // Short polls: holders are usually done within milliseconds, and a wait must not add more.
      await sleep(delayMs + Math.random() * delayMs);
      delayMs = Math.min(delayMs * 2, 8);
    }
    const heartbeat = setInterval(() => {
      const now = new Date();
      utimes(file, now, now).catch(() => undefined);
    }, heartbeatMs);
    heartbeat.unref();
    const release = async () => {
      clearInterval(heartbeat);
      // Someone who judged this holder dead may own the file now: remove only our own.
      const current = await readFile(file, 'utf8').catch(() => undefined);
      if (current === content) await unlink(file).catch(() => undefined);
    };
    return { tookOver, release };
  };

  return {
    run<T>(task: (held: LockHeld) => Promise<T>): Promise<T> {
      const next = queue.then(async () => {
        const { tookOver, release } = await acquire();
        try {
          return await task({ tookOver });
        } finally {
          await release();
        }
      });
      queue = next.catch(() => undefined);
      return next;
    },
    idle: () => queue.then(() => undefined),
  };
}

/** True when the lock was stale and is gone now (the caller retries at once). */
async function takeOverIfStale(file: string, host: string, staleMs: number): Promise<boolean> {
  let seen: string;
  let touchedMs: number;
  try {
    [seen, touchedMs] = await Promise.all([readFile(file, 'utf8'), stat(file).then((s) => s.mtimeMs)]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  if (!isStale(seen, touchedMs, host, staleMs)) return false;
  // Renaming is atomic: of two processes taking over at once, one moves the stale file away; the
  // other moves whatever is there then, and puts it back if it was a live holder's. (A third
  // process creating a lock in that instant would make the put-back fail: three writers racing
  // over a dead holder's lock, which a gateway and a CLI never are.)
  const aside = `${file}.${randomBytes(6).toString('hex')}.stale`;
  try {
    await rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => '');
  if (moved !== seen) await link(aside, file).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
  return true;
}

function isStale(content: string, touchedMs: number, host: string, staleMs: number): boolean {
  if (Date.now() - touchedMs > staleMs) return true;
  let holder: Partial<Holder>;
  try {
    holder = JSON.parse(content) as Partial<Holder>;
  } catch {
    // Created but not written yet (or cut short): its heartbeat decides.
    return false;
  }
  return holder.host === host && typeof holder.pid === 'number' && !isAlive(holder.pid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
