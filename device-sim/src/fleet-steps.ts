import { performance } from 'node:perf_hooks';
import type { CoapAnswer } from './device-client.ts';
import type { DeviceSession } from './device-session.ts';
import { SimError } from './errors.ts';
import { ExchangeRecorder, wireErrorOf } from './exchange-recorder.ts';
import type { Authenticate } from './fleet-login.ts';
import type { ResolvedFleetOptions } from './fleet-options.ts';
import type { StepReport } from './report.ts';
import { meets, type Step } from './scenarios.ts';
import { round3 } from './stats.ts';

/**
 * revoke step: a path no route serves, so a probe with a token the gateway still accepts is
 * answered 4.04 after the token check (4.01 comes before 4.04) and never reaches the backend.
 */
const PROBE_PATH = '/device-sim-revocation-probe';
const STILL_ACCEPTED = '4.04';
const PROBE_INTERVAL_MS = 50;

/**
 * Runs a scenario's fleet-wide steps in order: each device does each step once (at most
 * `loginConcurrency` at a time), and every answer is counted against the step's expectation.
 */
export async function runSteps(steps: readonly Step[], when: 'before' | 'after', sessions: readonly DeviceSession[],
  o: ResolvedFleetOptions, authenticate: Authenticate, errorSamples: Set<string>): Promise<StepReport[]> {
  const reports: StepReport[] = [];
  for (const step of steps) {
    const recorder = new ExchangeRecorder(errorSamples);
    let asExpected = 0;
    const count = (answer: CoapAnswer | undefined) => {
      if (answer !== undefined && meets(step.expect, answer.code, wireErrorOf(answer))) asExpected += 1;
    };
    let waitedMs = 0;
    switch (step.kind) {
      case 'reading':
        await eachDevice(sessions, o.loginConcurrency, o.signal, async (s) => {
          count(await exchange(s, recorder, { method: 'POST', path: `/telemetry/${o.telemetryName}`, body: s.nextReading() }));
        });
        break;
      case 'login':
      case 'refresh':
      case 'refresh-spent':
        await eachDevice(sessions, o.loginConcurrency, o.signal, async (s) => {
          count(await authenticate(s, step.kind as 'login' | 'refresh' | 'refresh-spent', recorder));
        });
        break;
      case 'revoke': {
        await revokeAll(sessions, o);
        const revokedMs = performance.now();
        await eachDevice(sessions, o.loginConcurrency, o.signal, async (s) => {
          const answer = await probeUntilRefused(s, o, recorder, revokedMs + o.revocationWaitMs);
          count(answer);
          if (answer !== undefined && answer.code !== STILL_ACCEPTED) waitedMs = Math.max(waitedMs, performance.now() - revokedMs);
        });
        break;
      }
    }
    reports.push({
      step: step.kind, when, expect: { code: step.expect.code, wireError: step.expect.wireError ?? null },
      ...recorder.stats(), asExpected, waitedMs: round3(waitedMs),
    });
  }
  return reports;
}

/**
 * The operator's revocation of every device (`gateway devices revoke ID`), `revokeConcurrency` at
 * a time, all of them even when the run is aborted.
 */
function revokeAll(sessions: readonly DeviceSession[], o: ResolvedFleetOptions): Promise<void> {
  return eachDevice(sessions, o.revokeConcurrency, undefined, async (s) => {
    try {
      await o.revokeDevice!(s.id);
    } catch (err) {
      throw new SimError('SIM_ERR_SCENARIO', `${o.scenario.name}: revoking device ${s.id} failed: ${(err as Error).message}`, { cause: err });
    }
  });
}

/**
 * Waits, on the gateway's answers, until it refuses the device's token: probes while it still
 * answers 4.04 (token accepted), and returns the first other answer, or the last 4.04 at the
 * deadline. Only the returned answer is counted; every probe's bytes are.
 */
function probeUntilRefused(s: DeviceSession, o: ResolvedFleetOptions, recorder: ExchangeRecorder, deadlineMs: number) {
  const client = s.client!;
  return recorder.measure(client, async (clock) => {
    for (;;) {
      clock.startMs = performance.now();
      const answer = await client.send({ method: 'GET', path: PROBE_PATH, token: s.accessToken ?? null });
      if (answer.code !== STILL_ACCEPTED || performance.now() >= deadlineMs || o.signal?.aborted === true) return answer;
      await new Promise((resolve) => { setTimeout(resolve, PROBE_INTERVAL_MS); });
    }
  });
}

/** One request with the device's current token, counted under `recorder`. */
function exchange(s: DeviceSession, recorder: ExchangeRecorder, request: { method: 'POST'; path: string; body: unknown }) {
  const client = s.client!;
  return recorder.measure(client, () => client.send({ ...request, token: s.accessToken ?? null }));
}

/** Runs `task` for every device, `concurrency` at a time; stops starting new ones once `signal` aborts. */
async function eachDevice(sessions: readonly DeviceSession[], concurrency: number, signal: AbortSignal | undefined,
  task: (s: DeviceSession) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < sessions.length && signal?.aborted !== true) {
      const s = sessions[next]!;
      next += 1;
      await task(s);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions.length) }, worker));
}
