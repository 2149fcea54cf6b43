import { performance } from 'node:perf_hooks';
import { AuthRequestKey, TokenFormat, WireError } from '../../gateway/src/wire/index.ts';
import type { CoapAnswer, OscoreClientStats, SendOptions } from './device-client.ts';
import type { DeviceCredentials } from './devices-file.ts';
import { DEFAULT_MAX_AGE_SEC, DeviceSession } from './device-session.ts';
import { replayDatagram } from './eavesdropper.ts';
import { ExchangeRecorder, serverTimeOf, wireErrorOf } from './exchange-recorder.ts';
import { createAuthenticate } from './fleet-login.ts';
import { resolveFleetOptions, type FleetOptions, type FleetPhase } from './fleet-options.ts';
import { holdUntilExpired, logInAll, openSockets } from './fleet-phases.ts';
import { runSteps } from './fleet-steps.ts';
import { loadLoop } from './load-loop.ts';
import { FLEET_REPORT_SCHEMA_ID, FRAME_MODEL, type FleetReport, type StepReport } from './report.ts';
import { meets, tamperToken } from './scenarios.ts';
import { round3 } from './stats.ts';

export type { FleetOptions, FleetProgress } from './fleet-options.ts';

const CLOSE_BATCH = 512;
const WARMUP_LIMIT_MS = 60_000;

/**
 * Runs a simulated fleet against a gateway and returns the report: every device has its own UDP
 * socket (own source port, so message IDs and deduplication are per endpoint as with real
 * devices), logs in, keeps its token fresh, and sends confirmable CBOR requests at a total
 * rate (open loop) or with a bounded number in flight (closed loop), for a duration or a count.
 */
