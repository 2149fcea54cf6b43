import type { z } from 'zod';

/**
 * One setting, declared once: the key a config file (or a `serve` flag) gives it, what it
 * accepts, its default, and a line saying what it is for. With `default`, the schema fills it in;
 * with `optional: true`, it is off unless given; with neither, it is required.
 */
export interface SettingSpec {
  readonly key: string;
  readonly kind: z.ZodType;
  readonly default?: unknown;
  readonly optional?: true;
  readonly description: string;
}

/** The settings, grouped as the parts of the gateway read them: a setting, or a group of them. */
export type SettingsTable = { readonly [part: string]: SettingSpec | { readonly [field: string]: SettingSpec } };

/** Every setting of a table, as a union. */
type SpecOf<T extends SettingsTable> = Extract<{
  [P in keyof T]: T[P] extends SettingSpec ? T[P] : T[P][keyof T[P]];
}[keyof T], SettingSpec>;

/** The schema of one setting in the flat schema that files and flags are checked against. */
type FieldOf<S extends SettingSpec> = S extends { default: unknown } ? z.ZodPrefault<S['kind']>
  : S extends { optional: true } ? z.ZodOptional<S['kind']> : S['kind'];

export type FieldsOf<T extends SettingsTable> = { [S in SpecOf<T> as S['key']]: FieldOf<S> };

type OutputOf<S> = S extends SettingSpec ? z.output<FieldOf<S>> : never;

/** The checked configuration in the table's grouped shape. */
export type ConfigOf<T extends SettingsTable> = {
  -readonly [P in keyof T]: T[P] extends SettingSpec ? OutputOf<T[P]> : { -readonly [F in keyof T[P]]: OutputOf<T[P][F]> };
};

export type DefaultsOf<T extends SettingsTable> = {
  readonly [S in Extract<SpecOf<T>, { default: unknown }> as S['key']]: S['default'];
};

const isSpec = (entry: SettingSpec | { readonly [field: string]: SettingSpec }): entry is SettingSpec => 'kind' in entry;

/** The settings of a table in its order (the order problems are reported in). */
export function specsOf(table: SettingsTable): SettingSpec[] {
  return Object.values(table).flatMap((entry) => (isSpec(entry) ? [entry] : Object.values(entry)));
}

export function fieldsOf<T extends SettingsTable>(table: T): FieldsOf<T> {
  return Object.fromEntries(specsOf(table).map((spec) => [spec.key, fieldOf(spec)])) as FieldsOf<T>;
}

function fieldOf(spec: SettingSpec): z.ZodType {
  if ('default' in spec) return spec.kind.prefault(spec.default);
  return spec.optional === true ? spec.kind.optional() : spec.kind;
}

export function defaultsOf<T extends SettingsTable>(table: T): DefaultsOf<T> {
  return Object.fromEntries(specsOf(table).filter((spec) => 'default' in spec).map((spec) => [spec.key, spec.default])) as DefaultsOf<T>;
}

/** The flat settings, checked, put in the table's groups. */
export function groupedAs<T extends SettingsTable>(table: T, settings: Readonly<Record<string, unknown>>): ConfigOf<T> {
  const valueOf = (spec: SettingSpec) => settings[spec.key];
  return Object.fromEntries(Object.entries(table).map(([part, entry]) => [part, isSpec(entry)
    ? valueOf(entry)
    : Object.fromEntries(Object.entries(entry).map(([field, spec]) => [field, valueOf(spec)]))])) as ConfigOf<T>;
}
