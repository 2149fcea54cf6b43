import { WireError } from '../../gateway/src/wire/index.ts';
import type { AccessToken } from './device-client.ts';
import { SimError } from './errors.ts';
import { OscoreRefusal } from './oscore-messages.ts';

export const SCENARIO_NAMES = [
  'normal', 'expired', 'tampered', 'skew', 'wrong-scope', 'login', 'assertion', 'clockless', 'revoked', 'refresh-reuse', 'replay',
] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** How the devices' requests travel: in clear, or protected end to end with each device's OSCORE context (RFC 8613). */
export const SECURITY_MODES = ['none', 'oscore'] as const;
export type SecurityMode = (typeof SECURITY_MODES)[number];

/** What one device does on its turn. */
export type TurnKind =
  /** POST /telemetry/<name> with a CBOR reading and the device's token. */
  | 'reading'
  /** The same, with one character of the token's signature changed. */
  | 'tampered-reading'
  /** Under OSCORE: a protected reading with one bit of its ciphertext flipped. */
  | 'tampered-ciphertext'
  /**
   * Under OSCORE: a protected reading, then, once it is answered, an eavesdropper's copy of its
   * datagram sent again unchanged from another socket (only the answer to the copy is counted).
   */
  | 'replayed-reading'
  /** GET /config: a route that needs `config:read`, which `gateway devices add` does not grant by default. */
  | 'config'
  /** POST /auth with the device's credentials. */
  | 'login';

/** How a device logs in (its first login, and renewals unless `--refresh-with refresh-token`). */
export type LoginKind =
  /** POST /auth `{1: id, 2: secret}`. */
  | 'secret'
  /** POST /auth `{1: id, 3: assertion}`, signed with the device's private key; `iat` by its clock. */
  | 'assertion'
  /** POST /auth/nonce first, then an assertion naming that nonce, `iat` the nonce answer's server time. */
  | 'nonce-assertion';

/**
 * One fleet-wide step before or after the load: every device does it once (the operator's
 * `revoke` once for every device), and each answer is counted against the step's expectation.
 */
export type StepKind =
  /** One reading with the device's current access token. */
  | 'reading'
  /** A login of the scenario's kind: new tokens. */
  | 'login'
  /** POST /auth/refresh with the current refresh token; the device keeps the one it spent. */
  | 'refresh'
  /** POST /auth/refresh with the refresh token the device already spent (a thief's replay). */
  | 'refresh-spent'
  /**
   * The operator revokes every device (`gateway devices revoke ID`); then each device waits,
   * probing with its token where no backend is reached, until the gateway refuses that token.
   */
  | 'revoke';

/** The CoAP code and (for errors) the wire error code of `{0: code}` a correct gateway sends. */
export interface Expectation {
  code: string;
  wireError?: number;
}

export interface Step {
  kind: StepKind;
  expect: Expectation;
}

/** A scenario is data: what devices do and what a correct gateway answers. */
export interface Scenario {
  name: ScenarioName;
  summary: string;
  turn: TurnKind;
  /** What a correct gateway answers each request of the load. */
  expect: Expectation;
  login: LoginKind;
  /** Devices log in before the load starts. */
  logsIn: boolean;
  /** Devices log in again before their token expires, by their estimate of the gateway's clock. */
  refreshes: boolean;
  /** Devices keep their tokens until the gateway must see them as expired, then use them. */
  holdsExpiredTokens: boolean;
  /** Device clocks are off by --skew-sec (half ahead, half behind). */
  skewsClock: boolean;
  /** False: devices have no clock (theirs reads the epoch when they start), only what the gateway tells them. */
  hasClock: boolean;
  /** Fleet-wide steps after the login phase and before the load, in order. */
  before: readonly Step[];
  /** Fleet-wide steps after the load, in order. */
  after: readonly Step[];
  /** Runs only with --security oscore. */
  oscoreOnly?: boolean;
}

