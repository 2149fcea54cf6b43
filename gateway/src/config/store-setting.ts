import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { REDIS_URL_FORMS, readRedisUrl } from '../store/redis/redis-url.ts';
import { DEFAULTS } from './defaults.ts';
import { quote, wholeNumber, withoutPassword } from './fields.ts';
import { problemsOf } from './problems.ts';
import type { StoreConfig } from './types.ts';

/** What is wrong with a Redis URL, or undefined; `expected` says what the setting accepts. */
function redisUrlProblem(text: string, expected: string): string | undefined {
  const { problem } = readRedisUrl(text, expected);
  return problem === undefined ? undefined : `${problem}, got ${quote(withoutPassword(text))}`;
}

const redisUrl = z.string({ error: (issue) => `expected ${REDIS_URL_FORMS}, got ${quote(issue.input)}` })
  .superRefine((text, ctx) => {
    const problem = redisUrlProblem(text, REDIS_URL_FORMS);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', input: withoutPassword(text), message: problem });
  });

const STORE_KINDS = 'expected "kind": "file" or "redis"';

const storeObject = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('file') }),
  z.strictObject({
    kind: z.literal('redis'),
    url: redisUrl,
    keyPrefix: z.string({ error: (issue) => `expected text such as "gw:", got ${quote(issue.input)}` })
      .prefault(DEFAULTS.redisKeyPrefix),
    connectTimeoutMs: wholeNumber(1, 600_000).prefault(DEFAULTS.redisConnectTimeoutMs),
    commandTimeoutMs: wholeNumber(1, 600_000).prefault(DEFAULTS.redisCommandTimeoutMs),
  }),
], {
  error: (issue) => (issue.code === 'invalid_union'
    ? `${STORE_KINDS}, got ${quote((issue.input as { kind?: unknown }).kind)}`
    : `expected "file", ${REDIS_URL_FORMS}, or an object {"kind": "file" | "redis", ...}, got ${quote(issue.input)}`),
});

/**
 * Where the shared state lives: "file", a Redis URL (with the default key prefix and timeouts),
 * or the object form, which can set those too.
 */
export const STORE_SETTING = z.preprocess((raw, ctx) => {
  if (raw === 'file') return { kind: 'file' };
  if (typeof raw !== 'string') return raw;
  // The problem is the text's, named `store` (not `store.url`, a key the text does not have).
  const problem = redisUrlProblem(raw, `"file" or ${REDIS_URL_FORMS}`);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', input: withoutPassword(raw), message: problem });
  return { kind: 'redis', url: raw };
}, storeObject).prefault(DEFAULTS.store);

/** The `store` setting alone, for commands that open the store and nothing else. */
export function parseStoreSetting(raw: unknown): StoreConfig {
  const result = STORE_SETTING.safeParse(raw);
  if (!result.success) throw new ConfigError(problemsOf(result.error.issues, ['store']));
  return result.data;
}
