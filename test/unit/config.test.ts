import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import { loadConfig, readConfigFile, DEFAULTS, DEFAULT_ROUTES, type ConfigInput } from '../../gateway/src/config/index.ts';
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
  t.same(problemsOf(t, {}), ['backend: required (the backend\'s base URL, http:// or https://)']);
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
    t.ok(problems.some((p) => p.startsWith(`${name} `) && p.endsWith(`cannot read ${file}`)), name);
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
    ['not an object', 'GET /things', /^routes\[0\]\.path: /],
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