export async function runFleet(input: FleetOptions): Promise<FleetReport> {
  const o = resolveFleetOptions(input);
  const startedAt = new Date().toISOString();
  const errorSamples = new Set<string>();
  let requests = new ExchangeRecorder(errorSamples);
  const logins = new ExchangeRecorder(errorSamples);
  /** Access tokens issued by format, over every login and refresh (the login phase, renewals, steps). */
  const tokensIssued = { jwt: 0, cwt: 0 };
  const counters = { asExpected: 0, backoffs: 0, refreshes: 0, inFlight: 0, replays: 0 };
  const phasesSec = { open: 0, login: 0, before: 0, hold: 0, warmup: 0, load: 0, drain: 0, after: 0 };
  const steps: StepReport[] = [];
  const sessions = o.devices.map((creds, i) => new DeviceSession(i, creds, o));

  // Progress: one timer for the whole run, reading whatever the current phase counts.
  let phase: FleetPhase = 'open';
  let phaseStartMs = performance.now();
  let phaseDone = (): number => 0;
  let phaseTotal: number | undefined = sessions.length;
  const report = () => o.onProgress({
    phase, elapsedSec: (performance.now() - phaseStartMs) / 1000, done: phaseDone(), total: phaseTotal,
    durationSec: phase === 'load' ? o.durationSec : undefined,
    unexpected: requests.answered - counters.asExpected + requests.timeouts + requests.errors,
    timeouts: requests.timeouts, inFlight: counters.inFlight,
  });
  const enter = (next: FleetPhase, done: () => number, total: number | undefined): number => {
    const endedSec = round3((performance.now() - phaseStartMs) / 1000);
    report();
    phase = next;
    phaseStartMs = performance.now();
    phaseDone = done;
    phaseTotal = total;
    report();
    return endedSec;
  };
  const progressTimer = setInterval(report, o.progressIntervalMs);
  progressTimer.unref();

  const authenticate = createAuthenticate(o, errorSamples, tokensIssued);
  /** One login (or /auth/refresh, with --refresh-with refresh-token), counted under `logins`. */
  const login = (s: DeviceSession): Promise<CoapAnswer | undefined> =>
    authenticate(s, o.refreshWith === 'refresh-token' && s.refreshToken !== undefined ? 'refresh' : 'login', logins);

  const requestFor = (s: DeviceSession): SendOptions => {
    const token = o.staticToken ?? s.accessToken ?? null;
    switch (o.scenario.turn) {
      case 'reading':
        return { method: 'POST', path: `/telemetry/${o.telemetryName}`, body: s.nextReading(), token };
      case 'tampered-reading':
        return { method: 'POST', path: `/telemetry/${o.telemetryName}`, body: s.nextReading(), token: token === null ? null : tamperToken(token) };
      case 'tampered-ciphertext':
        return { method: 'POST', path: `/telemetry/${o.telemetryName}`, body: s.nextReading(), token, tamperCiphertext: true };
      case 'replayed-reading':
        return { method: 'POST', path: `/telemetry/${o.telemetryName}`, body: s.nextReading(), token };
      case 'config':
        return { method: 'GET', path: '/config', token };
      case 'login': {
        const body = new Map<number, unknown>([[AuthRequestKey.deviceId, s.id], [AuthRequestKey.secret, s.secret!]]);
        if (o.tokenFormat !== undefined) body.set(AuthRequestKey.tokenFormat, TokenFormat[o.tokenFormat]);
        return { method: 'POST', path: '/auth', body };
      }
    }
  };

  /** A device's turn: renew its token if due, then one request, counted under `requests`. */
  const turn = async (s: DeviceSession, dueMs: number | undefined): Promise<void> => {
    // A renewal that fails (even with 4.29) still leaves a token with a quarter of its life to
    // use, so the reading goes out; the device backs off after this turn.
    let renewed = false;
    if (o.scenario.refreshes && o.staticToken === undefined && s.dueForRefresh()) {
      counters.refreshes += 1;
      renewed = true;
      await login(s);
    }
    const client = s.client!;
    const request = requestFor(s);
    // Open loop: latency counts from when the request was due (a login before it is counted
    // under logins instead); closed loop: from when it was sent.
    const startMs = dueMs !== undefined && !renewed ? Math.min(dueMs, performance.now()) : performance.now();
    const answer = await requests.measure(client, o.scenario.turn === 'replayed-reading'
      ? () => sendThenReplay(client, request)
      : () => client.send(request), startMs);
    if (answer === undefined) return;
    const wire = wireErrorOf(answer);
    if (meets(o.scenario.expect, answer.code, wire)) counters.asExpected += 1;
    const serverTimeSec = serverTimeOf(answer);
    if (serverTimeSec !== undefined) s.clock.learn(serverTimeSec);
    if (answer.code === '4.29' || answer.code === '5.03') {
      counters.backoffs += 1;
      s.backOff((answer.maxAgeSec ?? DEFAULT_MAX_AGE_SEC) * 1000);
    }
    // A device that finds its token expired logs in again on its next turn (unless the
    // scenario is about sending expired tokens).
    if (wire === WireError.tokenExpired && o.scenario.refreshes) s.markTokenStale();
  };

  /** replay scenario: the reading, then (once it was answered 2.01) an eavesdropper's copy of its datagram; the copy's answer counts. */
  const sendThenReplay = async (client: NonNullable<DeviceSession['client']>, request: SendOptions): Promise<CoapAnswer> => {
    const first = await client.send(request);
    const datagram = client.lastRequestDatagram;
    if (first.code !== '2.01' || datagram === undefined) return first;
    counters.replays += 1;
    return replayDatagram(o.host, o.port, datagram, o.timeoutMs);
  };

  let opened: DeviceSession[] = [];
  let warmupRequests = 0;
  const oscoreTotals: OscoreClientStats = { protectedRequests: 0, echoRecoveries: 0, unprotectedErrors: 0, refusedAnswers: 0 };
  try {
    opened = await openSockets(sessions, o, (n) => { phaseDone = () => n; });
    phasesSec.open = enter('login', () => logins.answered + logins.timeouts + logins.errors, opened.length);
    let ready = opened;
    if (o.scenario.logsIn && o.staticToken === undefined) {
      await logInAll(opened, o.loginConcurrency, login, o.signal);
      ready = opened.filter((s) => s.accessToken !== undefined);
    }
    const answered = () => requests.answered + requests.timeouts + requests.errors;
    // The phase before the load: login, then the scenario's steps, then the hold.
    let previous: 'login' | 'before' | 'hold' = 'login';
    const leave = (next: FleetPhase, done: () => number, total: number | undefined) => {
      phasesSec[previous] = enter(next, done, total);
    };
    if (o.scenario.before.length > 0 && o.staticToken === undefined) {
      leave('before', () => 0, undefined);
      previous = 'before';
      steps.push(...await runSteps(o.scenario.before, 'before', ready, o, authenticate, errorSamples));
    }
    if (o.scenario.holdsExpiredTokens) {
      leave('hold', () => 0, undefined);
      previous = 'hold';
      await holdUntilExpired(ready, o);
    }
    const leaveLoginOrHold = leave;
    if (o.warmup && ready.length > 0) {
      // Every device sends once, uncounted: its token is verified and cached, the code is warm.
      leaveLoginOrHold('warmup', answered, ready.length);
      await loadLoop(ready, { ...o, count: ready.length, maxRunMs: WARMUP_LIMIT_MS }, turn, counters, () => undefined);
      warmupRequests = requests.sent;
      requests = new ExchangeRecorder(errorSamples);
      counters.asExpected = 0;
      counters.backoffs = 0;
      phasesSec.warmup = enter('load', answered, o.count);
    } else {
      leaveLoginOrHold('load', answered, o.count);
    }
    const loadStartMs = phaseStartMs;
    await loadLoop(ready, o, turn, counters, () => {
      phasesSec.load = enter('drain', phaseDone, phaseTotal);
    });
    phasesSec.drain = round3((performance.now() - loadStartMs) / 1000 - phasesSec.load);
    if (o.scenario.after.length > 0 && o.staticToken === undefined) {
      enter('after', () => 0, undefined);
      const afterStartMs = performance.now();
      steps.push(...await runSteps(o.scenario.after, 'after', ready, o, authenticate, errorSamples));
      phasesSec.after = round3((performance.now() - afterStartMs) / 1000);
    }
    enter('close', () => 0, undefined);
  } finally {
    clearInterval(progressTimer);
    for (const s of opened) {
      const stats = s.client!.oscoreStats();
      for (const key of Object.keys(oscoreTotals) as (keyof OscoreClientStats)[]) oscoreTotals[key] += stats[key];
    }
    for (let i = 0; i < opened.length; i += CLOSE_BATCH) await Promise.all(opened.slice(i, i + CLOSE_BATCH).map((s) => s.client!.close()));
  }

  const loginCount = opened.filter((s) => s.loggedIn).length;
  const firstLogins = logins.sent - counters.refreshes;
  return {
    schema: FLEET_REPORT_SCHEMA_ID,
    scenario: {
      name: o.scenario.name,
      login: o.scenario.login,
      expect: { code: o.scenario.expect.code, wireError: o.scenario.expect.wireError ?? null },
      skewSec: o.skewSec,
      clockCorrection: o.clockCorrection,
      heldPastExpirySec: phasesSec.hold,
      tokenFormat: o.tokenFormat ?? null,
    },
    tokensIssued,
    security: {
      mode: o.security,
      withToken: o.withToken,
      coapTokenBytes: o.tokenBytes ?? null,
      oscore: o.security === 'oscore' ? { ...oscoreTotals, replaysSent: counters.replays } : null,
    },
    frameModel: FRAME_MODEL,
    target: o.host.includes(':') ? `[${o.host}]:${o.port}` : `${o.host}:${o.port}`,
    startedAt,
    node: process.version,
    load: {
      mode: o.mode,
      ratePerSec: o.mode === 'rate' ? o.ratePerSec! : null,
      concurrency: o.mode === 'concurrency' ? o.concurrency! : null,
      durationSec: o.durationSec ?? null,
      count: o.count ?? null,
      timeoutMs: o.timeoutMs,
      warmupRequests,
    },
    devices: {
      total: sessions.length,
      opened: opened.length,
      loggedIn: loginCount,
      loginFailed: o.scenario.logsIn && o.staticToken === undefined ? opened.length - loginCount : 0,
    },
    phasesSec,
    steps,
    requests: {
      ...requests.stats(),
      asExpected: counters.asExpected,
      backoffs: counters.backoffs,
      ratePerSec: phasesSec.load > 0 ? round3(requests.sent / phasesSec.load) : 0,
    },
    logins: {
      ...logins.stats(),
      refreshes: counters.refreshes,
      loginPhaseRatePerSec: phasesSec.login > 0 ? round3(firstLogins / phasesSec.login) : 0,
    },
    errorSamples: [...errorSamples],
  };
}

export type { DeviceCredentials };
