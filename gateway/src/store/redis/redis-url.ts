import type { RedisOptions } from 'ioredis';

/** Where a Redis URL points: the connection part of ioredis's options, and a name safe to log. */
export interface RedisTarget {
  connection: Pick<RedisOptions, 'host' | 'port' | 'path' | 'db' | 'username' | 'password' | 'tls'>;
  /** host:port or the socket path, and the db: never the password. */
  describe: string;
}

const DEFAULT_PORT = 6379;

/**
 * Reads `redis://[[user]:password@]HOST[:PORT][/DB]`, `rediss://...` (TLS) and `redis+unix:///abs/path.sock[?db=N]`.
 * A malformed URL is caller misuse (the config schema checks it first): TypeError.
 */
export function parseRedisUrl(url: string): RedisTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError('redis URL is not a URL (expected redis://HOST:PORT/DB, rediss://... or redis+unix:///path.sock)');
  }
  switch (parsed.protocol) {
    case 'redis:':
    case 'rediss:':
      return tcpTarget(parsed);
    case 'redis+unix:':
      return unixTarget(parsed);
    default:
      throw new TypeError(`redis URL scheme "${parsed.protocol}" is not one of redis:, rediss:, redis+unix:`);
  }
}

function tcpTarget(url: URL): RedisTarget {
  // WHATWG URL keeps the brackets of an IPv6 literal; sockets want the bare address.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new TypeError('redis URL has no host');
  const port = url.port === '' ? DEFAULT_PORT : Number(url.port);
  const db = url.pathname === '' || url.pathname === '/' ? 0 : parseDb(url.pathname.slice(1));
  if (url.search !== '') throw new TypeError('redis URL takes no query (the db is its path: redis://HOST:PORT/DB)');
  const connection: RedisTarget['connection'] = { host, port, db };
  if (url.username !== '') connection.username = decodeURIComponent(url.username);
  if (url.password !== '') connection.password = decodeURIComponent(url.password);
  // tls.connect checks the certificate against `host` (SNI too, unless it is an IP address).
  if (url.protocol === 'rediss:') connection.tls = {};
  return { connection, describe: `${url.protocol}//${url.host}/${db}` };
}

function unixTarget(url: URL): RedisTarget {
  if (url.host !== '') throw new TypeError('redis+unix URL names a socket path, not a host (redis+unix:///abs/path.sock)');
  const path = decodeURIComponent(url.pathname);
  if (!path.startsWith('/') || path.length < 2) throw new TypeError('redis+unix URL needs an absolute socket path');
  let db = 0;
  for (const [name, value] of url.searchParams) {
    if (name !== 'db') throw new TypeError(`redis+unix URL takes only ?db=N, not "${name}"`);
    db = parseDb(value);
  }
  return { connection: { path, db }, describe: `redis+unix://${path}?db=${db}` };
}

function parseDb(text: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new TypeError(`redis URL db "${text}" is not a database number`);
  return Number(text);
}
