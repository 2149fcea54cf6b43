import { TokenFormat, type TokenFormatName } from '../../gateway/src/wire/index.ts';
import {
  COAP_BYTES_PER_FRAME, FRAME_ASSUMPTION, IEEE802154_FRAME_BYTES, IEEE802154_MAC_OVERHEAD_BYTES, LOWPAN_IPHC_UDP_BYTES,
} from './counting-socket.ts';
import {
  SCENARIO_NAMES, SECURITY_MODES, tokenlessUnderOscore, type LoginKind, type ScenarioName, type SecurityMode, type StepKind,
} from './scenarios.ts';
import type { LatencySummary } from './stats.ts';

/**
 * 2: the scenario's login kind, its steps before and after the load, and those phases' times.
 * 3: the requested token format and the formats issued; each exchange's datagrams and estimated
 * IEEE 802.15.4 frames (`radio`) and the frame model they assume (`frameModel`).
 * 4: `security`: requests in clear or under OSCORE, and what the OSCORE requests came to.
 */
export const FLEET_REPORT_SCHEMA_ID = 'device-sim/fleet-report/4';

/** The frame model of every `radio` figure (see counting-socket.ts). */
export const FRAME_MODEL = {
  frameBytes: IEEE802154_FRAME_BYTES,
  macOverheadBytes: IEEE802154_MAC_OVERHEAD_BYTES,
  lowpanHeaderBytes: LOWPAN_IPHC_UDP_BYTES,
  coapBytesPerFrame: COAP_BYTES_PER_FRAME,
} as const;

/** One kind of exchange (readings, or logins) as the devices saw it. */
export interface ExchangeStats {
  /** Requests sent (first transmissions; retransmissions are in the bytes). */
  sent: number;
  /** Got a CoAP answer: the sum of `byCode`. */
  answered: number;
  /** No answer within the request timeout, retransmissions included. */
  timeouts: number;
  /** Failed locally (socket error). sent = answered + timeouts + errors. */
  errors: number;
  byCode: Record<string, number>;
  /** Wire error code (key 0 of the CBOR error body) of the answers that carried one. */
  byWireError: Record<string, number>;
  latencyMs: LatencySummary;
  bytes: { sent: number; received: number; sentPerRequest: number; receivedPerRequest: number };
  /**
   * What the devices put on the air for these exchanges: every datagram they sent (requests,
   * retransmissions, ACKs of separate responses), and its estimated 802.15.4 frames,
   * ceil(datagram bytes / frameModel.coapBytesPerFrame) each. Per request: over `sent`.
   */
  radio: { datagramsSent: number; framesSent: number; bytesPerRequest: number; datagramsPerRequest: number; framesPerRequest: number };
}

/** One fleet-wide step of a scenario (every device once), counted against its own expectation. */
export interface StepReport extends ExchangeStats {
  step: StepKind;
  when: 'before' | 'after';
  expect: { code: string; wireError: number | null };
  /** Answered with the step's expected code (and wire error, if it names one). */
  asExpected: number;
  /** revoke: from the last revocation stored until the gateway had refused every device's token; else 0. */
  waitedMs: number;
}

