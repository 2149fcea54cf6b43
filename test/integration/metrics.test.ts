import t from 'tap';
import { adminRequest, makeAdminPki, type AdminPki } from '../helpers/admin-client.ts';
import { parsePrometheusText, sampleSum, sampleValue, type Exposition } from '../helpers/admin-prometheus.ts';
import { startHarness } from '../helpers/harness.ts';

let pki: AdminPki;

t.before(async () => {
  pki = await makeAdminPki(t);
});

/** Changes one base64url character in the middle of the signature: a real change of r, not padding bits. */
function tamper(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const i = Math.floor(signature.length / 2);
  return `${header}.${payload}.${signature.slice(0, i)}${signature[i] === 'A' ? 'B' : 'A'}${signature.slice(i + 1)}`;
}

t.test('the strict parser refuses what is not Prometheus text', async (t) => {
  const good = '# HELP x_total Things.\n# TYPE x_total counter\nx_total{a="b",c="d\\"e"} 3\n';
  t.same(parsePrometheusText(good).samples, [{ name: 'x_total', labels: { a: 'b', c: 'd"e' }, value: 3 }]);
  const bad: [string, string][] = [
    ['a sample before its TYPE', 'x_total 1\n'],
    ['no value', '# TYPE x counter\nx{a="b"}\n'],
    ['unquoted label value', '# TYPE x counter\nx{a=b} 1\n'],
    ['a value that is not a number', '# TYPE x counter\nx 1,5\n'],
    ['an unknown comment', '# TYPE x counter\n# hello\nx 1\n'],
    ['a bad TYPE', '# TYPE x countr\nx 1\n'],
    ['no final newline', '# TYPE x counter\nx 1'],
    ['the wrong suffix', '# TYPE x histogram\nx_total 1\n'],
  ];
  for (const [name, text] of bad) t.throws(() => parsePrometheusText(text), SyntaxError, name);
});

