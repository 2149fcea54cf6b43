import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import {
  loadConfig, parseStoreSetting, readConfigFile, CONFIG_KEYS, DEFAULTS, DEFAULT_ROUTES, type ConfigInput, type StoreConfig,
} from '../../gateway/src/config/index.ts';
import { GATEWAY_SETTINGS } from '../../gateway/src/config/settings.ts';
import type { SettingSpec } from '../../gateway/src/config/setting.ts';
import { ConfigError } from '../../gateway/src/errors.ts';

const BACKEND = 'http://127.0.0.1:8080';

/** The problems of a config that must not load; fails the test if it loads. */
function problemsOf(t: Test, file: ConfigInput, flags?: ConfigInput): readonly string[] {
  try {
    loadConfig(file, flags);
  } catch (err) {
    t.ok(err instanceof ConfigError, 'a ConfigError');
    return (err as ConfigError).problems;
  }
  t.fail('config loaded, expected problems');
  return [];
}

const route = (over: Record<string, unknown>) => ({
  path: '/things/{name}', methods: ['GET'], scope: 'things:read', backendPath: '/things/{sub}/{name}', body: 'cbor-json', ...over,
});

t.test('defaults: only the backend is required', async (t) => {
  const config = loadConfig({ backend: BACKEND });
  t.same(config.coap, {
    host: DEFAULTS.coapHost, port: 5683, piggybackReplyMs: 50, exchangeLifetimeSec: 247, maxExchanges: 100_000, maxPayloadBytes: 16 * 1024,
    udpRecvBufferBytes: 4 * 1024 * 1024, responseCacheBytes: 8 * 1024 * 1024,
    blockBufferBytes: 8 * 1024 * 1024, blockLifetimeSec: 60, representationBytes: 8 * 1024 * 1024,
  });
  t.same(config.backend, { url: BACKEND, caFile: undefined, timeoutMs: 5000, connections: 64 });
  t.same(config.tokens, { issuer: 'coap-gateway', audience: 'coap-gateway', ttlSec: 3600, refreshTtlSec: 7 * 24 * 3600, leewaySec: 30, signingAlg: 'ES256' });
  t.equal(config.stateDir, './var');
  t.equal(config.logLevel, 'info');
  t.equal(config.auth.loginFailuresPerMinute, 10);
  t.same(config.routes, DEFAULT_ROUTES);
  t.equal(config.admin.port, undefined, 'admin API off unless configured');
  t.equal(config.admin.host, '127.0.0.1');
  t.same(config.store, { kind: 'file' }, 'the embedded file store');
  t.same(problemsOf(t, {}), ['backend: required (the backend\'s base URL, http:// or https://)']);
});

t.test('the defaults the CLI and the operator guide quote are the ones applied', async (t) => {
  const config = loadConfig({ backend: BACKEND });
  t.same([config.coap.host, config.coap.port, config.stateDir, config.logLevel, config.backend.timeoutMs],
    [DEFAULTS.coapHost, DEFAULTS.coapPort, DEFAULTS.state, DEFAULTS.logLevel, DEFAULTS.backendTimeoutMs]);
  t.same([config.tokens.ttlSec, config.tokens.refreshTtlSec, config.tokens.leewaySec, config.tokens.signingAlg],
    [DEFAULTS.tokenTtlSec, DEFAULTS.refreshTtlSec, DEFAULTS.leewaySec, DEFAULTS.signingAlg]);
  t.same([config.auth.forgedTokensPerMinute, config.auth.loginFailuresPerMinute],
    [DEFAULTS.forgedTokensPerMinute, DEFAULTS.loginFailuresPerMinute]);
  t.same([config.admin.certFile, config.admin.keyFile, config.admin.caFile],
    [DEFAULTS.adminCert, DEFAULTS.adminKey, DEFAULTS.adminCa]);
  t.equal(DEFAULTS.store, 'file');
});