/** What `device-sim run` prints as a table and writes with `--json FILE`. */
export interface FleetReport {
  schema: typeof FLEET_REPORT_SCHEMA_ID;
  scenario: {
    name: ScenarioName;
    login: LoginKind;
    expect: { code: string; wireError: number | null };
    skewSec: number;
    clockCorrection: boolean;
    /** How long devices held their tokens before the load (expired scenario). */
    heldPastExpirySec: number;
    /** The format every login and refresh asked for (key 6, --token-format); null: none asked, the device's default. */
    tokenFormat: TokenFormatName | null;
  };
  /** Access tokens the gateway issued by format, over every login and refresh of the run (the login scenario's load not included). */
  tokensIssued: Record<TokenFormatName, number>;
  security: {
    /** 'oscore': every request protected with its device's OSCORE context (RFC 8613); 'none': in clear. */
    mode: SecurityMode;
    /** Under OSCORE, the tokenless scenarios logged in and carried their tokens inside the protection. */
    withToken: boolean;
    /** Bytes of each request's CoAP token, when set (--coap-token-bytes); null: node-coap's 8. */
    coapTokenBytes: number | null;
    /** Over every exchange of the run (logins, steps and warm-up included); null in clear. */
    oscore: {
      protectedRequests: number;
      /** The gateway held no replay window for a context and asked for an Echo (RFC 8613 Appendix B.1.2): the request was repeated with it. */
      echoRecoveries: number;
      /** Errors the gateway answered in clear (RFC 8613 section 8.2), taken as answers. */
      unprotectedErrors: number;
      /** Answers refused: a success in clear, or a protected answer that did not verify (counted under `errors`). */
      refusedAnswers: number;
      /** replay scenario: copies of protected datagrams an eavesdropper sent again. */
      replaysSent: number;
    } | null;
  };
  /** The assumptions behind every `radio.frames*` figure. */
  frameModel: typeof FRAME_MODEL;
  target: string;
  startedAt: string;
  node: string;
  load: {
    mode: 'rate' | 'concurrency';
    ratePerSec: number | null;
    concurrency: number | null;
    durationSec: number | null;
    count: number | null;
    timeoutMs: number;
    /** Uncounted requests sent before the measured load (--warmup: one per device). */
    warmupRequests: number;
  };
  devices: { total: number; opened: number; loggedIn: number; loginFailed: number };
  phasesSec: { open: number; login: number; before: number; hold: number; warmup: number; load: number; drain: number; after: number };
  /** The scenario's steps before the load, then after it, in order (none for most scenarios). */
  steps: StepReport[];
  requests: ExchangeStats & {
    /** Answered with the scenario's expected code (and wire error, if it names one). */
    asExpected: number;
    /** Times a device stayed quiet for a 4.29 or 5.03 Max-Age. */
    backoffs: number;
    /** Achieved: sent over the load phase (drain excluded). */
    ratePerSec: number;
  };
  logins: ExchangeStats & {
    /** Logins (or /auth/refresh) during the load because a token neared its expiry. */
    refreshes: number;
    /** Logins per second in the initial login phase. */
    loginPhaseRatePerSec: number;
  };
  /** Up to five distinct local error messages. */
  errorSamples: string[];
}

// ---- The schema, as data, and its validator -------------------------------------------------

type FieldType =
  | 'string' | 'number' | 'count' | 'boolean' | 'number|null' | 'count|null' | 'counts' | 'string[]'
  | { enum: readonly (string | null)[] }
  /** An array whose every element has this type. */
  | { each: FieldType }
  /** null, or a value of this type. */
  | { orNull: FieldType }
  | { [field: string]: FieldType };

const LATENCY: FieldType = { p50: 'number', p90: 'number', p99: 'number', max: 'number', mean: 'number' };
const EXCHANGES = {
  sent: 'count', answered: 'count', timeouts: 'count', errors: 'count', byCode: 'counts', byWireError: 'counts',
  latencyMs: LATENCY, bytes: { sent: 'count', received: 'count', sentPerRequest: 'number', receivedPerRequest: 'number' },
  radio: { datagramsSent: 'count', framesSent: 'count', bytesPerRequest: 'number', datagramsPerRequest: 'number', framesPerRequest: 'number' },
} as const satisfies Record<string, FieldType>;

const TOKEN_FORMAT_NAMES = Object.keys(TokenFormat) as TokenFormatName[];

