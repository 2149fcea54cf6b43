import t from 'tap';
import { parseStoreSetting, REDIS_STORE_DEFAULTS } from '../../gateway/src/config/index.ts';
import { ConfigError } from '../../gateway/src/errors.ts';
import { parseRedisUrl, REDIS_URL_FORMS, type RedisTarget } from '../../gateway/src/store/redis/index.ts';

// One reading of a Redis URL: the config check (`store`) and the store that connects must agree
// on every URL, so each case below goes through both.

const ACCEPTED: [string, RedisTarget['connection']][] = [
  ['redis://cache.internal:6380/2', { host: 'cache.internal', port: 6380, db: 2 }],
  ['redis://127.0.0.1:6379', { host: '127.0.0.1', port: 6379, db: 0 }],
  ['redis://:s3cret@cache.internal:6380/15', { host: 'cache.internal', port: 6380, db: 15, password: 's3cret' }],
  ['redis://gw:s3cret@cache:6379/0', { host: 'cache', port: 6379, db: 0, username: 'gw', password: 's3cret' }],
  ['rediss://gw:p%40ss@[::1]:6390', { host: '::1', port: 6390, db: 0, username: 'gw', password: 'p@ss', tls: {} }],
  ['rediss://[::1]:6379/', { host: '::1', port: 6379, db: 0, tls: {} }],
  ['redis+unix:///run/redis/redis.sock?db=3', { path: '/run/redis/redis.sock', db: 3 }],
  ['redis+unix:///var/run/redis/redis.sock', { path: '/var/run/redis/redis.sock', db: 0 }],
];

const NETWORK = (scheme: string) => `expected ${scheme}//[[USER]:PASSWORD@]HOST:PORT[/DB] with a host and a port from 1 to 65535`;
const SOCKET = 'expected an absolute socket path, redis+unix:///path/to/redis.sock';
/** Said with what the setting accepts: the `store` text may also be "file". */
const UNKNOWN_SCHEME = Symbol('unknown scheme');

const REFUSED: [string, string | typeof UNKNOWN_SCHEME][] = [
  ['memcached://cache:11211', UNKNOWN_SCHEME],
  ['localhost:6379', UNKNOWN_SCHEME],
  ['http://host', UNKNOWN_SCHEME],
  ['redis://localhost', NETWORK('redis:')],
  // The store used to take a URL without a port as 6379; README and the config check never did.
  ['redis://10.0.0.5', NETWORK('redis:')],
  ['redis://', NETWORK('redis:')],
  ['redis://:6379', NETWORK('redis:')],
  ['redis://host/x', NETWORK('redis:')],
  ['redis://host?db=1', NETWORK('redis:')],
  ['rediss://cache:0', NETWORK('rediss:')],
  ['redis://cache:6379/16', 'expected a database number from 0 to 15 after redis://HOST:PORT/'],
  ['redis://cache:6379/one', 'expected a database number from 0 to 15 after redis://HOST:PORT/'],
  // The store used to take any 5-digit database.
  ['redis://cache:6379/99999', 'expected a database number from 0 to 15 after redis://HOST:PORT/'],
  ['redis://cache:6379?db=1', 'expected no query or fragment in a redis:// URL'],
  ['redis://:hunter2@cache:6379/1#x', 'expected no query or fragment in a redis:// URL'],
  ['redis://:hunter%zz@cache:6379', `expected a percent-encoded USER and PASSWORD in ${NETWORK('redis:').slice('expected '.length)}`],
  ['redis+unix://redis.sock', SOCKET],
  ['redis+unix://host/x.sock', SOCKET],
  ['redis+unix:///', SOCKET],
  ['redis+unix:///run/redis.sock?db=16', 'expected ?db= a database number from 0 to 15'],
  ['redis+unix:///run/redis.sock?timeout=5', 'expected nothing after the socket path but ?db=DB'],
  ['redis+unix:///x.sock?password=p', 'expected nothing after the socket path but ?db=DB'],
];

t.test('a URL the config accepts is one the store connects to, as README writes them', async (t) => {
  for (const [url, connection] of ACCEPTED) {
    t.same(parseStoreSetting(url), { kind: 'redis', url, ...REDIS_STORE_DEFAULTS }, `${url}: the config accepts it`);
    const target = parseRedisUrl(url);
    t.same(target.connection, connection, `${url}: the store connects there`);
    if (connection.password !== undefined) t.notOk(target.describe.includes(connection.password), `${url}: no password in ${target.describe}`);
  }
  t.notMatch(parseRedisUrl('rediss://gw:p%40ss@[::1]:6390').describe, /p%40ss|p@ss/, 'the password is never in the name that is logged');
});

t.test('a URL the config refuses, the store refuses too, with the same problem and never the password', async (t) => {
  for (const [url, problem] of REFUSED) {
    const forConfig = problem === UNKNOWN_SCHEME ? `expected "file" or ${REDIS_URL_FORMS}` : problem;
    const forStore = problem === UNKNOWN_SCHEME ? `expected ${REDIS_URL_FORMS}` : problem;
    let problems: readonly string[] = [];
    t.throws(() => {
      try {
        parseStoreSetting(url);
      } catch (err) {
        problems = (err as ConfigError).problems;
        throw err;
      }
    }, ConfigError, `${url}: the config refuses it`);
    t.equal(problems.length, 1, `${url}: one problem`);
    t.ok(problems[0]?.startsWith(`store: ${forConfig}, got "`), `${url}: ${problems[0]}`);
    t.throws(() => parseRedisUrl(url), new TypeError(`redis URL: ${forStore}`), `${url}: the store refuses it`);
    for (const said of [problems[0] ?? '', forStore]) t.notMatch(said, /hunter/, `${url}: no password in "${said}"`);
  }
});
