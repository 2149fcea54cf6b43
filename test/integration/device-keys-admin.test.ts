import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import t, { type Test } from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { AuthRequestKey } from '../../gateway/src/wire/index.ts';
import { adminRequest, makeAdminPki, type AdminPki } from '../helpers/admin-client.ts';
import { runCli } from '../helpers/cli-run.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness } from '../helpers/harness.ts';

// Device public keys and revocation, as an operator provisions them: the real CLI in its own
// process, and the admin API of a running gateway; every bad input gets its clear error.

const run = promisify(execFile);
let pki: AdminPki;
t.before(async () => {
  pki = await makeAdminPki(t);
});

async function workDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-keys-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A key pair made by openssl, as a firmware engineer would (README's commands). */
async function opensslKey(dir: string, name: string, alg: 'ES256' | 'EdDSA'): Promise<{ privatePem: string; publicFile: string }> {
  const key = join(dir, `${name}.key.pem`);
  const pub = join(dir, `${name}.pub.pem`);
  if (alg === 'ES256') {
    await run('openssl', ['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
    await run('openssl', ['ec', '-in', key, '-pubout', '-out', pub]);
  } else {
    await run('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
    await run('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
  }
  return { privatePem: await readFile(key, 'utf8'), publicFile: pub };
}

const devicesJson = async (state: string) => {
  const listed = await runCli(['devices', 'list', '--json', '--state', state]);
  return JSON.parse(listed.stdout) as { id: string; secret: boolean; keys: { kid: string; alg: string; expiresAt?: string }[]; disabled?: boolean }[];
};

t.test('CLI: a device with an openssl public key (no secret printed), keys add/list/remove within the rules', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  const es = await opensslKey(dir, 'es', 'ES256');
  const added = await runCli(['devices', 'add', 'keyed-1', '--public-key', es.publicFile, '--state', state]);
  t.equal(added.code, 0, 'added');
  t.equal(added.stdout, '', 'no secret is made or printed');
  t.match(added.stderr, /key \S+ \(ES256\)/, 'stderr names the key');
  let [device] = await devicesJson(state);
  t.match(device, { id: 'keyed-1', secret: false, keys: [{ alg: 'ES256' }] }, 'listed with its key, without a secret');
  const firstKid = device!.keys[0]!.kid;

  const ed = await opensslKey(dir, 'ed', 'EdDSA');
  const addKey = await runCli(['devices', 'keys', 'add', 'keyed-1', '--public-key', ed.publicFile, '--expires', '2099-01-01T00:00:00Z', '--state', state]);
  t.equal(addKey.code, 0, 'an EdDSA key added');
  const edKid = addKey.stdout.trim();
  t.match(edKid, /^[A-Za-z0-9_-]{43}$/, 'its kid (an RFC 7638 thumbprint) on stdout');
  const jwk = { kty: 'EC', crv: 'P-256', kid: 'factory-key-7', ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' })) };
  await writeFile(join(dir, 'k.jwk'), JSON.stringify(jwk));
  const addJwk = await runCli(['devices', 'keys', 'add', 'keyed-1', '--public-key', join(dir, 'k.jwk'), '--state', state]);
  t.equal(addJwk.stdout.trim(), 'factory-key-7', 'a JWK keeps its own kid');
  const list = await runCli(['devices', 'keys', 'list', 'keyed-1', '--json', '--state', state]);
  t.match(JSON.parse(list.stdout), [{ kid: firstKid }, { kid: edKid, alg: 'EdDSA', expiresAt: '2099-01-01T00:00:00.000Z' }, { kid: 'factory-key-7' }]);

  const fourth = await opensslKey(dir, 'four', 'ES256');
  const refusals: [string[], RegExp, string][] = [
    [['devices', 'keys', 'add', 'keyed-1', '--public-key', fourth.publicFile], /at most|3 keys/, 'a fourth key'],
    [['devices', 'keys', 'add', 'keyed-1', '--public-key', es.publicFile], /already/, 'a key it has'],
    [['devices', 'keys', 'add', 'nobody', '--public-key', fourth.publicFile], /no device/, 'an unknown device'],
    [['devices', 'keys', 'remove', 'keyed-1', 'no-such-kid'], /no key/, 'an unknown kid'],
    [['devices', 'keys', 'add', 'keyed-1', '--public-key', join(dir, 'es.key.pem')], /private key/, 'a private key'],
    [['devices', 'keys', 'add', 'keyed-1', '--public-key', join(dir, 'missing.pem')], /cannot read/, 'a file that is not there'],
    [['devices', 'add', 'past-1', '--public-key', es.publicFile, '--expires', '2001-01-01T00:00:00Z'], /in the past/, 'an expiry in the past'],
    [['devices', 'add', 'past-2', '--public-key', es.publicFile, '--expires', 'soon'], /not a date/, 'an expiry that is no date'],
  ];
  for (const [args, message, what] of refusals) {
    const result = await runCli([...args, '--state', state]);
    t.equal(result.code, 2, `${what}: exit 2`);
    t.match(result.stderr, message, `${what}: says why`);
  }
  await writeFile(join(dir, 'rsa.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'pem', type: 'spki' }));
  await writeFile(join(dir, 'p384.pem'), generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'pem', type: 'spki' }));
  await writeFile(join(dir, 'junk.pem'), randomBytes(300).toString('base64'));
  for (const [file, message] of [['rsa.pem', /rsa key/], ['p384.pem', /secp384r1/], ['junk.pem', /neither a PEM/]] as const) {
    const result = await runCli(['devices', 'keys', 'add', 'keyed-1', '--public-key', join(dir, file), '--state', state]);
    t.equal(result.code, 2, `${file}: exit 2`);
    t.match(result.stderr, message, `${file}: says why`);
  }

  for (const kid of [edKid, 'factory-key-7']) t.equal((await runCli(['devices', 'keys', 'remove', 'keyed-1', kid, '--state', state])).code, 0, `${kid} removed`);
  const last = await runCli(['devices', 'keys', 'remove', 'keyed-1', firstKid, '--state', state]);
  t.equal(last.code, 2, 'the last credential cannot be removed');
  t.match(last.stderr, /only credential/);
  [device] = await devicesJson(state);
  t.same(device!.keys.map((k) => k.kid), [firstKid], 'the key is still there');
});

t.test('CLI: --count with --key-type writes private JWKs (mode 0600, with a warning) that log in with assertions', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  const out = join(dir, 'devices.json');
  const added = await runCli(['devices', 'add', '--count', '3', '--key-type', 'EdDSA', '--out', out, '--state', state]);
  t.equal(added.code, 0);
  t.match(added.stderr, /PRIVATE keys \(mode 0600\)/, 'stderr says the file now holds private keys');
  t.equal((await stat(out)).mode & 0o777, 0o600, 'mode 0600');
  const fleet = JSON.parse(await readFile(out, 'utf8')) as { id: string; secret: string; privateJwk: JWK }[];
  t.equal(fleet.length, 3);
  for (const entry of fleet) t.match(entry, { id: /^sim-/, secret: /^[0-9a-f]{64}$/, privateJwk: { kty: 'OKP', crv: 'Ed25519', d: String, kid: String, alg: 'EdDSA' } });
  const { d: _private, alg: _alg, kid: _kid, ...publicJwk } = fleet[0]!.privateJwk;
  t.equal(await calculateJwkThumbprint(publicJwk), fleet[0]!.privateJwk.kid, 'the kid is the public key\'s thumbprint');
  t.equal((await runCli(['devices', 'add', '--count', '2', '--key-type', 'RS256', '--out', out, '--state', state])).code, 2, 'RS256: exit 2');

  const h = await startHarness(t, { config: { state } });
  const device = await h.device();
  const iat = Math.floor(Date.now() / 1000);
  const assertion = await new SignJWT({ aud: DEFAULTS.audience, jti: randomBytes(8).toString('hex') })
    .setProtectedHeader({ alg: 'EdDSA', kid: fleet[0]!.privateJwk.kid! }).setIssuedAt(iat).setExpirationTime(iat + 60)
    .sign(await importJWK(fleet[0]!.privateJwk, 'EdDSA'));
  const answer = await device.send({ method: 'POST', path: '/auth',
    body: new Map<number, unknown>([[AuthRequestKey.deviceId, fleet[0]!.id], [AuthRequestKey.assertion, assertion]]) });
  t.equal(answer.code, '2.01', 'a device of the file logs in with its key');
  t.equal((await device.login(fleet[1]!.id, Buffer.from(fleet[1]!.secret, 'hex'))).answer.code, '2.01', 'and with its secret');
});

t.test('CLI: revoke, disable and enable change the record; unknown devices and bad ids are clear errors', async (t) => {
  const dir = await workDir(t);
  const state = join(dir, 'state');
  t.equal((await runCli(['devices', 'add', 'sensor-1', '--state', state])).code, 0);
  const { stdout } = await runCli(['devices', 'list', '--json', '--state', state]);
  t.equal((JSON.parse(stdout) as unknown[]).length, 1);
  t.equal((await runCli(['devices', 'disable', 'sensor-1', '--state', state])).code, 0);
  t.match(await devicesJson(state), [{ id: 'sensor-1', disabled: true }], 'disabled');
  t.equal((await runCli(['devices', 'enable', 'sensor-1', '--state', state])).code, 0);
  t.notOk((await devicesJson(state))[0]!.disabled, 'enabled');
  for (const args of [['devices', 'revoke', 'nobody'], ['devices', 'disable', 'nobody'], ['devices', 'revoke', 'bad id!'], ['tokens', 'revoke', '']]) {
    const result = await runCli([...args, '--state', state]);
    t.equal(result.code, 2, `${args.join(' ')}: exit 2`);
    t.notMatch(result.stderr, /unexpected error|at .*\.ts:/, `${args.join(' ')}: a message, not a stack trace`);
  }
});

t.test('admin API: a key-only device, keys, revoke, disable/enable and tokens revoke; bad keys 400; counted', async (t) => {
  const dir = await workDir(t);
  const h = await startHarness(t, { config: pki.config });
  const ports = h.gateway.adminAddress()!;
  const api = (method: string, path: string, body?: unknown) => adminRequest(ports.port, method, path, { tls: pki.client, ...(body !== undefined ? { body } : {}) });
  const es = await opensslKey(dir, 'es', 'ES256');
  const created = await api('POST', '/devices', { id: 'keyed-1', scopes: ['telemetry:write'], publicKey: await readFile(es.publicFile, 'utf8') });
  t.equal(created.status, 201);
  t.notOk('secret' in (created.json() as object), 'no secret for a device given its key');
  const jwk = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' });
  const addKey = await api('POST', '/devices/keyed-1/keys', { publicKey: jwk, expires: '2099-01-01T00:00:00Z' });
  t.equal(addKey.status, 201);
  const { kid } = addKey.json() as { kid: string };
  t.match((await api('GET', '/devices/keyed-1/keys')).json(), [{ alg: 'ES256' }, { kid, alg: 'EdDSA' }]);
  t.equal((await api('DELETE', `/devices/keyed-1/keys/${kid}`)).status, 204);
  const bad: [unknown, number][] = [
    [{ publicKey: 'not a key' }, 400], [{ publicKey: { kty: 'RSA', n: 'x', e: 'AQAB' } }, 400], [{ publicKey: 'A'.repeat(5000) }, 400],
    [{ publicKey: { ...jwk, d: 'secret' } }, 400], [{}, 400], [{ publicKey: jwk, expires: 12 }, 400],
  ];
  for (const [body, status] of bad) {
    const answer = await api('POST', '/devices/keyed-1/keys', body);
    t.equal(answer.status, status, `${JSON.stringify(body).slice(0, 40)}: ${status}`);
    t.match(answer.json(), { error: 'GW_ERR_ADMIN_BAD_KEY' });
  }
  t.equal((await api('POST', '/devices/nobody/keys', { publicKey: jwk })).status, 404, 'an unknown device: 404');

  const before = (await h.gateway.store.devices.get('keyed-1'))!;
  t.equal((await api('POST', '/devices/keyed-1/revoke')).status, 204);
  t.not((await h.gateway.store.devices.get('keyed-1'))!.recordId, before.recordId, 'revoked: a new record id');
  t.equal((await api('POST', '/devices/keyed-1/disable')).status, 204);
  t.equal((await h.gateway.store.devices.get('keyed-1'))!.disabled, true);
  t.equal((await api('POST', '/devices/keyed-1/enable')).status, 204);
  t.equal((await h.gateway.store.devices.get('keyed-1'))!.disabled, undefined);
  t.equal((await api('POST', '/tokens/abc123/revoke')).status, 204);
  t.ok((await h.gateway.store.revocations.list(Math.floor(Date.now() / 1000))).some((r) => r.kind === 'token' && r.jti === 'abc123'));
  t.equal((await api('POST', `/tokens/${encodeURIComponent('bad jti!')}/revoke`)).status, 400, 'a bad jti: 400');
  t.equal(await metricValue(h, 'coap_gateway_revocations_total', { kind: 'device' }), 1);
  t.equal(await metricValue(h, 'coap_gateway_revocations_total', { kind: 'disabled' }), 1);
  await h.assertStillServes(t);
});
