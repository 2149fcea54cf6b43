import { z } from 'zod';
import { REDIS_URL_FORMS, readRedisUrl } from '../store/redis/redis-url.ts';
import { quote, wholeNumber, withoutPassword } from './fields.ts';

/** What a Redis store takes unless its object form says otherwise (the operator guide's store table quotes them). */
export const REDIS_STORE_DEFAULTS = {
  /** Prepended to every key, so that one Redis can serve several fleets. */
  keyPrefix: 'gw:',
  /** How long opening may take before the gateway gives up starting. */
  connectTimeoutMs: 2000,
  /** How long one round trip may take before the call fails as "store unavailable". */
  commandTimeoutMs: 1000,
} as const;

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
    /** redis://, rediss:// or redis+unix://; may hold a password: never log it. */
    url: redisUrl,
    keyPrefix: z.string({ error: (issue) => `expected text such as "gw:", got ${quote(issue.input)}` })
      .prefault(REDIS_STORE_DEFAULTS.keyPrefix),
    connectTimeoutMs: wholeNumber(1, 600_000).prefault(REDIS_STORE_DEFAULTS.connectTimeoutMs),
    commandTimeoutMs: wholeNumber(1, 600_000).prefault(REDIS_STORE_DEFAULTS.commandTimeoutMs),
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
}, storeObject);

/**
 * Where the state shared by the gateways of a fleet lives: devices, refresh families, spent assertion ids, revocations,
 * public keys and limits. Each gateway's private keys stay in its own state directory.
 */
export type StoreConfig = z.output<typeof STORE_SETTING>;

