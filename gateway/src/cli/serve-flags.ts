import { Option } from 'commander';
import { DEFAULTS, SETTING_SPECS, type ConfigInput, type SettingName } from '../config/index.ts';

/** A `serve` flag: the setting it sets, and the placeholder --help shows for its value. */
interface ServeFlag {
  flag: `--${string}`;
  setting: SettingName;
  value: string;
}

/** The `serve` flags; what each says in --help (and its default) is its setting's. */
export const SERVE_FLAGS = [
  { flag: '--coap-host', setting: 'coapHost', value: 'addr' },
  { flag: '--coap-port', setting: 'coapPort', value: 'port' },
  { flag: '--backend', setting: 'backend', value: 'url' },
  { flag: '--backend-ca', setting: 'backendCa', value: 'file' },
  { flag: '--backend-timeout', setting: 'backendTimeoutMs', value: 'ms' },
  { flag: '--state', setting: 'state', value: 'dir' },
  { flag: '--store', setting: 'store', value: 'file|redis-url' },
  { flag: '--token-ttl', setting: 'tokenTtlSec', value: 'sec' },
  { flag: '--leeway', setting: 'leewaySec', value: 'sec' },
  { flag: '--log-level', setting: 'logLevel', value: 'level' },
  { flag: '--admin-port', setting: 'adminPort', value: 'port' },
  { flag: '--admin-host', setting: 'adminHost', value: 'addr' },
  { flag: '--admin-cert', setting: 'adminCert', value: 'file' },
  { flag: '--admin-key', setting: 'adminKey', value: 'file' },
  { flag: '--admin-ca', setting: 'adminCa', value: 'file' },
  { flag: '--jwks-port', setting: 'jwksPort', value: 'port' },
] as const satisfies readonly ServeFlag[];

/** What --help says of a setting: its description, then its default (or that it is required). */
export function settingHelp(name: SettingName): string {
  const spec = SETTING_SPECS[name];
  if (Object.hasOwn(DEFAULTS, name)) return `${spec.description} (default ${String(DEFAULTS[name as keyof typeof DEFAULTS])})`;
  return spec.optional === true ? spec.description : `${spec.description} (required)`;
}

/** The commander options of the flags, each with its setting's help. */
export function serveOptions(): { option: Option; setting: SettingName }[] {
  return SERVE_FLAGS.map(({ flag, setting, value }) => ({ option: new Option(`${flag} <${value}>`, settingHelp(setting)), setting }));
}

/**
 * The settings the flags gave, from commander's parsed options (text; the schema checks it).
 * A flag not given is undefined, which `loadConfig` leaves to the file or the default.
 */
export function settingsFromFlags(
  options: readonly { option: Option; setting: SettingName }[],
  parsed: Readonly<Record<string, unknown>>,
): ConfigInput {
  return Object.fromEntries(options.map(({ option, setting }) => [setting, parsed[option.attributeName()]]));
}
