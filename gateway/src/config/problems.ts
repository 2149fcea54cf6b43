import type { z } from 'zod';

/**
 * The problems of a config, one line each, named by where they are (`coapPort`,
 * `routes[1].scope`): the schema's issues, with a setting named as the input spelled it.
 */
export function problemsOf(
  issues: readonly z.core.$ZodIssue[],
  under: readonly PropertyKey[] = [],
  spelledAs: ReadonlyMap<PropertyKey, string> = new Map(),
): string[] {
  return issues.flatMap((issue) => {
    const [first, ...rest] = [...under, ...issue.path];
    const where = first === undefined ? '' : nameOf([spelledAs.get(first) ?? first, ...rest]);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => (where === '' ? `unknown setting "${key}"` : `${where}: unknown key "${key}"`));
    }
    return [where === '' ? issue.message : `${where}: ${issue.message}`];
  });
}

function nameOf(path: readonly PropertyKey[]): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : `${i === 0 ? '' : '.'}${String(part)}`)).join('');
}
