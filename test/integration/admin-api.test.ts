import t, { type Test } from 'tap';
import { decodeProtectedHeader } from 'jose';
import { createCa, issueCertificate } from '../../certs/pki.ts';
import { listDevices } from '../../gateway/src/admin/provision.ts';
import { adminRequest, allKeys, makeAdminPki, tls12Handshake, type AdminPki, type ClientTls } from '../helpers/admin-client.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';

type KeyRow = { kid: string; alg: string; state: string; verifyUntil?: string };

const DAY_MS = 24 * 3600 * 1000;
let pki: AdminPki;

t.before(async () => {
  pki = await makeAdminPki(t);
});

async function start(t: Test) {
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress();
  if (ports === undefined || ports.jwksPort === undefined) throw new Error('admin API not started');
  const api = (method: string, path: string, options: { body?: unknown; rawBody?: string; tls?: ClientTls } = {}) =>
    adminRequest(ports.port, method, path, { tls: pki.client, ...options });
  return { h, api, ports };
}

const adminLogLines = (h: Harness) => h.logs.filter((l) => l.msg === 'admin request');

t.test('keys: list, rotate, retire over mutual TLS; JWKS and GET /keys never carry private parts', async (t) => {
  const { h, api } = await start(t);
  const firstKid = h.gateway.keystore.signingKey().kid;
  const listed = await api('GET', '/keys');
  t.equal(listed.status, 200);
  t.match(listed.headers['content-type'], /^application\/json/);
  t.match(listed.json(), [{ kid: firstKid, alg: 'ES256', state: 'active', createdAt: String }]);

  const rotated = await api('POST', '/keys/rotate', { body: { alg: 'EdDSA' } });
  t.equal(rotated.status, 201);
  const created = rotated.json() as KeyRow;
  t.match(created, { alg: 'EdDSA', state: 'active' });
  t.equal(h.gateway.keystore.signingKey().kid, created.kid, 'the gateway signs with the new key at once');
  const secret = await h.provision('dev-1');
  const device = await h.device();
  const { tokens } = await device.login('dev-1', secret);
  t.match(decodeProtectedHeader(tokens!.accessToken), { kid: created.kid, alg: 'EdDSA' }, 'new logins get the new key');

  const both = (await api('GET', '/keys')).json() as KeyRow[];
  t.same(both.map((k) => [k.kid, k.state]), [[firstKid, 'verifying'], [created.kid, 'active']]);
  t.type(both[0]!.verifyUntil, 'string', 'the verifying key says until when');

  const jwks = await api('GET', '/.well-known/jwks.json');
  t.equal(jwks.status, 200);
  t.same((jwks.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid), [firstKid, created.kid]);

  const retired = await api('POST', `/keys/${firstKid}/retire`);
  t.equal(retired.status, 204);
  t.same(((await api('GET', '/keys')).json() as KeyRow[]).map((k) => k.state), ['retired', 'active']);
  const after = (await api('GET', '/.well-known/jwks.json')).json() as { keys: { kid: string }[] };
  t.same(after.keys.map((k) => k.kid), [created.kid], 'a retired key leaves the JWKS');
  for (const body of [listed.text, rotated.text, jwks.text, JSON.stringify(both)]) {
    t.notOk(allKeys(JSON.parse(body)).includes('d'), 'no "d" anywhere');
  }
  t.notOk(/"publicJwk"/.test(listed.text), 'GET /keys lists metadata only');
});