t.test('every setting of the table: its key loads, at its place in the config, its default applied', async (t) => {
  const config = loadConfig({ backend: BACKEND }) as unknown as Record<string, unknown>;
  const keys: string[] = [];
  const check = (spec: SettingSpec, value: unknown, where: string) => {
    keys.push(spec.key);
    t.ok(spec.description.trim().length > 0, `${spec.key}: a description`);
    if (spec.key === 'store' || spec.key === 'routes' || spec.key === 'backend') return;
    t.same(value, Object.hasOwn(DEFAULTS, spec.key) ? DEFAULTS[spec.key as keyof typeof DEFAULTS] : undefined, `${spec.key} is ${where}`);
  };
  for (const [part, entry] of Object.entries(GATEWAY_SETTINGS)) {
    if ('kind' in entry) check(entry as SettingSpec, config[part], part);
    else for (const [field, spec] of Object.entries(entry)) check(spec, (config[part] as Record<string, unknown>)[field], `${part}.${field}`);
  }
  t.same(keys, CONFIG_KEYS, 'the config keys are the table\'s, in its order');
  t.equal(new Set(keys).size, keys.length, 'no key twice');
  t.same(config.store, { kind: 'file' }, 'store: its default "file"');
  t.equal(DEFAULTS.routes, DEFAULT_ROUTES);
  for (const key of ['backend', 'backendCa', 'adminPort', 'jwksPort']) t.notOk(Object.hasOwn(DEFAULTS, key), `${key}: no default`);
  const given = loadConfig({ backend: BACKEND, coapPort: 1, backendConnections: 2, refreshTtlSec: 3, maxNonces: 4, adminCa: 'ca.pem', jwksPort: 5 });
  t.same([given.coap.port, given.backend.connections, given.tokens.refreshTtlSec, given.auth.maxNonces, given.admin.caFile, given.admin.jwksPort],
    [1, 2, 3, 4, 'ca.pem', 5], 'a given key lands in its group');
});

t.test('values are normalised: trailing slash, localhost, numbers given as text by flags', async (t) => {
  const config = loadConfig({ backend: 'https://api.example.com/v1/', coapHost: 'localhost' }, { coapPort: '5684', backendTimeoutMs: ' 250 ' });
  t.equal(config.backend.url, 'https://api.example.com/v1');
  t.equal(config.coap.host, '127.0.0.1');
  t.equal(config.coap.port, 5684);
  t.equal(config.backend.timeoutMs, 250);
});

t.test('flags win over the file; an undefined flag does not', async (t) => {
  const config = loadConfig({ backend: BACKEND, coapPort: 1000, leeway: 5 }, { coapPort: 2000, leeway: undefined });
  t.equal(config.coap.port, 2000);
  t.equal(config.tokens.leewaySec, 5);
});

t.test('every problem is reported at once', async (t) => {
  const problems = problemsOf(t, {
    backend: 'ftp://files.example.com', coapPort: 70000, coapHost: 'example.com', signingAlg: 'HS256', logLevel: 'loud',
    adminHost: '10.0.0.1', tokenTtl: 0, maxPayloadBytes: 'lots', piggybackReplyMs: 1.5, backendCa: '/nonexistent/ca.pem',
    issuer: '', colour: 'red',
  } as ConfigInput);
  const expected: [string, RegExp][] = [
    ['unknown key', /^unknown setting "colour"$/],
    ['backend', /^backend: must be http:\/\/ or https:\/\/, got ftp:$/],
    ['coapPort', /^coapPort: expected a whole number from 0 to 65535, got 70000$/],
    ['coapHost', /^coapHost: expected an IPv4 or IPv6 address/],
    ['signingAlg', /^signingAlg: expected one of ES256, EdDSA, got "HS256"$/],
    ['logLevel', /^logLevel: expected one of /],
    ['adminHost', /^adminHost: the admin API listens on loopback only/],
    ['tokenTtl', /^tokenTtl: expected a whole number from 1 to /],
    ['maxPayloadBytes', /^maxPayloadBytes: expected a whole number/],
    ['piggybackReplyMs', /^piggybackReplyMs: expected a whole number/],
    ['backendCa', /^backendCa: cannot read \/nonexistent\/ca\.pem$/],
    ['issuer', /^issuer: expected a non-empty string$/],
  ];
  for (const [name, pattern] of expected) t.ok(problems.some((p) => pattern.test(p)), `${name}: ${pattern}`);
  t.equal(problems.length, expected.length, 'one problem each, nothing else');
});

