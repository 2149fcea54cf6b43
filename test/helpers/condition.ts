/** How long a condition may take before the wait fails the test (a failure guard, never a sync point). */
const GUARD_MS = 5000;

/**
 * Waiting on events without sleeping: `until(ready)` resolves as soon as `ready()` holds, checked
 * now and after every `notify()` (called by whatever the test records: a datagram sent, a give-up).
 */
export function conditions() {
  const waiters: { ready: () => boolean; wake: () => void }[] = [];
  return {
    notify(): void {
      for (const waiter of [...waiters]) {
        if (waiter.ready()) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.wake();
        }
      }
    },
    until(ready: () => boolean, what: string): Promise<void> {
      return new Promise<void>((resolve, reject) => {
        if (ready()) {
          resolve();
          return;
        }
        // Not unref'd: keeps the process alive while the code under test runs on unref'd timers.
        const guard = setTimeout(() => reject(new Error(`timed out after ${GUARD_MS} ms waiting for ${what}`)), GUARD_MS);
        waiters.push({ ready, wake: () => { clearTimeout(guard); resolve(); } });
      });
    },
  };
}