const CREATED = { code: '2.01' } as const;
const TOKEN_INVALID = { code: '4.01', wireError: WireError.tokenInvalid } as const;
/** The contract says 4.01 for a refused refresh token, and no particular wire code. */
const REFRESH_REFUSED = { code: '4.01' } as const;

const PLAIN = {
  login: 'secret', logsIn: true, refreshes: true, holdsExpiredTokens: false, skewsClock: false, hasClock: true, before: [], after: [],
} as const satisfies Partial<Scenario>;

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  normal: {
    ...PLAIN, name: 'normal', summary: 'log in, send CBOR readings, log in again before the token expires',
    turn: 'reading', expect: CREATED,
  },
  expired: {
    ...PLAIN, name: 'expired', summary: 'log in, keep the token until it has expired (lifetime + --leeway-sec), then send readings with it',
    turn: 'reading', expect: { code: '4.01', wireError: WireError.tokenExpired }, refreshes: false, holdsExpiredTokens: true,
  },
  tampered: {
    ...PLAIN, name: 'tampered', summary: 'log in, then send readings with one signature character of the token changed',
    turn: 'tampered-reading', expect: TOKEN_INVALID,
  },
  skew: {
    ...PLAIN, name: 'skew', summary: 'like normal, with device clocks off by --skew-sec; devices time refreshes by the server time of each login',
    turn: 'reading', expect: CREATED, skewsClock: true,
  },
  'wrong-scope': {
    ...PLAIN, name: 'wrong-scope', summary: 'log in, then GET /config, which needs the config:read scope the devices lack',
    turn: 'config', expect: { code: '4.03', wireError: WireError.forbidden },
  },
  login: {
    ...PLAIN, name: 'login', summary: 'every request is a login (POST /auth): the login rate the gateway sustains',
    turn: 'login', expect: CREATED, logsIn: false, refreshes: false,
  },
  assertion: {
    ...PLAIN, name: 'assertion', summary: 'log in with an assertion signed by the device\'s own key (privateJwk), send readings, log in so again before expiry',
    turn: 'reading', expect: CREATED, login: 'assertion',
  },
  clockless: {
    ...PLAIN, name: 'clockless', summary: 'devices without a clock: each login asks POST /auth/nonce, signs an assertion with that nonce and the server time; then readings',
    turn: 'reading', expect: CREATED, login: 'nonce-assertion', hasClock: false,
  },
  revoked: {
    ...PLAIN, name: 'revoked', summary: 'log in, a reading; the operator revokes every device (gateway devices revoke, needs --state); readings with the old tokens; log in again, a reading',
    turn: 'reading', expect: TOKEN_INVALID, refreshes: false,
    before: [{ kind: 'reading', expect: CREATED }, { kind: 'revoke', expect: TOKEN_INVALID }],
    after: [{ kind: 'login', expect: CREATED }, { kind: 'reading', expect: CREATED }],
  },
  'refresh-reuse': {
    ...PLAIN, name: 'refresh-reuse', summary: 'log in, refresh, present the spent refresh token again, then its successor; readings with the family\'s access token; log in again',
    turn: 'reading', expect: TOKEN_INVALID, refreshes: false,
    before: [
      { kind: 'refresh', expect: CREATED }, { kind: 'refresh-spent', expect: REFRESH_REFUSED }, { kind: 'refresh', expect: REFRESH_REFUSED },
    ],
    after: [{ kind: 'login', expect: CREATED }, { kind: 'reading', expect: CREATED }],
  },
  replay: {
    ...PLAIN, name: 'replay', summary: 'under OSCORE: a protected reading, then an eavesdropper\'s copy of its datagram sent again from another socket: refused as a replay',
    turn: 'replayed-reading', expect: OscoreRefusal.replay, logsIn: false, refreshes: false, oscoreOnly: true,
  },
};

