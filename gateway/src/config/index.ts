export { loadConfig, readConfigFile, type LoadConfigOptions } from './load-config.ts';
export { parseStoreSetting } from './store-setting.ts';
export { DEFAULTS, DEFAULT_ROUTES } from './defaults.ts';
export { CONFIG_KEYS, DEPRECATED_NAMES, type ConfigInput, type DeprecatedName, type SettingName } from './schema.ts';
export * from './types.ts';
