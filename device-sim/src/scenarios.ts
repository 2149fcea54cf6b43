import { WireError } from '../../gateway/src/wire/index.ts';

export const SCENARIO_NAMES = ['normal', 'expired', 'tampered', 'skew', 'wrong-scope', 'login'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

/** What one device does on its turn. */
export type TurnKind =
  /** POST /telemetry/<name> with a CBOR reading and the device's token. */
  | 'reading'
  /** The same, with one character of the token's signature changed. */
  | 'tampered-reading'
  /** GET /config: a route that needs `config:read`, which `gateway devices add` does not grant by default. */
  | 'config'
  /** POST /auth with the device's credentials. */
  | 'login';

/** A scenario is data: what devices do and what a correct gateway answers. */
export interface Scenario {
  name: ScenarioName;
  summary: string;
  turn: TurnKind;
  /** The CoAP code and (for errors) the wire error code of `{0: code}` a correct gateway sends. */
  expect: { code: string; wireError?: number };
  /** Devices log in before the load starts. */
  logsIn: boolean;
  /** Devices log in again before their token expires, by their estimate of the gateway's clock. */
  refreshes: boolean;
  /** Devices keep their tokens until the gateway must see them as expired, then use them. */
  holdsExpiredTokens: boolean;
  /** Device clocks are off by --skew-sec (half ahead, half behind). */
  skewsClock: boolean;
}

export const SCENARIOS: Readonly<Record<ScenarioName, Scenario>> = {
  normal: {
    name: 'normal', summary: 'log in, send CBOR readings, log in again before the token expires',
    turn: 'reading', expect: { code: '2.01' }, logsIn: true, refreshes: true, holdsExpiredTokens: false, skewsClock: false,
  },
  expired: {
    name: 'expired', summary: 'log in, keep the token until it has expired (lifetime + --leeway-sec), then send readings with it',
    turn: 'reading', expect: { code: '4.01', wireError: WireError.tokenExpired },
    logsIn: true, refreshes: false, holdsExpiredTokens: true, skewsClock: false,
  },
  tampered: {
    name: 'tampered', summary: 'log in, then send readings with one signature character of the token changed',
    turn: 'tampered-reading', expect: { code: '4.01', wireError: WireError.tokenInvalid },
    logsIn: true, refreshes: true, holdsExpiredTokens: false, skewsClock: false,
  },
  skew: {
    name: 'skew', summary: 'like normal, with device clocks off by --skew-sec; devices time refreshes by the server time of each login',
    turn: 'reading', expect: { code: '2.01' }, logsIn: true, refreshes: true, holdsExpiredTokens: false, skewsClock: true,
  },
  'wrong-scope': {
    name: 'wrong-scope', summary: 'log in, then GET /config, which needs the config:read scope the devices lack',
    turn: 'config', expect: { code: '4.03', wireError: WireError.forbidden },
    logsIn: true, refreshes: true, holdsExpiredTokens: false, skewsClock: false,
  },
  login: {
    name: 'login', summary: 'every request is a login (POST /auth): the login rate the gateway sustains',
    turn: 'login', expect: { code: '2.01' }, logsIn: false, refreshes: false, holdsExpiredTokens: false, skewsClock: false,
  },
};

export function isScenarioName(value: unknown): value is ScenarioName {
  return typeof value === 'string' && (SCENARIO_NAMES as readonly string[]).includes(value);
}

/** Changes the first signature character: the last one may carry padding bits that decode alike. */
export function tamperToken(token: string): string {
  const dot = token.lastIndexOf('.') + 1;
  return token.slice(0, dot) + (token[dot] === 'A' ? 'B' : 'A') + token.slice(dot + 1);
}
