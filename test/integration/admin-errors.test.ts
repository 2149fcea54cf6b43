import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { buildAdminServer, createFleetKeys, createMetrics } from '../../gateway/src/admin/index.ts';
import { Keystore, newRecordId } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { ERRORS, type AdminErrorCode } from '../../gateway/src/errors.ts';
import { buildFileStore, type DeviceRegistry, type Store } from '../../gateway/src/store/index.ts';
import { adminRequest, makeAdminPki, type AdminResponse } from '../helpers/admin-client.ts';

// Every admin error row of the one table, provoked against a real admin server over mutual TLS:
// each answers its row's HTTP status with {error: CODE, message}. A row added to the table
// without a case here fails the last assertion.

const BODY_LIMIT_BYTES = 1024;
/** The device whose every change loses to another writer: its updates end GW_ERR_ADMIN_CONFLICT. */
const CONTESTED = 'contested-1';

t.test('every admin error row, each provoked over mutual TLS, answered with its status and {error, message}', async (t) => {
  const pki = await makeAdminPki(t);
  const dir = await mkdtemp(join(tmpdir(), 'gw-admin-errors-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const real = await buildFileStore(dir);
  t.teardown(() => real.close());
  // Another writer changes the contested device between each read and its compare-and-set.
  const devices: DeviceRegistry = {
    async get(id) {
      const record = await real.devices.get(id);
      if (id === CONTESTED && record !== undefined) await real.devices.replace(record, { ...record, recordId: newRecordId() });
      return record;
    },
    add: (records) => real.devices.add(records),
    replace: (expected, next) => real.devices.replace(expected, next),
    remove: (id) => real.devices.remove(id),
    count: () => real.devices.count(),
    list: () => real.devices.list(),
    idOfSender: (sender) => real.devices.idOfSender(sender),
    allocateSenderIds: (count) => real.devices.allocateSenderIds(count),
  };
  const store: Store = { ...real, devices };
  // No key yet (as a keystore whose keys were all removed): the health check finds no active key.
  const keystore = await Keystore.open({ dir: join(dir, 'keys'), signingAlg: 'ES256', maxTokenLifetimeSec: undefined, nowMs: Date.now }, false);
  let healthBroken = false;
  const admin = await buildAdminServer({
    host: '127.0.0.1', port: 0, jwksPort: undefined,
    certFile: pki.paths.adminServer.certPath, keyFile: pki.paths.adminServer.keyPath, caFile: pki.paths.adminCa.certPath,
    keystore, fleetKeys: createFleetKeys(keystore, store), store, metrics: createMetrics(() => keystore),
    logger: pino({ level: 'silent' }), tokenTtlSec: DEFAULTS.tokenTtlSec, leewaySec: DEFAULTS.leewaySec, bodyLimitBytes: BODY_LIMIT_BYTES,
    health: async () => {
      if (healthBroken) throw new TypeError('health check broke');
      return { ok: true, activeKid: keystore.signingKey().kid };
    },
  });
  t.teardown(() => admin.close());
  const api = (method: string, path: string, options: { body?: unknown; rawBody?: string } = {}) =>
    adminRequest(admin.address().port, method, path, { tls: pki.client, ...options });
  const publicJwk = () => generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const created = async (answer: Promise<AdminResponse>, what: string) => t.equal((await answer).status, 201, what);

  const provoked = new Set<AdminErrorCode>();
  const expect = async (code: AdminErrorCode, answer: Promise<AdminResponse>, message: RegExp) => {
    const res = await answer;
    t.equal(res.status, ERRORS[code].http, `${code}: HTTP ${ERRORS[code].http}`);
    t.match(res.headers['content-type'], /^application\/json/, `${code}: JSON`);
    t.same(Object.keys(res.json() as object), ['error', 'message'], `${code}: {error, message}`);
    t.match(res.json(), { error: code, message }, `${code}: ${res.text}`);
    provoked.add(code);
    return res;
  };

  await expect('GW_ERR_ADMIN_STATE', api('GET', '/healthz'), /no active key/);
  await created(api('POST', '/keys/rotate'), 'the first key');
  const activeKid = keystore.signingKey().kid;
  await expect('GW_ERR_ADMIN_ONLY_ACTIVE_KEY', api('POST', `/keys/${activeKid}/retire`), /rotate first/);
  await expect('GW_ERR_ADMIN_UNKNOWN_KEY', api('POST', '/keys/no-such-kid/retire'), /no key with kid "no-such-kid"/);
  await expect('GW_ERR_ADMIN_BAD_ALG', api('POST', '/keys/rotate', { body: { alg: 'HS256' } }), /^unsupported alg "HS256": use ES256 or EdDSA$/);

  await created(api('POST', '/devices', { body: { id: 'dev-1' } }), 'a device');
  await expect('GW_ERR_ADMIN_DUPLICATE_DEVICE', api('POST', '/devices', { body: { id: 'dev-1' } }), /already exists/);
  await expect('GW_ERR_ADMIN_BAD_DEVICE_ID', api('POST', '/devices', { body: { id: 'bad id!' } }), /^bad device id "bad id!"/);
  await expect('GW_ERR_ADMIN_BAD_SCOPE', api('POST', '/devices', { body: { id: 'dev-2', scopes: ['bad$scope'] } }), /^bad scope\(s\): bad\$scope$/);
  await expect('GW_ERR_ADMIN_BAD_TOKEN_FORMAT', api('POST', '/devices', { body: { id: 'dev-2', tokenFormat: 'xml' } }), /must be "jwt" or "cwt"/);
  await expect('GW_ERR_ADMIN_BAD_KEY', api('POST', '/devices/dev-1/keys', { body: {} }), /needs "publicKey"/);
  await expect('GW_ERR_ADMIN_UNKNOWN_DEVICE', api('DELETE', '/devices/nobody'), /^no device "nobody"$/);
  await expect('GW_ERR_ADMIN_BAD_JTI', api('POST', `/tokens/${encodeURIComponent('bad jti!')}/revoke`), /^bad jti "bad jti!"/);

  const key = publicJwk();
  await created(api('POST', '/devices', { body: { id: 'keyed-1', publicKey: key } }), 'a device with only a key');
  await expect('GW_ERR_ADMIN_DUPLICATE_KEY', api('POST', '/devices/keyed-1/keys', { body: { publicKey: key } }), /already/);
  const [kid] = (await api('GET', '/devices/keyed-1/keys')).json() as { kid: string }[];
  await expect('GW_ERR_ADMIN_LAST_CREDENTIAL', api('DELETE', `/devices/keyed-1/keys/${kid!.kid}`), /only credential/);
  await created(api('POST', '/devices/keyed-1/keys', { body: { publicKey: publicJwk() } }), 'a second key');
  await created(api('POST', '/devices/keyed-1/keys', { body: { publicKey: publicJwk() } }), 'a third key');
  await expect('GW_ERR_ADMIN_TOO_MANY_KEYS', api('POST', '/devices/keyed-1/keys', { body: { publicKey: publicJwk() } }), /has 3 keys/);

  await created(api('POST', '/devices', { body: { id: CONTESTED } }), 'the contested device');
  await expect('GW_ERR_ADMIN_CONFLICT', api('POST', `/devices/${CONTESTED}/disable`), /kept changing under 5 attempts: try again$/);

  await expect('GW_ERR_ADMIN_NOT_FOUND', api('GET', '/nope'), /no admin API resource/);
  const wrongMethod = await expect('GW_ERR_ADMIN_METHOD_NOT_ALLOWED', api('DELETE', '/keys'), /^DELETE is not allowed here: use GET$/);
  t.equal(wrongMethod.headers.allow, 'GET', 'RFC 9110 section 15.5.6: Allow lists what the path takes');
  await expect('GW_ERR_ADMIN_BAD_JSON', api('POST', '/devices', { rawBody: '{"id": ' }), /^the body is not valid JSON$/);
  await expect('GW_ERR_ADMIN_BAD_BODY', api('POST', '/devices', { body: ['dev-3'] }), /^the body must be a JSON object$/);
  await expect('GW_ERR_ADMIN_BODY_TOO_LARGE', api('POST', '/devices', { body: { id: 'dev-4', pad: 'x'.repeat(BODY_LIMIT_BYTES) } }),
    /limit is 1024/);
  healthBroken = true;
  await expect('GW_ERR_ADMIN_INTERNAL', api('GET', '/healthz'), /^internal error$/);
  healthBroken = false;
  t.equal((await api('GET', '/healthz')).status, 200, 'and the next request is served');

  const rows = (Object.keys(ERRORS) as AdminErrorCode[]).filter((code) => code.startsWith('GW_ERR_ADMIN_'));
  t.same([...provoked].sort(), rows.sort(), 'every admin row of the table was provoked');
});
