import { performance } from 'node:perf_hooks';
import type { DeviceSession } from './device-session.ts';
import type { ResolvedFleetOptions } from './fleet-options.ts';
import { NumberQueue } from './stats.ts';

/**
 * The load: open loop (`ratePerSec`: requests start on schedule, on the next idle device) or
 * closed loop (`concurrency` in flight). A device has one request outstanding at a time and sits
 * out its Max-Age after a 4.29 or 5.03. Calls `onStopSending` when it stops starting requests
 * (the drain begins) and resolves when the last one has finished.
 */
export function loadLoop(sessions: DeviceSession[], o: ResolvedFleetOptions, turn: (s: DeviceSession, dueMs: number | undefined) => Promise<void>,
  counters: { inFlight: number }, onStopSending: () => void): Promise<void> {
  return new Promise((resolve) => {
    const idle = new NumberQueue(sessions.length);
    for (let i = 0; i < sessions.length; i += 1) idle.push(i);
    const startMs = performance.now();
    const deadlineMs = startMs + o.maxRunMs;
    const backoffTimers = new Set<NodeJS.Timeout>();
    let issued = 0;
    let stopped = false;
    let finished = false;
    let stopListening = (): void => undefined;

    const sending = (now: number): boolean => {
      const more = now < deadlineMs && (o.count === undefined || issued < o.count) && o.signal?.aborted !== true;
      if (!more && !stopped) {
        stopped = true;
        onStopSending();
      }
      return more;
    };
    const finish = () => {
      if (finished) return;
      finished = true;
      if (!stopped) {
        stopped = true;
        onStopSending();
      }
      if (ticker !== undefined) clearInterval(ticker);
      clearTimeout(stopTimer);
      for (const timer of backoffTimers) clearTimeout(timer);
      stopListening();
      resolve();
    };
    const release = (i: number) => {
      const waitMs = sessions[i]!.backoffUntilMs - performance.now();
      if (waitMs <= 0) {
        idle.push(i);
        return;
      }
      // Backing off past the end of the run: the device sits the rest of it out.
      if (performance.now() + waitMs >= deadlineMs) return;
      const timer = setTimeout(() => {
        backoffTimers.delete(timer);
        idle.push(i);
        pump();
      }, waitMs);
      backoffTimers.add(timer);
    };
    const pump = () => {
      if (finished) return;
      const now = performance.now();
      while (idle.size > 0 && sending(now)) {
        if (o.mode === 'rate' ? issued >= Math.floor(((now - startMs) * o.ratePerSec!) / 1000) + 1 : counters.inFlight >= o.concurrency!) break;
        const i = idle.shift()!;
        // Open loop: the slot this request was due in, so time spent waiting behind a busy
        // generator or fleet counts as latency (no coordinated omission).
        const dueMs = o.mode === 'rate' ? startMs + (issued * 1000) / o.ratePerSec! : undefined;
        issued += 1;
        counters.inFlight += 1;
        void turn(sessions[i]!, dueMs).finally(() => {
          counters.inFlight -= 1;
          release(i);
          pump();
        });
      }
      const nothingLeft = idle.size === 0 && backoffTimers.size === 0;
      if (counters.inFlight === 0 && (!sending(now) || nothingLeft)) finish();
    };
    // Open loop: a 1 ms tick starts what is due. Closed loop: answers start the next request.
    const ticker = o.mode === 'rate' ? setInterval(pump, 1) : undefined;
    const stopTimer = setTimeout(pump, o.maxRunMs);
    o.signal?.addEventListener('abort', pump, { once: true });
    stopListening = () => o.signal?.removeEventListener('abort', pump);
    pump();
  });
}