t.test('devices: POST returns the secret once and the device logs in; DELETE refuses its token at once', async (t) => {
  const { h, api } = await start(t);
  const added = await api('POST', '/devices', { body: { id: 'dev-a', scopes: ['config:read'] } });
  t.equal(added.status, 201);
  const body = added.json() as { id: string; secret: string; scopes: string[] };
  t.match(body, { id: 'dev-a', scopes: ['config:read'] });
  t.match(body.secret, /^[0-9a-f]{64}$/);
  const listed = await api('GET', '/devices');
  t.equal(listed.status, 200);
  t.match(listed.json(), [{ id: 'dev-a', scopes: ['config:read'], createdAt: String }]);
  t.notOk(listed.text.includes(body.secret), 'GET /devices never shows the secret');
  t.notOk(/secretHash/.test(listed.text), 'nor its hash');

  const device = await h.device();
  const { answer, tokens } = await device.login('dev-a', Buffer.from(body.secret, 'hex'));
  t.equal(answer.code, '2.01', 'the device logs in over CoAP with the secret from the API');
  const radio = await api('POST', '/devices', { body: { id: 'dev-r', tokenFormat: 'cwt' } });
  t.equal(radio.status, 201, 'a device provisioned for CWTs');
  t.match(radio.json(), { id: 'dev-r', tokenFormat: 'cwt' });
  t.match((await api('GET', '/devices')).json(), [{ id: 'dev-a' }, { id: 'dev-r', tokenFormat: 'cwt' }], 'listed with its format');
  const cwtLogin = await device.login('dev-r', Buffer.from((radio.json() as { secret: string }).secret, 'hex'), { tokenFormat: undefined });
  t.equal(cwtLogin.answer.code, '2.01');
  t.ok(Buffer.isBuffer(cwtLogin.tokens?.accessToken), 'its login without key 6 gets a CWT (bytes)');
  t.equal((await api('DELETE', '/devices/dev-r')).status, 204, 'and removed again');
  t.equal((await device.send({ path: '/config', token: tokens!.accessToken })).code, '2.05');

  t.equal((await api('DELETE', '/devices/dev-a')).status, 204);
  const refused = await device.send({ path: '/config', token: tokens!.accessToken });
  t.equal(refused.code, '4.01', 'a removed device\'s token is refused at once');
  t.equal((await device.login('dev-a', Buffer.from(body.secret, 'hex'))).answer.code, '4.01', 'and it cannot log in');
  t.same((await api('GET', '/devices')).json(), []);
});

t.test('healthz and metrics', async (t) => {
  const { h, api } = await start(t);
  const health = await api('GET', '/healthz');
  t.equal(health.status, 200);
  t.match(health.json(), { ok: true, activeKid: h.gateway.keystore.signingKey().kid, devices: 0 });
  const metrics = await api('GET', '/metrics');
  t.equal(metrics.status, 200);
  t.match(metrics.headers['content-type'], /^text\/plain/);
  t.match(metrics.text, /^coap_gateway_keys\{state="active"\} 1$/m);
  t.match(adminLogLines(h).at(-1), { method: 'GET', path: '/metrics', status: 200, client: 'admin' }, 'each request logged with the client CN');
});

t.test('refused at the TLS handshake: no client certificate, one from another CA, an expired one', async (t) => {
  const { h, api, ports } = await start(t);
  const other = createCa({ commonName: 'not the admin CA', validDays: 30 });
  const foreign = issueCertificate({ ca: other, commonName: 'admin', usage: 'client', validDays: 30 });
  const expired = issueCertificate({
    ca: pki.adminCa, commonName: 'admin', usage: 'client',
    notBefore: new Date(Date.now() - 30 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS),
  });
  const clients: [string, ClientTls][] = [
    ['no client certificate', pki.anonymous],
    ['a certificate from another CA', { ca: pki.anonymous.ca, cert: foreign.certPem, key: foreign.keyPem }],
    ['an expired admin certificate', { ca: pki.anonymous.ca, cert: expired.certPem, key: expired.keyPem }],
  ];
  t.same(await tls12Handshake(ports.port, pki.client), { completed: true }, 'the admin client completes a TLS 1.2 handshake');
  for (const [name, tls] of clients) {
    const handshake = await tls12Handshake(ports.port, tls);
    t.equal(handshake.completed, false, `${name}: TLS 1.2 handshake refused (${handshake.code})`);
    for (const [method, path] of [['GET', '/keys'], ['POST', '/keys/rotate']] as const) {
      const kid = h.gateway.keystore.signingKey().kid;
      const err: NodeJS.ErrnoException = await api(method, path, { tls }).then((res) => new Error(`answered ${res.status}`), (e: NodeJS.ErrnoException) => e);
      t.match(err.code, /^(ECONNRESET|EPIPE|ERR_SSL_\w+)$/, `${name}: ${method} ${path} fails in TLS (${err.code ?? err.message})`);
      t.equal(h.gateway.keystore.signingKey().kid, kid, `${name}: nothing rotated`);
    }
  }
  t.equal((await api('GET', '/healthz')).status, 200, 'the admin client is still served');
  t.same(adminLogLines(h).map((l) => l.path), ['/healthz'], 'no refused request ever reached a handler');
  await h.assertStillServes(t);
});