t.test('unknown keys are problems, even when everything else is fine', async (t) => {
  t.same(problemsOf(t, { backend: BACKEND, backendTimeout: 100, 'coap-port': 1 } as ConfigInput), [
    'unknown setting "backendTimeout"', 'unknown setting "coap-port"',
  ]);
});

t.test('the admin API needs its certificate files', async (t) => {
  const problems = problemsOf(t, { backend: BACKEND, adminPort: 0, adminCert: '/nope/c.pem', adminKey: '/nope/k.pem', adminCa: '/nope/ca.pem' });
  t.equal(problems.length, 3);
  const files: [string, string][] = [['adminCert', '/nope/c.pem'], ['adminKey', '/nope/k.pem'], ['adminCa', '/nope/ca.pem']];
  for (const [name, file] of files) {
    t.ok(problems.some((p) => p.startsWith(`${name}: cannot read ${file} `) && p.includes('make certs')), name);
  }
});

t.test('the result is deeply frozen', async (t) => {
  const config = loadConfig({ backend: BACKEND, routes: [route({})] });
  for (const [name, part] of [['config', config], ['coap', config.coap], ['backend', config.backend], ['tokens', config.tokens],
    ['routes', config.routes], ['a route', config.routes[0]], ['its methods', config.routes[0]!.methods], ['admin', config.admin]] as const) {
    t.ok(Object.isFrozen(part), `${name} is frozen`);
  }
  t.throws(() => { (config.coap as { port: number }).port = 1; }, TypeError, 'assigning throws in strict mode');
  t.throws(() => { (config.routes as unknown[]).push(route({})); }, TypeError);
  t.equal(config.coap.port, 5683);
});

t.test('loading does not freeze or share the caller\'s objects', async (t) => {
  const methods = ['GET', 'POST'];
  const input = { backend: BACKEND, routes: [route({ methods })] };
  const config = loadConfig(input);
  t.notOk(Object.isFrozen(methods), 'the caller\'s methods array stays mutable');
  t.doesNotThrow(() => methods.push('DELETE'), 'the caller can still change its own array');
  t.same(config.routes[0]!.methods, ['GET', 'POST'], 'the config does not change with it');
  t.notOk(Object.isFrozen(DEFAULT_ROUTES[0]!.methods), 'nor are the default routes frozen as a side effect');
});

t.test('routes are validated, each problem named by its index and field', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['relative path', route({ path: 'things/{name}' }), /^routes\[0\]\.path: expected an absolute CoAP path/],
    ['path with a query', route({ path: '/things?x=1', backendPath: '/t' }), /^routes\[0\]\.path: /],
    ['no methods', route({ methods: [] }), /^routes\[0\]\.methods: expected a non-empty list of GET, POST, PUT, DELETE$/],
    ['unknown method', route({ methods: ['GET', 'PATCH'] }), /^routes\[0\]\.methods: /],
    ['scope with a space', route({ scope: 'things read' }), /^routes\[0\]\.scope: expected one scope name$/],
    ['backendPath not absolute', route({ backendPath: 'things/{name}' }), /^routes\[0\]\.backendPath: expected a path starting with \/$/],
    ['unknown body mode', route({ body: 'xml' }), /^routes\[0\]\.body: expected cbor-json or pass-through$/],
    ['{var} not in the CoAP path', route({ backendPath: '/things/{sub}/{room}' }), /^routes\[0\]\.backendPath: \{room\} is not in the CoAP path$/],
    ['not an object', 'GET /things', /^routes\[0\]: expected a route \{"path", "methods", "scope", "backendPath", "body"\}, got "GET \/things"$/],
    ['an unknown field', route({ bodyMode: 'pass-through' }), /^routes\[0\]: unknown key "bodyMode"$/],
  ];
  for (const [name, bad, pattern] of cases) {
    const problems = problemsOf(t, { backend: BACKEND, routes: [bad] });
    t.ok(problems.some((p) => pattern.test(p)), `${name}: ${problems.join(' | ')}`);
  }
  t.same(problemsOf(t, { backend: BACKEND, routes: [] }), ['routes: expected a non-empty array of routes']);
  const two = problemsOf(t, { backend: BACKEND, routes: [route({}), route({ scope: '' }), route({ backendPath: '/x/{y}' })] });
  t.same(two, ['routes[1].scope: expected one scope name', 'routes[2].backendPath: {y} is not in the CoAP path'], 'every bad route, by index');
  const ok = loadConfig({ backend: BACKEND, routes: [route({ body: undefined, backendPath: '/devices/{sub}' })] });
  t.equal(ok.routes[0]!.body, 'cbor-json', 'body defaults to cbor-json; {sub} is always allowed');
});

