import type { RedisOptions } from 'ioredis';

/** Where a Redis URL points: the connection part of ioredis's options, and a name safe to log. */
export interface RedisTarget {
  connection: Pick<RedisOptions, 'host' | 'port' | 'path' | 'db' | 'username' | 'password' | 'tls'>;
  /** host:port or the socket path, and the db: never the password. */
  describe: string;
}

/** The forms a Redis URL may take, as a problem names them. */
export const REDIS_URL_FORMS = 'a redis://HOST:PORT[/DB], rediss://HOST:PORT[/DB] or redis+unix:///PATH[?db=DB] URL';

/** A URL read: its target, or what was expected instead (without the URL, which may hold a password). */
export type RedisUrlReading = { target: RedisTarget; problem?: undefined } | { target?: undefined; problem: string };

const NETWORK_SHAPE = (scheme: string) =>
  `${scheme}//[[USER]:PASSWORD@]HOST:PORT[/DB] with a host and a port from 1 to 65535`;
const SOCKET_SHAPE = 'an absolute socket path, redis+unix:///path/to/redis.sock';

/** Redis has 16 databases unless configured otherwise: 0 to 15. */
const database = (text: string): number | undefined => (/^\d{1,2}$/.test(text) && Number(text) <= 15 ? Number(text) : undefined);

/**
 * The one reading of a Redis URL, for the config check and the store alike:
 * `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]` and `rediss://...` (TLS) with a port and a DB from
 * 0 to 15, or `redis+unix:///PATH[?db=DB]`. `expected` is what the caller's setting accepts,
 * said when the scheme is none of these.
 */
export function readRedisUrl(text: string, expected: string = REDIS_URL_FORMS): RedisUrlReading {
  const scheme = /^(rediss?|redis\+unix):\/\//.exec(text)?.[1];
  if (scheme === undefined) return { problem: `expected ${expected}` };
  const shape = scheme === 'redis+unix' ? SOCKET_SHAPE : NETWORK_SHAPE(`${scheme}:`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return { problem: `expected ${shape}` };
  }
  return scheme === 'redis+unix' ? socketTarget(url) : networkTarget(url, scheme, shape);
}

/** For the store, given a URL the config check has passed: anything else is caller misuse (TypeError). */
export function parseRedisUrl(text: string): RedisTarget {
  const reading = readRedisUrl(text);
  if (reading.problem !== undefined) throw new TypeError(`redis URL: ${reading.problem}`);
  return reading.target;
}

function networkTarget(url: URL, scheme: string, shape: string): RedisUrlReading {
  // WHATWG URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '' || url.port === '' || Number(url.port) === 0) return { problem: `expected ${shape}` };
  if (url.search !== '' || url.hash !== '') return { problem: `expected no query or fragment in a ${scheme}:// URL` };
  const dbText = url.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : database(dbText);
  if (db === undefined) return { problem: `expected a database number from 0 to 15 after ${scheme}://HOST:PORT/` };
  const connection: RedisTarget['connection'] = { host, port: Number(url.port), db };
  try {
    if (url.username !== '') connection.username = decodeURIComponent(url.username);
    if (url.password !== '') connection.password = decodeURIComponent(url.password);
  } catch {
    return { problem: `expected a percent-encoded USER and PASSWORD in ${shape}` };
  }
  // tls.connect checks the certificate against `host` (SNI too, unless it is an IP address).
  if (scheme === 'rediss') connection.tls = {};
  return { target: { connection, describe: `${url.protocol}//${url.host}/${db}` } };
}

function socketTarget(url: URL): RedisUrlReading {
  if (url.host !== '' || url.pathname.length < 2) return { problem: `expected ${SOCKET_SHAPE}` };
  if (url.hash !== '' || [...url.searchParams.keys()].some((name) => name !== 'db')) {
    return { problem: 'expected nothing after the socket path but ?db=DB' };
  }
  const dbText = url.searchParams.get('db');
  const db = dbText === null ? 0 : database(dbText);
  if (db === undefined) return { problem: 'expected ?db= a database number from 0 to 15' };
  let path: string;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return { problem: `expected ${SOCKET_SHAPE}` };
  }
  return { target: { connection: { path, db }, describe: `redis+unix://${path}?db=${db}` } };
}
