import { performance } from 'node:perf_hooks';
import { DeviceClient, type CoapAnswer } from './device-client.ts';
import { DEFAULT_MAX_AGE_SEC, type DeviceSession } from './device-session.ts';
import { SimError } from './errors.ts';
import type { ResolvedFleetOptions } from './fleet-options.ts';

const LOGIN_ATTEMPTS = 3;
const LOGIN_PHASE_LIMIT_MS = 120_000;

/** Binds one socket per device, `openBatch` at a time; on failure closes what it opened. */
export async function openSockets(sessions: DeviceSession[], o: ResolvedFleetOptions, onOpened: (n: number) => void): Promise<DeviceSession[]> {
  let count = 0;
  try {
    for (let i = 0; i < sessions.length; i += o.openBatch) {
      const batch = sessions.slice(i, i + o.openBatch);
      const results = await Promise.allSettled(batch.map(async (s) => {
        s.client = await DeviceClient.open(o.host, o.port, {
          timeoutMs: o.timeoutMs, tokenBytes: o.tokenBytes, ...(o.security === 'oscore' ? { oscore: s.oscore! } : {}),
        });
      }));
      count += results.filter((r) => r.status === 'fulfilled').length;
      onOpened(count);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) {
        const code = (failed.reason as NodeJS.ErrnoException).code ?? (failed.reason as Error).message;
        throw new SimError('SIM_ERR_SOCKETS', `could not open a UDP socket for device ${count + 1} of ${sessions.length} (${code}); `
          + 'raise the file descriptor limit (ulimit -n) or simulate fewer devices', { cause: failed.reason });
      }
    }
  } catch (err) {
    await Promise.all(sessions.filter((s) => s.client !== undefined).map((s) => s.client!.close()));
    throw err;
  }
  return sessions;
}

/** Logs every device in, `concurrency` at a time; a 4.29 or 5.03 makes that device wait Max-Age and retry. */
export async function logInAll(sessions: DeviceSession[], concurrency: number,
  login: (s: DeviceSession) => Promise<CoapAnswer | undefined>, signal?: AbortSignal): Promise<void> {
  const deadlineMs = performance.now() + LOGIN_PHASE_LIMIT_MS;
  let next = 0;
  // Bounded in time and stoppable: devices not reached by then simply stay logged out.
  const worker = async () => {
    while (next < sessions.length && performance.now() < deadlineMs && signal?.aborted !== true) {
      const s = sessions[next]!;
      next += 1;
      for (let attempt = 1; attempt <= LOGIN_ATTEMPTS; attempt += 1) {
        const answer = await login(s);
        if (answer === undefined || (answer.code !== '4.29' && answer.code !== '5.03')) break;
        const waitMs = (answer.maxAgeSec ?? DEFAULT_MAX_AGE_SEC) * 1000;
        if (performance.now() + waitMs > deadlineMs) break;
        await new Promise((resolve) => { setTimeout(resolve, waitMs); });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions.length) }, worker));
}

/**
 * expired scenario: waits until the gateway must see every token as expired (its exp plus the
 * gateway's leeway, by the devices' estimate of the gateway's clock).
 */
export async function holdUntilExpired(sessions: DeviceSession[], o: ResolvedFleetOptions): Promise<void> {
  let waitMs = 0;
  for (const s of sessions) waitMs = Math.max(waitMs, s.expiredAtServerMs - s.clock.serverNowMs());
  if (waitMs > o.maxHoldSec * 1000) {
    throw new SimError('SIM_ERR_SCENARIO', `expired: the tokens stay valid for another ${Math.ceil(waitMs / 1000)} s `
      + `(lifetime + --leeway-sec ${o.leewaySec}), more than --max-hold-sec ${o.maxHoldSec}. Run the gateway with short-lived `
      + 'tokens for this scenario, e.g. `gateway serve --token-ttl 2 --leeway 0 ...` and `device-sim run --scenario expired --leeway-sec 0 ...`');
  }
  if (o.signal?.aborted === true) return;
  const signal = o.signal;
  await Promise.race([
    o.clock.sleep(waitMs),
    ...(signal !== undefined ? [new Promise<void>((resolve) => { signal.addEventListener('abort', () => resolve(), { once: true }); })] : []),
  ]);
}
