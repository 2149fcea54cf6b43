import { TokenFormat, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import { missingCredential, type DeviceCredentials } from './devices-file.ts';
import { realClock, type WallClock } from './device-clock.ts';
import { SimError } from './errors.ts';
import {
  SCENARIOS, SCENARIO_NAMES, SECURITY_MODES, isScenarioName, underSecurity, type Scenario, type ScenarioName, type SecurityMode,
} from './scenarios.ts';

export type FleetPhase = 'open' | 'login' | 'before' | 'hold' | 'warmup' | 'load' | 'drain' | 'after' | 'close';

/** A snapshot for progress output, taken every `progressIntervalMs` and at each phase change. */
export interface FleetProgress {
  phase: FleetPhase;
  /** Seconds since the phase began. */
  elapsedSec: number;
  /** Work finished in this phase: sockets opened, logins done, or requests answered or timed out. */
  done: number;
  /** Work planned for this phase, when known. */
  total: number | undefined;
  /** Load phase: its planned length. */
  durationSec: number | undefined;
  /** Answers other than the scenario's expected one, timeouts and errors, so far. */
  unexpected: number;
  timeouts: number;
  inFlight: number;
}

export interface FleetOptions {
  /** Loopback only: 127.0.0.0/8, ::1 or localhost. */
  host: string;
  port: number;
  devices: readonly DeviceCredentials[];
  scenario: ScenarioName;
  /** Open loop: requests per second across the fleet. Exclusive with `concurrency`. */
  ratePerSec?: number;
  /** Closed loop: requests in flight, each answer starting the next (default 64, at most one per device). */
  concurrency?: number;
  /** Stop sending after this long (default 10 s when `count` is not set either). */
  durationSec?: number;
  /** Stop after this many requests. */
  count?: number;
  /** Give up on a request after this long, retransmissions included (default 5000). */
  timeoutMs?: number;
  /**
   * Before the measured load, every device sends one request that is not counted (its first
   * request costs the gateway a signature check; later ones hit its token cache).
   */
  warmup?: boolean;
  /** Logins in flight while the fleet logs in (default 100). */
  loginConcurrency?: number;
  /** Sockets bound at once while opening (default 256). */
  openBatch?: number;
  /** How a device renews its token: log in again (default) or use its refresh token. */
  refreshWith?: 'login' | 'refresh-token';
  /**
   * The access token format every login and refresh asks for (key 6 of the body). Unset: no key
   * 6, the gateway issues each device's default format.
   */
  tokenFormat?: TokenFormatName;
  /** skew scenario: device clocks off by this many seconds, half ahead and half behind (default 600). */
  skewSec?: number;
  /** Devices correct their clocks with the gateway's server time (default true). */
  clockCorrection?: boolean;
  /** expired scenario: the gateway's clock-skew leeway, waited out on top of the token lifetime (default 30). */
  leewaySec?: number;
  /** expired scenario: refuse to wait longer than this for tokens to expire (default 120). */
  maxHoldSec?: number;
  /** Readings go to POST /telemetry/<name> (default temperature). */
  telemetryName?: string;
  /** Assertion logins: the gateway's audience, its `tokens.audience` (default 'coap-gateway'). */
  audience?: string;
  /**
   * clockless scenario: nonce logins in flight at once (default 4). The gateway keeps a few
   * nonces per source address (`noncesPerAddress`, 4 by default) and a simulated fleet shares
   * one address: more at once would end each other's nonces.
   */
  noncesInFlight?: number;
  /**
   * revoked scenario: how the operator revokes a device, e.g. `gateway devices revoke ID --state DIR`
   * (run-command's --state). Resolves once the store has it.
   */
  revokeDevice?: (deviceId: string) => Promise<void>;
  /** revoked scenario: revocations in flight at once (default 4: each is a CLI process). */
  revokeConcurrency?: number;
  /** revoked scenario: how long the gateway may take to refuse a revoked device's token (default 5000 ms). */
  revocationWaitMs?: number;
  /** Do not log in; send this token (the benchmark's echo server has no /auth). */
  staticToken?: string;
  /**
   * 'oscore': every request is protected with the device's OSCORE context (each device needs
   * one, `gateway devices add --oscore`); see underSecurity for what each scenario then does.
   * Default 'none': requests in clear.
   */
  security?: SecurityMode;
  /** Under OSCORE: the tokenless scenarios (normal, wrong-scope, tampered, replay) log in and carry the token inside the protection. */
  withToken?: boolean;
  /** Bytes of each request's CoAP token (1-8); default node-coap's 8. A constrained device often uses 1 or 2. */
  tokenBytes?: number;
  /** The devices' wall clock (default: real time). Durations and latencies always use real time. */
  clock?: WallClock;
  /** Stops the load early (Ctrl-C); requests in flight still finish. */
  signal?: AbortSignal;
  onProgress?: (progress: FleetProgress) => void;
  progressIntervalMs?: number;
}

export interface ResolvedFleetOptions {
  host: string;
  port: number;
  devices: readonly DeviceCredentials[];
  scenario: Scenario;
  mode: 'rate' | 'concurrency';
  ratePerSec: number | undefined;
  concurrency: number | undefined;
  durationSec: number | undefined;
  count: number | undefined;
  /** Hard stop even in count mode: the run always ends by itself. */
  maxRunMs: number;
  timeoutMs: number;
  warmup: boolean;
  loginConcurrency: number;
  openBatch: number;
  refreshWith: 'login' | 'refresh-token';
  tokenFormat: TokenFormatName | undefined;
  skewSec: number;
  clockCorrection: boolean;
  leewaySec: number;
  maxHoldSec: number;
  telemetryName: string;
  audience: string;
  noncesInFlight: number;
  revokeDevice: ((deviceId: string) => Promise<void>) | undefined;
  revokeConcurrency: number;
  revocationWaitMs: number;
  staticToken: string | undefined;
  security: SecurityMode;
  withToken: boolean;
  tokenBytes: number | undefined;
  clock: WallClock;
  signal: AbortSignal | undefined;
  onProgress: (progress: FleetProgress) => void;
  progressIntervalMs: number;
}

export const FLEET_DEFAULTS = {
  concurrency: 64,
  durationSec: 10,
  maxRunSec: 3600,
  timeoutMs: 5000,
  loginConcurrency: 100,
  openBatch: 256,
  skewSec: 600,
  leewaySec: 30,
  maxHoldSec: 120,
  telemetryName: 'temperature',
  /** The gateway's default `tokens.audience` (a test holds the two equal). */
  audience: 'coap-gateway',
  /** The gateway's default `noncesPerAddress`. */
  noncesInFlight: 4,
  revokeConcurrency: 4,
  /** The contract: a revocation reaches a running gateway within 1 s; five times that before calling it missed. */
  revocationWaitMs: 5000,
  progressIntervalMs: 1000,
} as const;

/** Validates runFleet's options, reporting every problem at once, and fills in the defaults. */
export function resolveFleetOptions(options: FleetOptions): ResolvedFleetOptions {
  const problems: string[] = [];
  const check = (ok: boolean, problem: string) => { if (!ok) problems.push(problem); };
  const isLoopback = options.host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(options.host) || options.host === '::1';
  if (!isLoopback) {
    throw new SimError('SIM_ERR_NOT_LOOPBACK', `--host ${options.host}: the simulator only drives a gateway on this machine (127.0.0.1 or ::1)`);
  }
  check(Number.isInteger(options.port) && options.port > 0 && options.port < 65536, `--port: expected 1-65535, got ${options.port}`);
  check(isScenarioName(options.scenario), `--scenario: expected one of ${SCENARIO_NAMES.join(', ')}, got ${String(options.scenario)}`);
  check(options.devices.length > 0, 'no devices');
  const positiveInt = (name: string, value: number | undefined, max: number) =>
    check(value === undefined || (Number.isInteger(value) && value >= 1 && value <= max), `--${name}: expected a whole number from 1 to ${max}, got ${value}`);
  const positive = (name: string, value: number | undefined, max: number) =>
    check(value === undefined || (Number.isFinite(value) && value > 0 && value <= max), `--${name}: expected a number above 0, at most ${max}, got ${value}`);
  positive('rate', options.ratePerSec, 1_000_000);
  positiveInt('concurrency', options.concurrency, 1_000_000);
  positive('duration', options.durationSec, FLEET_DEFAULTS.maxRunSec);
  positiveInt('count', options.count, 100_000_000);
  positiveInt('timeout-ms', options.timeoutMs, 300_000);
  positiveInt('login-concurrency', options.loginConcurrency, 100_000);
  positiveInt('open-batch', options.openBatch, 10_000);
  check(options.skewSec === undefined || Number.isFinite(options.skewSec), `--skew-sec: expected a number, got ${options.skewSec}`);
  check(options.leewaySec === undefined || (Number.isFinite(options.leewaySec) && options.leewaySec >= 0), `--leeway-sec: expected a number >= 0, got ${options.leewaySec}`);
  positive('max-hold-sec', options.maxHoldSec, 24 * 3600);
  positiveInt('nonces-in-flight', options.noncesInFlight, 10_000);
  positiveInt('revoke-concurrency', options.revokeConcurrency, 1000);
  positiveInt('revocation-wait-ms', options.revocationWaitMs, 600_000);
  check(options.audience === undefined || (typeof options.audience === 'string' && options.audience !== ''),
    `--audience: expected the gateway's audience, got ${JSON.stringify(options.audience)}`);
  check(options.ratePerSec === undefined || options.concurrency === undefined, '--rate and --concurrency exclude each other: choose open or closed loop');
  check(options.refreshWith === undefined || options.refreshWith === 'login' || options.refreshWith === 'refresh-token',
    `--refresh-with: expected login or refresh-token, got ${String(options.refreshWith)}`);
  check(options.security === undefined || (SECURITY_MODES as readonly string[]).includes(options.security),
    `--security: expected ${SECURITY_MODES.join(' or ')}, got ${String(options.security)}`);
  check(options.tokenBytes === undefined || (Number.isInteger(options.tokenBytes) && options.tokenBytes >= 1 && options.tokenBytes <= 8),
    `--coap-token-bytes: expected a whole number from 1 to 8, got ${options.tokenBytes}`);
  check(options.tokenFormat === undefined || Object.hasOwn(TokenFormat, options.tokenFormat),
    `--token-format: expected ${Object.keys(TokenFormat).join(' or ')}, got ${String(options.tokenFormat)}`);
  const telemetryName = options.telemetryName ?? FLEET_DEFAULTS.telemetryName;
  check(/^[A-Za-z0-9._~-]+$/.test(telemetryName), `--telemetry-name: expected one path segment, got ${telemetryName}`);
  const mode = options.ratePerSec !== undefined ? 'rate' : 'concurrency';
  const concurrency = mode === 'concurrency' ? options.concurrency ?? Math.min(FLEET_DEFAULTS.concurrency, options.devices.length) : undefined;
  // RFC 7252 section 4.7 (NSTART = 1): a device has at most one request outstanding.
  check(concurrency === undefined || concurrency <= options.devices.length,
    `--concurrency ${concurrency}: at most one request in flight per device (CoAP NSTART = 1), and there are ${options.devices.length} devices`);
  if (problems.length > 0) throw new SimError('SIM_ERR_BAD_OPTION', problems.join('; '));

  const security = options.security ?? 'none';
  const withToken = options.withToken ?? false;
  const scenario = underSecurity(SCENARIOS[options.scenario], security, withToken);
  const staticToken = options.staticToken !== undefined;
  if (security === 'oscore') {
    if (staticToken) throw new SimError('SIM_ERR_BAD_OPTION', 'a static token and --security oscore exclude each other');
    const missing = missingCredential(options.devices, 'oscore');
    if (missing !== undefined) {
      throw new SimError('SIM_ERR_DEVICES_FILE', `--security oscore protects every request with the device's OSCORE context, but ${missing}; `
        + 'provision with `gateway devices add --count N --oscore --out devices.json`');
    }
  }
  if (!staticToken) checkCredentials(scenario, options);
  if (!staticToken && scenario.before.concat(scenario.after).some((step) => step.kind === 'revoke') && options.revokeDevice === undefined) {
    throw new SimError('SIM_ERR_BAD_OPTION', `--scenario ${scenario.name}: the operator revokes every device with \`gateway devices revoke ID\`; `
      + 'give the gateway\'s store: --state DIR (and --store, as the gateway was started)');
  }
  const durationSec = options.durationSec ?? (options.count === undefined ? FLEET_DEFAULTS.durationSec : undefined);
  return {
    host: options.host === 'localhost' ? '127.0.0.1' : options.host,
    port: options.port,
    devices: options.devices,
    scenario,
    mode,
    ratePerSec: options.ratePerSec,
    concurrency,
    durationSec,
    count: options.count,
    maxRunMs: (durationSec ?? FLEET_DEFAULTS.maxRunSec) * 1000,
    timeoutMs: options.timeoutMs ?? FLEET_DEFAULTS.timeoutMs,
    warmup: options.warmup ?? false,
    loginConcurrency: options.loginConcurrency ?? FLEET_DEFAULTS.loginConcurrency,
    openBatch: options.openBatch ?? FLEET_DEFAULTS.openBatch,
    refreshWith: options.refreshWith ?? 'login',
    tokenFormat: options.tokenFormat,
    skewSec: scenario.skewsClock ? Math.abs(options.skewSec ?? FLEET_DEFAULTS.skewSec) : 0,
    clockCorrection: options.clockCorrection ?? true,
    leewaySec: options.leewaySec ?? FLEET_DEFAULTS.leewaySec,
    maxHoldSec: options.maxHoldSec ?? FLEET_DEFAULTS.maxHoldSec,
    telemetryName,
    audience: options.audience ?? FLEET_DEFAULTS.audience,
    noncesInFlight: options.noncesInFlight ?? FLEET_DEFAULTS.noncesInFlight,
    revokeDevice: options.revokeDevice,
    revokeConcurrency: options.revokeConcurrency ?? FLEET_DEFAULTS.revokeConcurrency,
    revocationWaitMs: options.revocationWaitMs ?? FLEET_DEFAULTS.revocationWaitMs,
    staticToken: options.staticToken,
    security,
    withToken,
    tokenBytes: options.tokenBytes,
    clock: options.clock ?? realClock,
    signal: options.signal,
    onProgress: options.onProgress ?? (() => undefined),
    progressIntervalMs: options.progressIntervalMs ?? FLEET_DEFAULTS.progressIntervalMs,
  };
}

/** Every device must hold what the scenario logs in with (if it logs in); the error names those that do not. */
function checkCredentials(scenario: Scenario, options: FleetOptions): void {
  const logsIn = scenario.logsIn || scenario.turn === 'login'
    || scenario.before.concat(scenario.after).some((step) => step.kind === 'login' || step.kind === 'refresh');
  if (!logsIn) return;
  const needsKey = scenario.login !== 'secret';
  const missing = missingCredential(options.devices, needsKey ? 'privateJwk' : 'secret');
  if (missing === undefined) return;
  throw new SimError('SIM_ERR_DEVICES_FILE', `--scenario ${scenario.name} logs in with ${needsKey ? 'a signed assertion' : 'a secret'}, but ${missing}; `
    + (needsKey ? 'provision with `gateway devices add --count N --key-type ES256 --out devices.json`'
      : 'provision with `gateway devices add --count N --out devices.json`, or run a scenario that logs in with keys (assertion, clockless)'));
}