/** Every field of FleetReport with its type; `validateFleetReport` checks a value against it. */
export const FLEET_REPORT_SCHEMA: FieldType = {
  schema: { enum: [FLEET_REPORT_SCHEMA_ID] },
  scenario: {
    name: { enum: SCENARIO_NAMES },
    login: { enum: ['secret', 'assertion', 'nonce-assertion'] satisfies LoginKind[] },
    expect: { code: 'string', wireError: 'count|null' },
    skewSec: 'number',
    clockCorrection: 'boolean',
    heldPastExpirySec: 'number',
    tokenFormat: { enum: [...TOKEN_FORMAT_NAMES, null] },
  },
  tokensIssued: Object.fromEntries(TOKEN_FORMAT_NAMES.map((name): [string, FieldType] => [name, 'count'])),
  security: {
    mode: { enum: SECURITY_MODES },
    withToken: 'boolean',
    coapTokenBytes: 'count|null',
    oscore: { orNull: { protectedRequests: 'count', echoRecoveries: 'count', unprotectedErrors: 'count', refusedAnswers: 'count', replaysSent: 'count' } },
  },
  frameModel: { frameBytes: 'count', macOverheadBytes: 'count', lowpanHeaderBytes: 'count', coapBytesPerFrame: 'count' },
  target: 'string',
  startedAt: 'string',
  node: 'string',
  load: {
    mode: { enum: ['rate', 'concurrency'] },
    ratePerSec: 'number|null',
    concurrency: 'count|null',
    durationSec: 'number|null',
    count: 'count|null',
    timeoutMs: 'count',
    warmupRequests: 'count',
  },
  devices: { total: 'count', opened: 'count', loggedIn: 'count', loginFailed: 'count' },
  phasesSec: {
    open: 'number', login: 'number', before: 'number', hold: 'number', warmup: 'number', load: 'number', drain: 'number', after: 'number',
  },
  steps: { each: {
    step: { enum: ['reading', 'login', 'refresh', 'refresh-spent', 'revoke'] satisfies StepKind[] },
    when: { enum: ['before', 'after'] },
    expect: { code: 'string', wireError: 'count|null' },
    ...EXCHANGES,
    asExpected: 'count',
    waitedMs: 'number',
  } },
  requests: { ...EXCHANGES, asExpected: 'count', backoffs: 'count', ratePerSec: 'number' },
  logins: { ...EXCHANGES, refreshes: 'count', loginPhaseRatePerSec: 'number' },
  errorSamples: 'string[]',
};

const COAP_CODE = /^[245]\.\d\d$/;

/**
 * Checks a value against FLEET_REPORT_SCHEMA (no missing, extra or mistyped fields) and the
 * report's invariants (the counts add up). Returns every problem; empty means valid.
 */
export function validateFleetReport(value: unknown): string[] {
  const problems: string[] = [];
  checkField(value, FLEET_REPORT_SCHEMA, '', problems);
  if (problems.length > 0) return problems;
  const report = value as FleetReport;
  const exchanges: [string, ExchangeStats][] = [['requests', report.requests], ['logins', report.logins]];
  report.steps.forEach((step, i) => exchanges.push([`steps[${i}]`, step]));
  for (const [name, stats] of exchanges) {
    const byCode = sum(stats.byCode);
    if (stats.sent !== stats.answered + stats.timeouts + stats.errors) {
      problems.push(`${name}: sent ${stats.sent} != answered ${stats.answered} + timeouts ${stats.timeouts} + errors ${stats.errors}`);
    }
    if (byCode !== stats.answered) problems.push(`${name}: byCode adds up to ${byCode}, answered is ${stats.answered}`);
    if (sum(stats.byWireError) > stats.answered) problems.push(`${name}: more wire errors than answers`);
    for (const code of Object.keys(stats.byCode)) {
      if (!COAP_CODE.test(code)) problems.push(`${name}.byCode: "${code}" is not a CoAP response code`);
    }
  }
  if (report.requests.asExpected > report.requests.answered) problems.push('requests: asExpected > answered');
  report.steps.forEach((step, i) => {
    if (step.asExpected > step.answered) problems.push(`steps[${i}]: asExpected > answered`);
  });
  const { devices } = report;
  if (devices.opened > devices.total || devices.loggedIn > devices.opened) {
    problems.push(`devices: expected loggedIn <= opened <= total, got ${devices.loggedIn}, ${devices.opened}, ${devices.total}`);
  }
  if ((report.load.mode === 'rate') !== (report.load.ratePerSec !== null)) problems.push('load: ratePerSec set iff mode is rate');
  if ((report.load.mode === 'concurrency') !== (report.load.concurrency !== null)) {
    problems.push('load: concurrency set iff mode is concurrency');
  }
  if (Number.isNaN(Date.parse(report.startedAt))) problems.push('startedAt: not an ISO date');
  return problems;
}