/** Under OSCORE, the scenarios whose requests the context alone authenticates (no token unless --with-token). */
const TOKENLESS_UNDER_OSCORE: ReadonlySet<ScenarioName> = new Set(['normal', 'wrong-scope', 'tampered', 'replay']);

/** Whether the scenario's requests under OSCORE carry no token: the context alone authenticates them. */
export function tokenlessUnderOscore(name: ScenarioName, withToken: boolean): boolean {
  return !withToken && TOKENLESS_UNDER_OSCORE.has(name);
}

/**
 * The scenario as it runs under `security`. Under OSCORE every request, logins and refreshes
 * included, is protected with the device's context, which proves the device: normal,
 * wrong-scope, tampered and replay send no token (the gateway applies the device record's
 * scopes) unless `withToken`, which logs in (under OSCORE) and carries the token inside the
 * protection; tampered flips a bit of the ciphertext instead of the token's signature (4.00,
 * wire error 22). The other scenarios are about tokens and logins, and keep them, protected.
 * revoked cannot run under OSCORE: revoking a device ends its context too, so it could not log in again.
 */
export function underSecurity(scenario: Scenario, security: SecurityMode, withToken: boolean): Scenario {
  if (security === 'none') {
    if (scenario.oscoreOnly === true) throw new SimError('SIM_ERR_BAD_OPTION', `--scenario ${scenario.name} needs --security oscore`);
    if (withToken) throw new SimError('SIM_ERR_BAD_OPTION', '--with-token is for --security oscore (in clear every scenario that can uses a token)');
    return scenario;
  }
  if (scenario.name === 'revoked') {
    throw new SimError('SIM_ERR_BAD_OPTION', '--scenario revoked cannot run under --security oscore: `gateway devices revoke` ends the device\'s '
      + 'OSCORE context too (its requests are then answered 4.01, wire error 21), so it cannot log in again without a new context');
  }
  let adapted = scenario;
  if (scenario.name === 'tampered') adapted = { ...adapted, turn: 'tampered-ciphertext', expect: OscoreRefusal.decryptFailed };
  if (TOKENLESS_UNDER_OSCORE.has(scenario.name)) {
    adapted = tokenlessUnderOscore(scenario.name, withToken) ? { ...adapted, logsIn: false, refreshes: false } : { ...adapted, logsIn: true, refreshes: true };
  }
  return adapted;
}

export function isScenarioName(value: unknown): value is ScenarioName {
  return typeof value === 'string' && (SCENARIO_NAMES as readonly string[]).includes(value);
}

/** Whether an answer is what `expect` names (any wire error when it names none). */
export function meets(expect: Expectation, code: string, wireError: number | undefined): boolean {
  return code === expect.code && (expect.wireError === undefined || wireError === expect.wireError);
}

/** A COSE_Sign1 (RFC 9052) tagged 18 (0xd2), an array of 4 (0x84): how every CWT access token begins. */
const COSE_SIGN1_HEAD = [0xd2, 0x84] as const;

/**
 * A copy of the token with its signature changed. A JWT: the first signature character (the last
 * one may carry padding bits that decode alike). A CWT: the signature is the COSE_Sign1's last
 * element, a byte string, so its last byte is the token's last byte; that byte is flipped.
 */
export function tamperToken(token: AccessToken): AccessToken {
  if (typeof token === 'string') {
    const dot = token.lastIndexOf('.') + 1;
    return token.slice(0, dot) + (token[dot] === 'A' ? 'B' : 'A') + token.slice(dot + 1);
  }
  if (token.length < 3 || token[0] !== COSE_SIGN1_HEAD[0] || token[1] !== COSE_SIGN1_HEAD[1]) {
    throw new TypeError(`tamperToken: ${token.length} bytes that are not a tagged COSE_Sign1 (expected d2 84 ...)`);
  }
  const tampered = Buffer.from(token);
  tampered[tampered.length - 1]! ^= 0xff;
  return tampered;
}
