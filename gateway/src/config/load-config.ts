import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.ts';
import { problemsOf } from './problems.ts';
import { DEPRECATED_NAMES, SETTINGS, settingField, type ConfigInput, type DeprecatedName } from './schema.ts';
import { groupedAs } from './setting.ts';
import { GATEWAY_SETTINGS } from './settings.ts';
import type { GatewayConfig, StoreConfig } from './types.ts';

/** Reads a JSON config file; its problems are reported like any other config problem. */
export function readConfigFile(file: string): ConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`--config ${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`--config ${file}: not valid JSON (${(err as Error).message})`]);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([`--config ${file}: must be a JSON object`]);
  }
  return parsed as ConfigInput;
}

export interface LoadConfigOptions {
  /** Told once for each deprecated setting name used; the setting works all the same. */
  warn?: (message: string) => void;
}

/**
 * Validates file settings overlaid with flags, reports every problem in one ConfigError, and
 * returns a deeply frozen config. Flags win over the file; an undefined flag is not given.
 */
export function loadConfig(fileInput: ConfigInput, flagInput: ConfigInput = {}, options: LoadConfigOptions = {}): GatewayConfig {
  const problems: string[] = [];
  const deprecatedUsed = new Set<DeprecatedName>();
  // A setting given under its old name is reported under that name: the one its author wrote.
  const spelledAs = new Map<PropertyKey, string>();
  const input: Record<string, unknown> = {};
  for (const given of [fileInput, flagInput]) {
    for (const [name, value] of Object.entries(given)) {
      if (value === undefined) continue;
      const current = currentName(name);
      if (current !== name) {
        deprecatedUsed.add(name as DeprecatedName);
        if ((given as Record<string, unknown>)[current] !== undefined) {
          problems.push(`${current}: set both as "${current}" and as its deprecated name "${name}": keep only "${current}"`);
          continue;
        }
      }
      input[current] = value;
      if (current === name) spelledAs.delete(current);
      else spelledAs.set(current, name);
    }
  }
  for (const name of deprecatedUsed) options.warn?.(`setting "${name}" is deprecated: use "${DEPRECATED_NAMES[name]}"`);
  const result = SETTINGS.safeParse(input);
  if (!result.success) problems.push(...problemsOf(result.error.issues, [], spelledAs));
  if (!result.success || problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(groupedAs(GATEWAY_SETTINGS, result.data));
}

/** The `store` setting alone, for commands that open the store and nothing else: undefined is its default. */
export function parseStoreSetting(raw: unknown): StoreConfig {
  const result = settingField('store').safeParse(raw);
  if (!result.success) throw new ConfigError(problemsOf(result.error.issues, ['store']));
  return result.data;
}

function currentName(name: string): string {
  return Object.hasOwn(DEPRECATED_NAMES, name) ? DEPRECATED_NAMES[name as DeprecatedName] : name;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