t.test('readConfigFile: a JSON object is read; a missing file, bad JSON or a non-object is a ConfigError', async (t) => {
  const dir = t.testdir();
  const good = `${dir}/good.json`;
  writeFileSync(good, JSON.stringify({ backend: 'http://127.0.0.1:8080', coapPort: 0 }));
  t.equal(loadConfig(readConfigFile(good)).coap.port, 0);
  for (const [name, text] of [['bad.json', '{"backend":'], ['array.json', '[1]'], ['null.json', 'null']] as const) {
    writeFileSync(`${dir}/${name}`, text);
    t.throws(() => readConfigFile(`${dir}/${name}`), ConfigError, name);
  }
  t.throws(() => readConfigFile(`${dir}/none.json`), ConfigError, 'missing file');
});

/** Loads a config, collecting the warnings it gives. */
function loadWarned(file: ConfigInput, flags: ConfigInput = {}) {
  const warnings: string[] = [];
  const config = loadConfig(file, flags, { warn: (message) => warnings.push(message) });
  return { config, warnings };
}

t.test('the old names without units still work, each with one warning', async (t) => {
  const old = loadWarned({ backend: BACKEND, tokenTtl: 60, refreshTtl: 120, leeway: 5 }, { leeway: 7 });
  t.same(old.config.tokens, { ...old.config.tokens, ttlSec: 60, refreshTtlSec: 120, leewaySec: 7 }, 'flags still win');
  t.same(old.warnings.sort(), [
    'setting "leeway" is deprecated: use "leewaySec"',
    'setting "refreshTtl" is deprecated: use "refreshTtlSec"',
    'setting "tokenTtl" is deprecated: use "tokenTtlSec"',
  ], 'once per name, though "leeway" came from the file and the flags');

  const current = loadWarned({ backend: BACKEND, tokenTtlSec: 60, refreshTtlSec: 120, leewaySec: 5 });
  t.same([current.config.tokens.ttlSec, current.config.tokens.refreshTtlSec, current.config.tokens.leewaySec], [60, 120, 5]);
  t.same(current.warnings, [], 'no warning for the current names');

  const mixed = loadWarned({ backend: BACKEND, leeway: 5 }, { leewaySec: '9' });
  t.equal(mixed.config.tokens.leewaySec, 9, 'a flag under the new name wins over the file\'s old name');
  t.same(mixed.warnings, ['setting "leeway" is deprecated: use "leewaySec"']);
  t.doesNotThrow(() => loadConfig({ backend: BACKEND, leeway: 5 }), 'warn is optional');
});