t.test('GET /metrics parses as Prometheus text and counts exactly what happened', async (t) => {
  const h = await startHarness(t, { config: pki.config });
  const port = h.gateway.adminAddress()!.port;
  const secret = await h.provision('sensor-1', ['config:read']);
  const device = await h.device();

  const ok = await device.login('sensor-1', secret);
  t.equal(ok.answer.code, '2.01', '1 good login');
  t.equal((await device.login('sensor-1', Buffer.alloc(32, 1))).answer.code, '4.01', '1 bad login');
  const token = ok.tokens!.accessToken;
  t.equal((await device.send({ path: '/config', token })).code, '2.05', 'bridged request 1');
  t.equal((await device.send({ path: '/config', token })).code, '2.05', 'bridged request 2, same token');
  t.equal((await device.send({ path: '/config', token: tamper(token) })).code, '4.01', '1 tampered token');
  t.equal(h.backend.requests.length, 2, 'two requests reached the backend');

  const res = await adminRequest(port, 'GET', '/metrics', { tls: pki.client });
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  let m: Exposition;
  try {
    m = parsePrometheusText(res.text);
  } catch (err) {
    t.fail(`not Prometheus text: ${(err as Error).message}`);
    return;
  }
  t.pass(`${m.samples.length} samples, every line valid`);
  const families = ['coap_gateway_requests_total', 'coap_gateway_logins_total', 'coap_gateway_token_verifications_total',
    'coap_gateway_backend_latency_seconds', 'coap_gateway_keys', 'coap_gateway_revocations_total', 'coap_gateway_nonce_entries'];
  for (const name of families) t.ok(m.help.has(name) && m.types.has(name), `${name} has HELP and TYPE`);
  t.equal(m.types.get('coap_gateway_backend_latency_seconds'), 'histogram');
  t.equal(m.types.get('coap_gateway_keys'), 'gauge');
  t.equal(m.types.get('coap_gateway_revocations_total'), 'counter');
  t.equal(m.types.get('coap_gateway_nonce_entries'), 'gauge');

  const requests = 'coap_gateway_requests_total';
  t.equal(sampleValue(m, requests, { route: '/auth', code: '2.01' }), 1, 'requests: /auth 2.01');
  t.equal(sampleValue(m, requests, { route: '/auth', code: '4.01' }), 1, 'requests: /auth 4.01');
  t.equal(sampleValue(m, requests, { route: '/config', code: '2.05' }), 2, 'requests: /config 2.05');
  t.equal(sampleSum(m, requests, { code: '4.01' }), 2, 'requests: two 4.01 in all (bad login, tampered token)');
  t.equal(sampleSum(m, requests), 5, 'requests: five in all');

  t.equal(sampleValue(m, 'coap_gateway_logins_total', { method: 'secret', outcome: 'ok' }), 1, 'logins: secret ok');
  t.equal(sampleValue(m, 'coap_gateway_logins_total', { method: 'secret', outcome: 'bad_credentials' }), 1, 'logins: secret bad_credentials');
  t.equal(sampleSum(m, 'coap_gateway_logins_total'), 2, 'logins: nothing else');
  t.equal(sampleSum(m, 'coap_gateway_revocations_total'), 0, 'revocations: none');
  t.equal(sampleValue(m, 'coap_gateway_nonce_entries'), 0, 'nonces: none outstanding');

  const verifications = 'coap_gateway_token_verifications_total';
  // The gateway remembers the tokens it issues, so even the first request after login needs no signature check.
  t.equal(sampleValue(m, verifications, { outcome: 'ok' }) ?? 0, 0, 'verifications: no signature check for a token this gateway issued');
  t.equal(sampleValue(m, verifications, { outcome: 'cache_hit' }), 2, 'verifications: both requests were cache hits');
  t.equal(sampleValue(m, verifications, { outcome: 'invalid' }), 1, 'verifications: the tampered token');
  t.equal(sampleSum(m, verifications), 3, 'verifications: nothing else');

  const latency = 'coap_gateway_backend_latency_seconds';
  t.equal(sampleValue(m, `${latency}_count`, { route: '/config' }), 2, 'backend latency: 2 observations');
  t.equal(sampleSum(m, `${latency}_count`), 2, 'backend latency: none for refused requests');
  const sum = sampleValue(m, `${latency}_sum`, { route: '/config' }) ?? -1;
  t.ok(sum > 0 && sum < 10, `backend latency sum ${sum} s`);
  const buckets = m.samples.filter((s) => s.name === `${latency}_bucket` && s.labels.route === '/config');
  t.ok(buckets.length > 1, 'histogram buckets');
  t.ok(buckets.every((b, i) => i === 0 || b.value >= buckets[i - 1]!.value), 'buckets are cumulative');
  t.equal(buckets.at(-1)?.labels.le, '+Inf');
  t.equal(buckets.at(-1)?.value, 2, '+Inf bucket = count');

  t.equal(sampleValue(m, 'coap_gateway_keys', { state: 'active' }), 1, 'keys: 1 active');
  t.equal(sampleValue(m, 'coap_gateway_keys', { state: 'verifying' }), 0, 'keys: 0 verifying');
  t.equal(sampleValue(m, 'coap_gateway_keys', { state: 'retired' }), 0, 'keys: 0 retired');
  t.equal(sampleValue(m, 'coap_gateway_key_reloads_total', { cause: 'unknown_kid' }) ?? 0, 0, 'no reload: the kid was known');

  t.equal((await device.refresh(ok.tokens!.refreshToken)).answer.code, '2.01', '1 refresh');
  await h.gateway.keystore.rotate('ES256');
  const after = parsePrometheusText(await h.gateway.metrics.text());
  t.equal(sampleValue(after, 'coap_gateway_logins_total', { method: 'refresh', outcome: 'ok' }), 1, 'logins: refresh ok');
  t.equal(sampleSum(after, 'coap_gateway_logins_total'), 3, 'logins: nothing else after the refresh');
  t.equal(sampleValue(after, 'coap_gateway_keys', { state: 'active' }), 1, 'after a rotation: 1 active');
  t.equal(sampleValue(after, 'coap_gateway_keys', { state: 'verifying' }), 1, 'after a rotation: 1 verifying');
  await h.assertStillServes(t);
});
