import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { DEFAULTS } from './defaults.ts';
import { quote, wholeNumber, withoutPassword } from './fields.ts';
import { problemsOf } from './problems.ts';
import type { StoreConfig } from './types.ts';

const REDIS_URL = 'a redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB] or redis+unix:///PATH[?db=DB] URL';

/** Redis has 16 databases unless configured otherwise: 0 to 15. */
const isDatabase = (text: string): boolean => /^\d{1,2}$/.test(text) && Number(text) <= 15;

const NETWORK_SHAPE = (scheme: string) =>
  `${scheme}//[[USER]:PASSWORD@]HOST:PORT[/DB] with a host and a port from 1 to 65535`;
const SOCKET_SHAPE = 'an absolute socket path, redis+unix:///path/to/redis.sock';

/** What is wrong with a Redis URL, or undefined; `expected` says what the setting accepts. */
function redisUrlProblem(text: string, expected: string): string | undefined {
  const got = `got ${quote(withoutPassword(text))}`;
  const scheme = /^(rediss?|redis\+unix):\/\//.exec(text)?.[1];
  if (scheme === undefined) return `expected ${expected}, ${got}`;
  const shape = scheme === 'redis+unix' ? SOCKET_SHAPE : NETWORK_SHAPE(`${scheme}:`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `expected ${shape}, ${got}`;
  }
  if (scheme === 'redis+unix') {
    if (url.host !== '' || url.pathname.length < 2) return `expected ${shape}, ${got}`;
    if (url.hash !== '' || [...url.searchParams.keys()].some((name) => name !== 'db')) {
      return `expected nothing after the socket path but ?db=DB, ${got}`;
    }
    const database = url.searchParams.get('db');
    if (database !== null && !isDatabase(database)) return `expected ?db= a database number from 0 to 15, ${got}`;
    return undefined;
  }
  if (url.hostname === '' || url.port === '' || Number(url.port) === 0) return `expected ${shape}, ${got}`;
  if (url.search !== '' || url.hash !== '') return `expected no query or fragment in a ${scheme}:// URL, ${got}`;
  const database = url.pathname.replace(/^\//, '');
  if (database !== '' && !isDatabase(database)) {
    return `expected a database number from 0 to 15 after ${scheme}://HOST:PORT/, ${got}`;
  }
  return undefined;
}

const redisUrl = z.string({ error: (issue) => `expected ${REDIS_URL}, got ${quote(issue.input)}` })
  .superRefine((text, ctx) => {
    const problem = redisUrlProblem(text, REDIS_URL);
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
    : `expected "file", ${REDIS_URL}, or an object {"kind": "file" | "redis", ...}, got ${quote(issue.input)}`),
});

/**
 * Where the shared state lives: "file", a Redis URL (with the default key prefix and timeouts),
 * or the object form, which can set those too.
 */
export const STORE_SETTING = z.preprocess((raw, ctx) => {
  if (raw === 'file') return { kind: 'file' };
  if (typeof raw !== 'string') return raw;
  // The problem is the text's, named `store` (not `store.url`, a key the text does not have).
  const problem = redisUrlProblem(raw, `"file" or ${REDIS_URL}`);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', input: withoutPassword(raw), message: problem });
  return { kind: 'redis', url: raw };
}, storeObject).prefault(DEFAULTS.store);

/** The `store` setting alone, for commands that open the store and nothing else. */
export function parseStoreSetting(raw: unknown): StoreConfig {
  const result = STORE_SETTING.safeParse(raw);
  if (!result.success) throw new ConfigError(problemsOf(result.error.issues, ['store']));
  return result.data;
}
