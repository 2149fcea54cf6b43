import { z } from 'zod';
import { canRead } from './fields.ts';
import { defaultsOf, fieldsOf, specsOf, type SettingSpec } from './setting.ts';
import { GATEWAY_SETTINGS } from './settings.ts';

/** Every setting a config file or flags may give, flat, as the table declares them; any other key is a problem. */
const SETTING_FIELDS = z.strictObject(fieldsOf(GATEWAY_SETTINGS));

export type SettingName = keyof typeof SETTING_FIELDS.shape;
export type Settings = z.output<typeof SETTING_FIELDS>;

export const CONFIG_KEYS = Object.keys(SETTING_FIELDS.shape) as readonly SettingName[];

/** Each setting's declaration by its key: what --help and the docs say of it. */
export const SETTING_SPECS = Object.fromEntries(specsOf(GATEWAY_SETTINGS).map((spec) => [spec.key, spec])) as {
  readonly [Name in SettingName]: SettingSpec;
};

/** The defaults the schema fills in, by setting key. */
export const DEFAULTS = defaultsOf(GATEWAY_SETTINGS);

/** One setting's schema alone, default included: for commands that read one setting and nothing else. */
export const settingField = <Name extends SettingName>(name: Name): (typeof SETTING_FIELDS.shape)[Name] => SETTING_FIELDS.shape[name];

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