t.test('a problem names a setting as it was written; both names for one setting is a problem', async (t) => {
  t.match(problemsOf(t, { backend: BACKEND, leeway: -1 }), [/^leeway: expected a whole number from 0 to 3600, got -1$/]);
  t.match(problemsOf(t, { backend: BACKEND, leeway: 5 }, { leewaySec: 'x' }), [/^leewaySec: expected a whole number/],
    'the flag\'s value, under the flag\'s name');
  t.same(problemsOf(t, { backend: BACKEND, leeway: 5, leewaySec: 5 }), [
    'leewaySec: set both as "leewaySec" and as its deprecated name "leeway": keep only "leewaySec"',
  ]);
  t.same(problemsOf(t, { backend: BACKEND }, { tokenTtlSec: 5, tokenTtl: 5 }), [
    'tokenTtlSec: set both as "tokenTtlSec" and as its deprecated name "tokenTtl": keep only "tokenTtlSec"',
  ], 'in flags too');
});

t.test('every kind of problem at once: unknown keys, deprecated twice, store, routes, cross-field', async (t) => {
  const problems = problemsOf(t, {
    backend: BACKEND, refreshTtl: 10, refreshTtlSec: 10, store: 'redis://cache', routes: [route({ scope: '' })],
    maxPayloadBytes: 4096, blockBufferBytes: 4096, colour: 'red',
  } as ConfigInput, { coapPort: 'x', nonsense: 1 } as ConfigInput);
  const expected = [
    /^refreshTtlSec: set both/, /^store: expected redis:\/\//, /^routes\[0\]\.scope: /, /^coapPort: /,
    /^blockBufferBytes: must be at least twice maxPayloadBytes \(8192\), got 4096$/, /^unknown setting "colour"$/, /^unknown setting "nonsense"$/,
  ];
  for (const pattern of expected) t.ok(problems.some((p) => pattern.test(p)), String(pattern));
  t.equal(problems.length, expected.length, problems.join(' | '));
  t.same(problemsOf(t, { backend: BACKEND, maxPayloadBytes: 'lots', blockBufferBytes: 1024 }), [
    'maxPayloadBytes: expected a whole number from 64 to 1048576, got "lots"',
  ], 'no cross-field problem made up from a setting that is wrong itself');
});

t.test('store: "file", a Redis URL or an object, into one shape per kind', async (t) => {
  const redis = (url: string, over: Partial<StoreConfig> = {}): StoreConfig => ({
    kind: 'redis', url, keyPrefix: 'gw:', connectTimeoutMs: 2000, commandTimeoutMs: 1000, ...over,
  } as StoreConfig);
  const cases: [string, unknown, StoreConfig][] = [
    ['file', 'file', { kind: 'file' }],
    ['redis://', 'redis://127.0.0.1:6379', redis('redis://127.0.0.1:6379')],
    ['a password and a database', 'redis://:s3cret@cache.internal:6380/15', redis('redis://:s3cret@cache.internal:6380/15')],
    ['a user (Redis 6 ACL)', 'redis://gw:s3cret@cache:6379/0', redis('redis://gw:s3cret@cache:6379/0')],
    ['rediss:// (TLS)', 'rediss://[::1]:6379/', redis('rediss://[::1]:6379/')],
    ['a Unix socket', 'redis+unix:///var/run/redis/redis.sock?db=3', redis('redis+unix:///var/run/redis/redis.sock?db=3')],
    ['the object for file', { kind: 'file' }, { kind: 'file' }],
    ['the object for redis, defaults filled in', { kind: 'redis', url: 'redis://h:1' }, redis('redis://h:1')],
    ['the object for redis, all set', { kind: 'redis', url: 'redis+unix:///s', keyPrefix: 'fleet-a:', connectTimeoutMs: 500, commandTimeoutMs: '250' },
      redis('redis+unix:///s', { keyPrefix: 'fleet-a:', connectTimeoutMs: 500, commandTimeoutMs: 250 })],
  ];
  for (const [name, store, expected] of cases) {
    const config = loadConfig({ backend: BACKEND, store });
    t.same(config.store, expected, name);
    t.ok(Object.isFrozen(config.store), `${name}: frozen`);
    t.same(parseStoreSetting(store), expected, `${name}: parseStoreSetting agrees`);
  }
  t.same(loadConfig({ backend: BACKEND, store: { kind: 'redis', url: 'redis://h:1' } }, { store: 'file' }).store, { kind: 'file' },
    'a --store flag wins over the file');
  t.same(parseStoreSetting(undefined), { kind: 'file' }, 'file unless told');
});

