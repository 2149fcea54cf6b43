export { loadConfig, readConfigFile } from './load-config.ts';
export { DEFAULTS, DEFAULT_ROUTES } from './defaults.ts';
export * from './schema.ts';