function checkField(value: unknown, type: FieldType, path: string, problems: string[]): void {
  const where = path === '' ? 'report' : path;
  const fail = (expected: string) => problems.push(`${where}: expected ${expected}, got ${JSON.stringify(value) ?? 'nothing'}`);
  const isCount = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0;
  switch (type) {
    case 'string': if (typeof value !== 'string') fail('a string'); return;
    case 'number': if (typeof value !== 'number' || !Number.isFinite(value)) fail('a finite number'); return;
    case 'count': if (!isCount(value)) fail('a whole number >= 0'); return;
    case 'boolean': if (typeof value !== 'boolean') fail('true or false'); return;
    case 'number|null': if (value !== null && (typeof value !== 'number' || !Number.isFinite(value))) fail('a number or null'); return;
    case 'count|null': if (value !== null && !isCount(value)) fail('a whole number >= 0 or null'); return;
    case 'string[]': if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) fail('an array of strings'); return;
    case 'counts':
      if (value === null || typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every(isCount)) {
        fail('an object of whole numbers >= 0');
      }
      return;
    default:
      break;
  }
  if ('enum' in type && Array.isArray(type.enum)) {
    if (!(type.enum as readonly unknown[]).includes(value)) fail(`one of ${type.enum.map(String).join(', ')}`);
    return;
  }
  if ('orNull' in type && Object.keys(type).length === 1) {
    if (value !== null) checkField(value, type.orNull as FieldType, path, problems);
    return;
  }
  if ('each' in type && Object.keys(type).length === 1) {
    if (!Array.isArray(value)) fail('an array');
    else value.forEach((element, i) => checkField(element, type.each as FieldType, `${path}[${i}]`, problems));
    return;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('an object');
    return;
  }
  const fields = type as Record<string, FieldType>;
  for (const [field, fieldType] of Object.entries(fields)) {
    const child = path === '' ? field : `${path}.${field}`;
    if (!(field in value)) problems.push(`${child}: missing`);
    else checkField((value as Record<string, unknown>)[field], fieldType, child, problems);
  }
  for (const field of Object.keys(value)) {
    if (!(field in fields)) problems.push(`${path === '' ? field : `${path}.${field}`}: not in the schema`);
  }
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

// ---- The summary table ----------------------------------------------------------------------