t.test('the JWKS port serves the JWKS without a client certificate, and nothing else', async (t) => {
  const { h, ports } = await start(t);
  const open = (method: string, path: string) => adminRequest(ports.jwksPort!, method, path, { tls: pki.anonymous });
  const jwks = await open('GET', '/.well-known/jwks.json');
  t.equal(jwks.status, 200);
  t.same((jwks.json() as { keys: { kid: string }[] }).keys.map((k) => k.kid), [h.gateway.keystore.signingKey().kid]);
  t.notOk(allKeys(jwks.json()).includes('d'));
  const kid = h.gateway.keystore.signingKey().kid;
  for (const [method, path] of [['GET', '/keys'], ['GET', '/metrics'], ['GET', '/devices'], ['POST', '/keys/rotate'], ['GET', '/healthz']]) {
    t.equal((await open(method!, path!)).status, 404, `${method} ${path}: 404 on the JWKS port`);
  }
  t.equal(h.gateway.keystore.signingKey().kid, kid, 'nothing rotated');
});

t.test('bad admin input gets a clear 4xx with an error code, and the gateway keeps serving', async (t) => {
  const { h, api } = await start(t);
  const activeKid = h.gateway.keystore.signingKey().kid;
  t.equal((await api('POST', '/devices', { body: { id: 'dup-1' } })).status, 201);
  const cases: [string, string, string, { body?: unknown; rawBody?: string }, number, string][] = [
    ['bad device id', 'POST', '/devices', { body: { id: 'bad id!' } }, 400, 'GW_ERR_ADMIN_BAD_DEVICE_ID'],
    ['no device id', 'POST', '/devices', { body: {} }, 400, 'GW_ERR_ADMIN_BAD_DEVICE_ID'],
    ['bad scope', 'POST', '/devices', { body: { id: 'dev-s', scopes: ['bad$scope'] } }, 400, 'GW_ERR_ADMIN_BAD_SCOPE'],
    ['duplicate device', 'POST', '/devices', { body: { id: 'dup-1' } }, 409, 'GW_ERR_ADMIN_DUPLICATE_DEVICE'],
    ['unknown token format', 'POST', '/devices', { body: { id: 'dev-f', tokenFormat: 'xml' } }, 400, 'GW_ERR_ADMIN_BAD_TOKEN_FORMAT'],
    ['token format as a number', 'POST', '/devices', { body: { id: 'dev-f', tokenFormat: 2 } }, 400, 'GW_ERR_ADMIN_BAD_TOKEN_FORMAT'],
    ['malformed JSON', 'POST', '/devices', { rawBody: '{"id": ' }, 400, 'GW_ERR_ADMIN_BAD_JSON'],
    ['unknown device', 'DELETE', '/devices/nobody', {}, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE'],
    ['unknown kid', 'POST', '/keys/no-such-kid/retire', {}, 404, 'GW_ERR_ADMIN_UNKNOWN_KEY'],
    ['retiring the active key', 'POST', `/keys/${activeKid}/retire`, {}, 409, 'GW_ERR_ADMIN_ONLY_ACTIVE_KEY'],
    ['bad alg', 'POST', '/keys/rotate', { body: { alg: 'RS256' } }, 400, 'GW_ERR_ADMIN_BAD_ALG'],
    ['alg none', 'POST', '/keys/rotate', { body: { alg: 'none' } }, 400, 'GW_ERR_ADMIN_BAD_ALG'],
    ['unknown path', 'GET', '/nope', {}, 404, 'GW_ERR_ADMIN_NOT_FOUND'],
    ['wrong method', 'DELETE', '/keys', {}, 405, 'GW_ERR_ADMIN_METHOD_NOT_ALLOWED'],
  ];
  for (const [name, method, path, options, status, code] of cases) {
    const res = await api(method, path, options);
    t.equal(res.status, status, `${name}: ${status}`);
    const body = res.json() as { error?: string; message?: string };
    t.equal(body.error, code, `${name}: error code`);
    t.type(body.message, 'string', `${name}: a message for the operator`);
  }
  // A malformed percent-escape in a path parameter is the client's mistake, not a server error.
  for (const [method, path] of [['POST', '/keys/%E0%A4%A/retire'], ['DELETE', '/devices/%ZZ']] as const) {
    const res = await api(method, path);
    t.ok(res.status >= 400 && res.status < 500, `${method} ${path}: a 4xx, got ${res.status}`);
  }
  t.equal(h.gateway.keystore.signingKey().kid, activeKid, 'the active key is unchanged');
  t.same((await listDevices(h.gateway.store)).map((d) => d.id), ['dup-1'], 'no device added by a bad request');
  t.equal((await api('GET', '/healthz')).status, 200);
  await h.assertStillServes(t);
});
