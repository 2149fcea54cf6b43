import { z } from 'zod';
import { DEFAULTS, DEFAULT_ROUTES } from './defaults.ts';
import {
  canRead, httpUrl, ipAddress, isLoopback, nonEmptyText, oneOf, quote, readableFile, wholeNumber,
} from './fields.ts';
import { ROUTES_SETTING } from './route-setting.ts';
import { STORE_SETTING } from './store-setting.ts';
import { LOG_LEVELS, SIGNING_ALGS } from './types.ts';

const port = () => wholeNumber(0, 65535);
const GIB = 1 << 30;

/**
 * Every setting a config file or flags may give, with what it accepts and its default. The key
 * list, the input type and the defaults come from here; any other key is a problem.
 */
const SETTING_FIELDS = z.strictObject({
  coapHost: ipAddress().prefault(DEFAULTS.coapHost),
  coapPort: port().prefault(DEFAULTS.coapPort),
  piggybackReplyMs: wholeNumber(0, 60_000).prefault(DEFAULTS.piggybackReplyMs),
  exchangeLifetimeSec: wholeNumber(1, 3600).prefault(DEFAULTS.exchangeLifetimeSec),
  maxExchanges: wholeNumber(100, 10_000_000).prefault(DEFAULTS.maxExchanges),
  maxPayloadBytes: wholeNumber(64, 1024 * 1024).prefault(DEFAULTS.maxPayloadBytes),
  udpRecvBufferBytes: wholeNumber(4096, GIB).prefault(DEFAULTS.udpRecvBufferBytes),
  responseCacheBytes: wholeNumber(1024, GIB).prefault(DEFAULTS.responseCacheBytes),
  blockBufferBytes: wholeNumber(1024, GIB).prefault(DEFAULTS.blockBufferBytes),
  blockLifetimeSec: wholeNumber(1, 3600).prefault(DEFAULTS.blockLifetimeSec),
  representationBytes: wholeNumber(1024, GIB).prefault(DEFAULTS.representationBytes),
  backend: httpUrl('the backend\'s base URL'),
  backendCa: readableFile().optional(),
  backendTimeoutMs: wholeNumber(1, 600_000).prefault(DEFAULTS.backendTimeoutMs),
  backendConnections: wholeNumber(1, 10_000).prefault(DEFAULTS.backendConnections),
  state: nonEmptyText().prefault(DEFAULTS.stateDir),
  store: STORE_SETTING,
  tokenTtlSec: wholeNumber(1, 30 * 24 * 3600).prefault(DEFAULTS.tokenTtlSec),
  refreshTtlSec: wholeNumber(1, 365 * 24 * 3600).prefault(DEFAULTS.refreshTtlSec),
  leewaySec: wholeNumber(0, 3600).prefault(DEFAULTS.leewaySec),
  issuer: nonEmptyText().prefault(DEFAULTS.issuer),
  audience: nonEmptyText().prefault(DEFAULTS.audience),
  signingAlg: oneOf(SIGNING_ALGS).prefault(DEFAULTS.signingAlg),
  loginFailuresPerMinute: wholeNumber(1, 1_000_000).prefault(DEFAULTS.loginFailuresPerMinute),
  maxAssertionLifetimeSec: wholeNumber(1, 24 * 3600).prefault(DEFAULTS.maxAssertionLifetimeSec),
  assertionIatSkewSec: wholeNumber(0, 24 * 3600).prefault(DEFAULTS.assertionIatSkewSec),
  noncesPerAddress: wholeNumber(1, 1000).prefault(DEFAULTS.noncesPerAddress),
  maxNonces: wholeNumber(1, 10_000_000).prefault(DEFAULTS.maxNonces),
  forgedTokensPerMinute: wholeNumber(1, 1_000_000).prefault(DEFAULTS.forgedTokensPerMinute),
  verifiedTokenCacheEntries: wholeNumber(0, 10_000_000).prefault(DEFAULTS.verifiedTokenCacheEntries),
  deviceViewEntries: wholeNumber(1, 10_000_000).prefault(DEFAULTS.deviceViewEntries),
  // Parsed like given routes: the config gets its own copy, so freezing it leaves the defaults be.
  routes: ROUTES_SETTING.prefault(() => [...DEFAULT_ROUTES]),
  logLevel: oneOf(LOG_LEVELS).prefault(DEFAULTS.logLevel),
  adminHost: ipAddress().refine(isLoopback, {
    error: (issue) => `the admin API listens on loopback only (127.0.0.1 or ::1), got ${quote(issue.input)}`,
  }).prefault(DEFAULTS.adminHost),
  adminPort: port().optional(),
  adminCert: nonEmptyText().prefault(DEFAULTS.adminCertFile),
  adminKey: nonEmptyText().prefault(DEFAULTS.adminKeyFile),
  adminCa: nonEmptyText().prefault(DEFAULTS.adminCaFile),
  jwksPort: port().optional(),
});

export type SettingName = keyof typeof SETTING_FIELDS.shape;
export type Settings = z.output<typeof SETTING_FIELDS>;

export const CONFIG_KEYS = Object.keys(SETTING_FIELDS.shape) as readonly SettingName[];

/** Names that still work, with a warning: a setting's name says its unit. */
export const DEPRECATED_NAMES = {
  tokenTtl: 'tokenTtlSec',
  refreshTtl: 'refreshTtlSec',
  leeway: 'leewaySec',
} as const satisfies Record<string, SettingName>;

export type DeprecatedName = keyof typeof DEPRECATED_NAMES;

/** What a config file or flags may set: every field optional and unchecked until `loadConfig`. */
export type ConfigInput = { [Name in SettingName | DeprecatedName]?: unknown };

/** The settings, then the checks that involve more than one of them or the file system. */
export const SETTINGS = SETTING_FIELDS.superRefine((settings, ctx) => {
  // Run whatever else is wrong, so that every problem is reported at once; but only on settings
  // that passed their own checks.
  const failed = new Set(ctx.issues.map((issue) => issue.path?.[0]));
  const passed = (...names: SettingName[]) => names.every((name) => !failed.has(name));
  if (settings.adminPort !== undefined && passed('adminPort')) {
    for (const name of ['adminCert', 'adminKey', 'adminCa'] as const) {
      const file = settings[name];
      if (passed(name) && !canRead(file)) {
        ctx.addIssue({ code: 'custom', path: [name], input: file, message: `cannot read ${file} (the admin API needs it: run \`make certs\`)` });
      }
    }
  }
  // Each upload sets aside room for its whole body when it starts (its Size1, else maxPayloadBytes).
  if (passed('blockBufferBytes', 'maxPayloadBytes') && settings.blockBufferBytes < 2 * settings.maxPayloadBytes) {
    ctx.addIssue({
      code: 'custom', path: ['blockBufferBytes'], input: settings.blockBufferBytes,
      message: `must be at least twice maxPayloadBytes (${2 * settings.maxPayloadBytes}), got ${settings.blockBufferBytes}`,
    });
  }
}, { when: () => true });
