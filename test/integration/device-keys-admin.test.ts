import { generateKeyPairSync } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import t from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { adminRequest, makeAdminPki, type AdminPki } from '../helpers/admin-client.ts';
import { parsePrometheusText, sampleValue } from '../helpers/admin-prometheus.ts';
import { opensslKey } from '../helpers/device-key-files.ts';
import { startHarness } from '../helpers/harness.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Device public keys and revocation through the admin API of a running gateway (mutual TLS);
// every bad input gets its status and code, and the next good request still works. The CLI's
// side is device-keys-cli.test.ts.

/** A device as GET /devices lists it. */
type Listed = { id: string; secret: boolean; keys: { kid: string; alg: string; expiresAt?: string }[]; disabled?: boolean };

let pki: AdminPki;
t.before(async () => {
  pki = await makeAdminPki(t);
});

t.test('admin API: a key-only device, keys, revoke, disable/enable and tokens revoke; bad input 400/404/409; counted', async (t) => {
  const dir = await tempDir(t, 'gw-keys-');
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress()!;
  const api = (method: string, path: string, body?: unknown) => adminRequest(ports.port, method, path, { tls: pki.client, ...(body !== undefined ? { body } : {}) });
  const revocations = async (kind: string) => sampleValue(parsePrometheusText((await api('GET', '/metrics')).text), 'coap_gateway_revocations_total', { kind }) ?? 0;
  await mkdir(join(dir, 'openssl'));
  const es = await opensslKey(join(dir, 'openssl'), 'es', 'ES256');

  const created = await api('POST', '/devices', { id: 'keyed-1', scopes: ['telemetry:write'], publicKey: await readFile(es.publicFile, 'utf8') });
  t.equal(created.status, 201);
  t.match(created.json(), { id: 'keyed-1', scopes: ['telemetry:write'], kids: [/^[A-Za-z0-9_-]{43}$/] });
  t.notOk('secret' in (created.json() as object), 'no secret for a device given its key');
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const withJwk = await api('POST', '/devices', { id: 'keyed-2', publicKey: { ...jwk, kid: 'jwk-2' }, expires: '2099-01-01T00:00:00Z', secret: true });
  t.equal(withJwk.status, 201);
  t.match(withJwk.json(), { id: 'keyed-2', kids: ['jwk-2'], secret: /^[0-9a-f]{64}$/ }, 'a JWK object, and secret: true makes one too');
  const listed = await api('GET', '/devices');
  t.match(listed.json(), [{ id: 'keyed-1', secret: false, keys: [{ alg: 'ES256' }] },
    { id: 'keyed-2', secret: true, keys: [{ kid: 'jwk-2', alg: 'EdDSA', expiresAt: '2099-01-01T00:00:00.000Z' }] }]);
  t.notOk(listed.text.includes(jwk.x!) || /secretHash|publicJwk/.test(listed.text), 'GET /devices shows no key material and no hash');

  const addKey = await api('POST', '/devices/keyed-1/keys', { publicKey: jwk, expires: '2099-01-01T00:00:00Z' });
  t.equal(addKey.status, 201);
  const { kid } = addKey.json() as { kid: string };
  t.match(addKey.json(), { kid: await calculateJwkThumbprint(jwk), alg: 'EdDSA', expiresAt: '2099-01-01T00:00:00.000Z' });
  t.notOk('publicJwk' in (addKey.json() as object), 'the answer names the key, without it');
  t.match((await api('GET', '/devices/keyed-1/keys')).json(), [{ alg: 'ES256' }, { kid, alg: 'EdDSA' }]);
  const third = await api('POST', '/devices/keyed-1/keys', { publicKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) });
  t.equal(third.status, 201);

  const pemOf = (type: 'rsa' | 'p384') => (type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-384' }))
    .publicKey.export({ format: 'pem', type: 'spki' }).toString();
  const bad: [string, string, unknown, number, string, RegExp][] = [
    ['POST', '/devices/keyed-1/keys', { publicKey: 'not a key' }, 400, 'GW_ERR_ADMIN_BAD_KEY', /neither a PEM/],
    ['POST', '/devices/keyed-1/keys', { publicKey: pemOf('rsa') }, 400, 'GW_ERR_ADMIN_BAD_KEY', /rsa keys are not accepted/],
    ['POST', '/devices/keyed-1/keys', { publicKey: pemOf('p384') }, 400, 'GW_ERR_ADMIN_BAD_KEY', /secp384r1/],
    ['POST', '/devices/keyed-1/keys', { publicKey: { kty: 'RSA', n: 'x', e: 'AQAB' } }, 400, 'GW_ERR_ADMIN_BAD_KEY', /rsa keys are not accepted/],
    ['POST', '/devices/keyed-1/keys', { publicKey: { kty: 'oct', k: 'c2VjcmV0' } }, 400, 'GW_ERR_ADMIN_BAD_KEY', /not a usable public JWK/],
    ['POST', '/devices/keyed-1/keys', { publicKey: 'A'.repeat(5000) }, 400, 'GW_ERR_ADMIN_BAD_KEY', /5000 characters \(at most 4096\)/],
    ['POST', '/devices/keyed-1/keys', { publicKey: { ...jwk, d: 'secret' } }, 400, 'GW_ERR_ADMIN_BAD_KEY', /private key/],
    ['POST', '/devices/keyed-1/keys', { publicKey: { ...jwk, alg: 'ES256' } }, 400, 'GW_ERR_ADMIN_BAD_KEY', /but its key is EdDSA/],
    ['POST', '/devices/keyed-1/keys', {}, 400, 'GW_ERR_ADMIN_BAD_KEY', /needs "publicKey"/],
    ['POST', '/devices/keyed-1/keys', { publicKey: jwk, expires: 12 }, 400, 'GW_ERR_ADMIN_BAD_KEY', /ISO 8601 date string/],
    ['POST', '/devices/keyed-1/keys', { publicKey: jwk, expires: '2001-01-01' }, 400, 'GW_ERR_ADMIN_BAD_KEY', /in the past/],
    ['POST', '/devices/keyed-1/keys', { publicKey: jwk }, 409, 'GW_ERR_ADMIN_DUPLICATE_KEY', /already/],
    ['POST', '/devices/keyed-1/keys', { publicKey: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) }, 409, 'GW_ERR_ADMIN_TOO_MANY_KEYS', /has 3 keys/],
    ['POST', '/devices/nobody/keys', { publicKey: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) }, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE', /no device/],
    ['GET', '/devices/nobody/keys', undefined, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE', /no device/],
    ['DELETE', '/devices/keyed-1/keys/no-such-kid', undefined, 404, 'GW_ERR_ADMIN_UNKNOWN_KEY', /has no key "no-such-kid"/],
    ['DELETE', '/devices/keyed-1/keys/%E0%A4%A', undefined, 404, 'GW_ERR_ADMIN_UNKNOWN_KEY', /malformed path parameter/],
    ['POST', '/devices', { id: 'nokey-1', secret: false }, 400, 'GW_ERR_ADMIN_BAD_KEY', /a device needs a secret or a public key/],
    ['POST', '/devices', { id: 'nokey-2', expires: '2099-01-01' }, 400, 'GW_ERR_ADMIN_BAD_KEY', /"expires" .* go with "publicKey"/],
    ['POST', '/devices', { id: 'nokey-3', publicKey: jwk, secret: 'yes' }, 400, 'GW_ERR_ADMIN_BAD_KEY', /"secret" must be true or false/],
    ['POST', '/devices', { id: 'bad id!', publicKey: jwk }, 400, 'GW_ERR_ADMIN_BAD_DEVICE_ID', /bad device id/],
    ['POST', '/devices/nobody/revoke', undefined, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE', /no device/],
    ['POST', '/devices/nobody/disable', undefined, 404, 'GW_ERR_ADMIN_UNKNOWN_DEVICE', /no device/],
    ['POST', '/devices/bad%20id!/enable', undefined, 400, 'GW_ERR_ADMIN_BAD_DEVICE_ID', /bad device id/],
    ['POST', `/tokens/${encodeURIComponent('bad jti!')}/revoke`, undefined, 400, 'GW_ERR_ADMIN_BAD_JTI', /bad jti/],
    ['POST', `/tokens/${'x'.repeat(65)}/revoke`, undefined, 400, 'GW_ERR_ADMIN_BAD_JTI', /bad jti/],
  ];
  for (const [method, path, body, status, code, message] of bad) {
    const answer = await api(method, path, body);
    const what = `${method} ${path.slice(0, 40)} ${JSON.stringify(body ?? '').slice(0, 40)}`;
    t.equal(answer.status, status, `${what}: ${status}`);
    t.match(answer.json(), { error: code, message }, `${what}: ${code}, saying why`);
  }
  t.equal(((await api('GET', '/devices/keyed-1/keys')).json() as unknown[]).length, 3, 'the keys are as they were');
  t.same(((await api('GET', '/devices')).json() as Listed[]).map((d) => d.id), ['keyed-1', 'keyed-2'], 'no device added by a bad request');

  for (const removeKid of [kid, (third.json() as { kid: string }).kid]) t.equal((await api('DELETE', `/devices/keyed-1/keys/${removeKid}`)).status, 204);
  const lastKid = (created.json() as { kids: string[] }).kids[0]!;
  const last = await api('DELETE', `/devices/keyed-1/keys/${lastKid}`);
  t.equal(last.status, 409, 'the last credential: 409');
  t.match(last.json(), { error: 'GW_ERR_ADMIN_LAST_CREDENTIAL', message: /only credential/ });
  t.equal((await api('DELETE', '/devices/keyed-2/keys/jwk-2')).status, 204, 'a device with a secret may lose its last key');

  const before = (await h.gateway.store.devices.get('keyed-1'))!;
  t.equal((await api('POST', '/devices/keyed-1/revoke')).status, 204);
  t.not((await h.gateway.store.devices.get('keyed-1'))!.recordId, before.recordId, 'revoked: a new record id');
  t.equal((await api('POST', '/devices/keyed-1/disable')).status, 204);
  t.equal((await h.gateway.store.devices.get('keyed-1'))!.disabled, true);
  t.match((await api('GET', '/devices')).json(), [{ id: 'keyed-1', disabled: true }]);
  t.equal((await api('POST', '/devices/keyed-1/enable')).status, 204);
  t.notOk('disabled' in (await h.gateway.store.devices.get('keyed-1'))!, 'enabled: the flag is gone');
  const beforeSec = Math.floor(Date.now() / 1000);
  t.equal((await api('POST', '/tokens/abc123/revoke')).status, 204);
  const entry = (await h.gateway.store.revocations.list(beforeSec)).find((r) => r.kind === 'token' && r.jti === 'abc123');
  t.ok(entry, 'the revocation is in the store');
  t.ok(entry!.untilSec >= beforeSec + DEFAULTS.tokenTtlSec + DEFAULTS.leewaySec, 'until the token could no longer verify');
  t.equal(await revocations('device'), 1, 'one device revocation counted');
  t.equal(await revocations('disabled'), 1, 'one disable counted (enable is none)');
  t.equal(await revocations('token'), 1, 'one token revocation counted, once');
  await h.assertStillServes(t);
});

t.test('admin API: four key additions at once to one device: three 201, one 409 (compare-and-set)', async (t) => {
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress()!;
  const api = (method: string, path: string, body?: unknown) => adminRequest(ports.port, method, path, { tls: pki.client, ...(body !== undefined ? { body } : {}) });
  t.equal((await api('POST', '/devices', { id: 'busy-1' })).status, 201);
  const answers = await Promise.all([0, 1, 2, 3].map(() =>
    api('POST', '/devices/busy-1/keys', { publicKey: generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }) })));
  t.same(answers.map((a) => a.status).sort(), [201, 201, 201, 409]);
  t.same(((await api('GET', '/devices/busy-1/keys')).json() as { kid: string }[]).map((k) => k.kid).sort(),
    answers.filter((a) => a.status === 201).map((a) => (a.json() as { kid: string }).kid).sort(), 'the store holds the three answered 201');
});