t.test('a bad store is one clear problem, and never shows a password', async (t) => {
  const cases: [unknown, RegExp][] = [
    ['memcached://cache:11211', /^store: expected "file" or a redis:\/\/HOST:PORT\[\/DB\], rediss:\/\/HOST:PORT\[\/DB\] or redis\+unix:\/\/\/PATH\[\?db=DB\] URL, got "memcached:\/\/cache:11211"$/],
    ['FILE', /^store: expected "file" or a redis:\/\//],
    ['redis://localhost', /^store: expected redis:\/\/\[\[USER\]:PASSWORD@\]HOST:PORT\[\/DB\] with a host and a port from 1 to 65535, got "redis:\/\/localhost"$/],
    ['redis://:6379', /^store: expected redis:\/\/.*with a host and a port/],
    ['rediss://cache:0', /^store: expected rediss:\/\/.*with a host and a port from 1 to 65535/],
    ['redis://cache:6379/16', /^store: expected a database number from 0 to 15 after redis:\/\/HOST:PORT\/, got "redis:\/\/cache:6379\/16"$/],
    ['redis://cache:6379/one', /^store: expected a database number from 0 to 15/],
    ['redis://cache:6379?db=1', /^store: expected no query or fragment in a redis:\/\/ URL/],
    ['redis+unix://redis.sock', /^store: expected an absolute socket path, redis\+unix:\/\/\/path\/to\/redis\.sock, got "redis\+unix:\/\/redis\.sock"$/],
    ['redis+unix:///', /^store: expected an absolute socket path/],
    ['redis+unix:///run/redis.sock?db=16', /^store: expected \?db= a database number from 0 to 15/],
    ['redis+unix:///run/redis.sock?timeout=5', /^store: expected nothing after the socket path but \?db=DB/],
    [5, /^store: expected "file", a redis:\/\/.*or an object \{"kind": "file" \| "redis", \.\.\.\}, got 5$/],
    [{ kind: 'memcached' }, /^store\.kind: expected "kind": "file" or "redis", got "memcached"$/],
    [{ url: 'redis://h:1' }, /^store\.kind: expected "kind": "file" or "redis", got undefined$/],
    [{ kind: 'redis' }, /^store\.url: expected a redis:\/\/.* URL, got undefined$/],
    [{ kind: 'redis', url: 'http://h:1' }, /^store\.url: expected a redis:\/\/.* URL, got "http:\/\/h:1"$/],
    [{ kind: 'redis', url: 'redis://h:1', connectTimeoutMs: 0 }, /^store\.connectTimeoutMs: expected a whole number from 1 to 600000, got 0$/],
    [{ kind: 'redis', url: 'redis://h:1', keyPrefix: 7 }, /^store\.keyPrefix: expected text such as "gw:", got 7$/],
    [{ kind: 'file', url: 'redis://h:1' }, /^store: unknown key "url"$/],
  ];
  for (const [store, pattern] of cases) {
    const problems = problemsOf(t, { backend: BACKEND, store } as ConfigInput);
    t.equal(problems.length, 1, `${JSON.stringify(store)}: one problem`);
    t.match(problems[0], pattern, JSON.stringify(store));
  }
  for (const store of ['redis://:hunter2@cache', 'redis://admin:hunter2@cache:6379/99', { kind: 'redis', url: 'redis://:hunter2@cache:6379?x=1' }]) {
    const [problem] = problemsOf(t, { backend: BACKEND, store });
    t.notMatch(problem, /hunter2/, `${problem}: no password`);
    t.match(problem, /:\*\*\*@cache/, 'it shows where the password was');
  }
  t.throws(() => parseStoreSetting('redis://cache'), { name: 'ConfigError', problems: [/^store: expected redis:\/\//] });
});
