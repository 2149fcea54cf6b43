import { execFile } from 'node:child_process';
import { watch } from 'node:fs';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The repository root: the CLI runs from here, as an operator would run `npx gateway`. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface CliResult {
  /** Exit code; -1 when the process was killed (timeout). */
  code: number;
  stdout: string;
  stderr: string;
}

const CLI_TIMEOUT_MS = 30_000;

/** Runs the real CLI (`gateway/bin/gateway.js`) as a child process; never rejects, the result says how it ended. */
export function runCli(args: readonly string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['gateway/bin/gateway.js', ...args], { cwd: REPO_ROOT, timeout: CLI_TIMEOUT_MS },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      });
  });
}

/**
 * Waits until `check()` holds, for a change another process made in `dir` to reach the gateway.
 * Re-checks on every event of an fs.watch on `dir` and on every event-loop turn (the gateway's own
 * watcher reloads asynchronously), up to `deadlineMs`. Resolves with the time it took; rejects at
 * the deadline, so a watcher that never fires fails the test instead of hanging it.
 */
export async function waitUntilPickedUp(check: () => boolean, dir: string, deadlineMs = 2000): Promise<number> {
  const startedMs = performance.now();
  let changed: () => void = () => undefined;
  const watcher = watch(dir, { persistent: false }, () => changed());
  watcher.on('error', () => undefined);
  try {
    while (!check()) {
      const elapsedMs = performance.now() - startedMs;
      if (elapsedMs > deadlineMs) throw new Error(`not picked up within ${deadlineMs} ms`);
      await Promise.race([new Promise<void>((resolve) => { changed = resolve; }), nextTurn()]);
    }
    return Math.round(performance.now() - startedMs);
  } finally {
    watcher.close();
  }
}