/** The end-of-run summary, one table row per line. */
export function formatFleetReport(report: FleetReport): string[] {
  const { requests: r, logins: l, load, devices, scenario } = report;
  const expect = expectText(scenario.expect);
  const loadText = (load.mode === 'rate' ? `open loop at ${load.ratePerSec}/s` : `closed loop, ${load.concurrency} in flight`)
    + (load.warmupRequests > 0 ? ` (after ${load.warmupRequests} uncounted warm-up requests)` : '');
  const limit = [load.durationSec !== null ? `${load.durationSec} s` : '', load.count !== null ? `${load.count} requests` : '']
    .filter(Boolean).join(' or ');
  const stepRow = (step: StepReport, n: number): [string, string] => [`${step.when} ${n}`,
    `${STEP_TEXT[step.step]}: as expected (${expectText(step.expect)}): ${step.asExpected}/${step.sent}   ${codesText(step.byCode, step.byWireError)}`
    + (step.timeouts + step.errors > 0 ? `   timeouts ${step.timeouts} errors ${step.errors}` : '')
    + (step.step === 'revoke' ? `   (refused ${step.waitedMs} ms after the last revocation)` : '')];
  const before = report.steps.filter((step) => step.when === 'before').map(stepRow);
  const after = report.steps.filter((step) => step.when === 'after').map(stepRow);
  const rows: [string, string][] = [
    ['scenario', `${scenario.name} -> ${report.target}, ${loadText}, for ${limit}`
      + (scenario.skewSec !== 0 ? `, clocks off by +/-${scenario.skewSec} s${scenario.clockCorrection ? ' (corrected by server time)' : ' (not corrected)'}` : '')
      + (scenario.heldPastExpirySec > 0 ? `, tokens held ${scenario.heldPastExpirySec} s until expired` : '')],
    ['devices', `${devices.total} (${devices.opened} sockets, ${devices.loggedIn} logged in with ${LOGIN_TEXT[scenario.login]}, ${devices.loginFailed} login failures)`],
    ...before,
    ['requests', `${r.sent} in ${report.phasesSec.load} s = ${r.ratePerSec}/s; as expected (${expect}): ${r.asExpected}/${r.sent}`],
    ['latency ms', latencyText(r.latencyMs)],
    ['codes', codesText(r.byCode, r.byWireError)],
    ['timeouts', `${r.timeouts}   errors ${r.errors}   backoffs (4.29/5.03 Max-Age) ${r.backoffs}`],
    ['bytes/request', `sent ${r.bytes.sentPerRequest}   received ${r.bytes.receivedPerRequest}   (total ${r.bytes.sent} / ${r.bytes.received})`],
    ['frames/request', radioText(r.radio)],
    ['frame model', FRAME_ASSUMPTION],
    ['token format', `${scenario.tokenFormat === null ? 'none asked (each device\'s default)' : `${scenario.tokenFormat} asked (key 6)`}; issued `
      + Object.entries(report.tokensIssued).map(([name, n]) => `${name} ${n}`).join(', ')],
    ['security', securityText(report.security, scenario.name)],
  ];
  if (l.sent > 0) {
    rows.push(
      ['logins', `${l.sent} (${l.refreshes} refreshes), ${l.loginPhaseRatePerSec}/s while logging in; timeouts ${l.timeouts}`],
      ['login codes', codesText(l.byCode, l.byWireError)],
      ['login ms', latencyText(l.latencyMs)],
      ['login frames', radioText(l.radio)],
    );
  }
  rows.push(...after);
  for (const sample of report.errorSamples) rows.push(['problem', sample]);
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`);
}

const STEP_TEXT: Readonly<Record<StepKind, string>> = {
  reading: 'a reading each',
  login: 'log in again',
  refresh: 'refresh with the current refresh token',
  'refresh-spent': 'refresh with the spent refresh token',
  revoke: 'operator revoked every device; old tokens',
};

const LOGIN_TEXT: Readonly<Record<LoginKind, string>> = {
  secret: 'secrets',
  assertion: 'signed assertions',
  'nonce-assertion': 'nonces and signed assertions',
};

function securityText(security: FleetReport['security'], scenario: ScenarioName): string {
  const token = security.coapTokenBytes === null ? '' : `; ${security.coapTokenBytes}-byte CoAP tokens`;
  const o = security.oscore;
  if (security.mode === 'none' || o === null) return `none: requests in clear${token}`;
  const how = tokenlessUnderOscore(scenario, security.withToken) ? 'no tokens: the context authenticates each device' : 'tokens inside the protection';
  return `OSCORE (RFC 8613), ${how}${token}; protected requests ${o.protectedRequests}, Echo recoveries ${o.echoRecoveries}, `
    + `errors in clear ${o.unprotectedErrors}, answers refused ${o.refusedAnswers}${o.replaysSent > 0 ? `, datagrams replayed ${o.replaysSent}` : ''}`;
}

function expectText(expect: { code: string; wireError: number | null }): string {
  return expect.wireError === null ? expect.code : `${expect.code} (wire error ${expect.wireError})`;
}

function radioText(radio: ExchangeStats['radio']): string {
  return `${radio.framesPerRequest} (802.15.4, estimated)   sent ${radio.bytesPerRequest} B in ${radio.datagramsPerRequest} datagram(s) per request`;
}

function latencyText(l: LatencySummary): string {
  return `p50 ${l.p50}   p90 ${l.p90}   p99 ${l.p99}   max ${l.max}   mean ${l.mean}`;
}

function codesText(byCode: Record<string, number>, byWire: Record<string, number>): string {
  const codes = Object.entries(byCode).map(([code, n]) => `${code}: ${n}`).join('   ');
  const wire = Object.entries(byWire).map(([code, n]) => `${code}: ${n}`).join(', ');
  return (codes || 'none') + (wire ? `   (wire errors ${wire})` : '');
}
