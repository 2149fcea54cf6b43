export { loadConfig, parseStoreSetting, readConfigFile, type LoadConfigOptions } from './load-config.ts';
export { DEFAULT_ROUTES } from './route-setting.ts';
export {
  CONFIG_KEYS, DEFAULTS, DEPRECATED_NAMES, SETTING_SPECS, type ConfigInput, type DeprecatedName, type SettingName,
} from './schema.ts';
export type { SettingSpec } from './setting.ts';
export { REDIS_STORE_DEFAULTS } from './store-setting.ts';
export * from './types.ts';
