import { execFile } from 'node:child_process';
import { createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket } from 'node:dgram';
import { generate, parse, type ParsedPacket } from 'coap-packet';
import t, { type Test } from 'tap';
import { SignJWT, calculateJwkThumbprint, exportJWK, exportSPKI, generateKeyPair, importJWK, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import type { DeviceClient } from '../../device-sim/src/device-client.ts';
import { newRecordId } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import type { DeviceKey, DeviceRecord } from '../../gateway/src/store/index.ts';
import { AuthRequestKey, AuthResponseKey, ErrorKey, NONCE_LIFETIME_SEC, WireError, decodeCbor } from '../../gateway/src/wire/index.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { wireCodeOf } from '../helpers/token-checks.ts';

// Signed-assertion login (issue: devices that hold their own keys): every refusal the rules
// name, each with its own test, each answered 4.01 badCredentials with the reason in the log only.

type Alg = 'ES256' | 'EdDSA';
interface DeviceKeyPair { alg: Alg; kid: string; privateKey: CryptoKey; publicJwk: JWK; record: DeviceKey }

async function keyPair(alg: Alg, expiresAt?: string): Promise<DeviceKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return { alg, kid, privateKey, publicJwk, record: { kid, alg, publicJwk, addedAt: new Date().toISOString(), ...(expiresAt ? { expiresAt } : {}) } };
}

async function provisionWithKeys(h: Harness, id: string, keys: DeviceKeyPair[], extra: Partial<DeviceRecord> = {}): Promise<void> {
  await h.gateway.store.devices.add([{
    id, keys: keys.map((k) => k.record), scopes: ['telemetry:write', 'config:read'],
    createdAt: new Date(h.clock.nowMs()).toISOString(), recordId: newRecordId(), ...extra,
  }]);
}

const nowSec = (h: Harness) => Math.floor(h.clock.nowMs() / 1000);

function claimsFor(h: Harness, overrides: JWTPayload = {}): JWTPayload {
  const iat = nowSec(h);
  return { aud: DEFAULTS.audience, iat, exp: iat + 300, jti: randomBytes(12).toString('base64url'), ...overrides };
}

async function sign(key: DeviceKeyPair, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

async function login(device: DeviceClient, id: string, assertion: string) {
  return device.send({
    method: 'POST', path: '/auth', body: new Map<number, unknown>([[AuthRequestKey.deviceId, id], [AuthRequestKey.assertion, assertion]]),
  });
}

const ECHO = 252; // RFC 9175

/**
 * `POST /auth/nonce` as a device does it, from `localAddress`: its answer is bigger than the
 * request, so the gateway first asks the address to prove itself with an Echo (RFC 9175).
 */
async function requestNonce(t: Test, port: number, localAddress = '127.0.0.1', payload = Buffer.alloc(0)): Promise<ParsedPacket[]> {
  const socket = createSocket('udp4');
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve) => socket.bind(0, localAddress, () => resolve()));
  const exchange = (messageId: number, echo?: Buffer) => new Promise<ParsedPacket>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer to POST /auth/nonce')), 5000);
    socket.once('message', (msg) => { clearTimeout(timer); resolve(parse(msg)); });
    socket.send(generate({
      code: 'POST', messageId, token: Buffer.from([messageId & 0xff]), confirmable: true, payload,
      options: [{ name: 'Uri-Path', value: Buffer.from('auth') }, { name: 'Uri-Path', value: Buffer.from('nonce') },
        ...(echo === undefined ? [] : [{ name: String(ECHO) as never, value: echo }])],
    }), port, '127.0.0.1');
  });
  const first = await exchange(0x4001);
  const echo = first.options.find((o) => o.name === String(ECHO))?.value;
  if (first.code !== '4.01' || echo === undefined) return [first];
  return [first, await exchange(0x4002, echo)];
}

/** Refused as bad credentials, the body says only the wire code and server time, and the log says why. */
async function expectRefused(t: Test, h: Harness, answer: { code: string; body: unknown }, reason: RegExp, what: string): Promise<void> {
  t.equal(answer.code, '4.01', `${what}: 4.01`);
  t.equal(wireCodeOf(answer.body), WireError.badCredentials, `${what}: wire code badCredentials`);
  t.same([...(answer.body as Map<number, unknown>).keys()].sort(), [ErrorKey.code, ErrorKey.serverTimeSec], `${what}: the body says nothing more`);
  const line = h.logs.findLast((l) => l.route === '/auth');
  t.match(line?.reason, reason, `${what}: the log says why`);
}

t.test('assertion login, then a bridged request with the token it got', async (t) => {
  const h = await startHarness(t);
  const key = await keyPair('ES256');
  await provisionWithKeys(h, 'keyed-1', [key]);
  const device = await h.device();
  const answer = await login(device, 'keyed-1', await sign(key, claimsFor(h)));
  t.equal(answer.code, '2.01', 'the same 2.01 as a secret login');
  const body = answer.body as Map<number, unknown>;
  t.type(body.get(AuthResponseKey.accessToken), 'string');
  t.ok(body.get(AuthResponseKey.refreshToken) instanceof Uint8Array, 'with an opaque refresh token');
  const res = await device.send({ method: 'POST', path: '/telemetry/temp', body: new Map([[1, 21.5]]),
    token: body.get(AuthResponseKey.accessToken) as string });
  t.equal(res.code, '2.01', 'bridged');
  t.equal(h.backend.requests.at(-1)?.headers['x-device-id'], 'keyed-1', 'the backend hears from the device');
  t.equal(await metricValue(h, 'coap_gateway_logins_total', { method: 'assertion', outcome: 'ok' }), 1, 'counted by method');

  const ed = await keyPair('EdDSA');
  await provisionWithKeys(h, 'keyed-ed', [ed]);
  t.equal((await login(device, 'keyed-ed', await sign(ed, claimsFor(h), { kid: undefined }))).code, '2.01',
    'EdDSA, and no kid: the device\'s one key of that alg');
});

t.test('each refusal of the assertion rules: 4.01, the reason only in the log, and the gateway still serves', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 1000 } });
  const key = await keyPair('ES256');
  const otherKey = await keyPair('ES256');
  const stranger = await keyPair('ES256');
  const soonExpiring = await keyPair('EdDSA', new Date(h.clock.nowMs() + 10_000).toISOString());
  await provisionWithKeys(h, 'keyed-1', [key, soonExpiring]);
  await provisionWithKeys(h, 'keyed-2', [otherKey]);
  const device = await h.device();
  const refuse = async (assertion: string, reason: RegExp, what: string) =>
    expectRefused(t, h, await login(device, 'keyed-1', assertion), reason, what);

  await refuse(await sign({ ...stranger, kid: key.kid }, claimsFor(h)), /signature does not verify/, 'wrong key (a stranger\'s, under our kid)');
  await refuse(await sign(otherKey, claimsFor(h)), /has no key/, 'another device\'s key');
  await refuse(await sign({ ...otherKey, kid: key.kid }, claimsFor(h)), /signature does not verify/, 'another device\'s key, under our kid');
  const ed = await keyPair('EdDSA');
  await refuse(await sign({ ...ed, kid: key.kid }, claimsFor(h)), /alg "EdDSA", but key .* is ES256/, 'alg mismatch: EdDSA under an ES256 key');
  const header = b64({ alg: 'none', kid: key.kid });
  await refuse(`${header}.${b64(claimsFor(h))}.`, /alg "none"/, 'alg none');
  const pem = await exportSPKI(await importJWK(key.publicJwk, 'ES256') as CryptoKey);
  for (const [form, secret] of [['PEM', pem], ['JWK', JSON.stringify(key.publicJwk)]] as const) {
    const hs256 = await new SignJWT(claimsFor(h)).setProtectedHeader({ alg: 'HS256', kid: key.kid }).sign(new TextEncoder().encode(secret));
    await refuse(hs256, /alg "HS256"/, `HS256 with the public key (${form}) as the secret`);
  }
  await refuse(await sign(key, claimsFor(h, { exp: nowSec(h) + 3601 })), /lifetime 3601 s is over 3600/, 'lifetime too long');
  await refuse(await sign(key, claimsFor(h, { iat: nowSec(h) - 601, exp: nowSec(h) + 60 })), /iat is -601 s from/, 'iat too far behind');
  await refuse(await sign(key, claimsFor(h, { iat: nowSec(h) + 601, exp: nowSec(h) + 900 })), /iat is 601 s from/, 'iat too far ahead');
  await refuse(await sign(key, claimsFor(h, { aud: 'someone-else' })), /aud "someone-else" is not/, 'wrong audience');
  await refuse(await sign(key, claimsFor(h, { jti: undefined })), /jti must be/, 'no jti');
  await refuse(await sign(key, claimsFor(h, { exp: undefined })), /iat and exp must be numbers/, 'no exp');
  await refuse(await sign(key, claimsFor(h, { iat: nowSec(h) - 400, exp: nowSec(h) - 100 })), /expired/, 'expired');
  await refuse(await sign(key, claimsFor(h, { nonce: 'AAAAAAAAAAA' })), /nonce unknown/, 'a nonce the gateway never issued');

  const replayed = await sign(key, claimsFor(h));
  t.equal((await login(device, 'keyed-1', replayed)).code, '2.01', 'an assertion is good once');
  await refuse(replayed, /jti .* seen before/, 'the same assertion replayed');
  await refuse(await sign(key, claimsFor(h, { jti: JSON.parse(Buffer.from(replayed.split('.')[1]!, 'base64url').toString()).jti })),
    /seen before/, 'a new assertion with a spent jti');

  t.equal((await login(device, 'keyed-1', await sign(soonExpiring, claimsFor(h)))).code, '2.01', 'a key before its expiry');
  h.clock.advanceSec(20);
  await refuse(await sign(soonExpiring, claimsFor(h)), /expired at/, 'the same key after its expiry');

  const notText = await device.send({ method: 'POST', path: '/auth', body: new Map<number, unknown>([[1, 'keyed-1'], [3, Buffer.from('x')]]) });
  t.equal(notText.code, '4.00', 'an assertion that is not text: 4.00');
  const both = await device.send({ method: 'POST', path: '/auth', body: new Map<number, unknown>([[1, 'keyed-1'], [2, randomBytes(32)], [3, 'a.b.c']]) });
  t.equal(both.code, '4.00', 'secret and assertion together: 4.00');
  await expectRefused(t, h, await login(device, 'nobody', await sign(key, claimsFor(h))), /unknown device/, 'an unknown device');
  await h.assertStillServes(t);
  t.ok(await metricValue(h, 'coap_gateway_logins_total', { method: 'assertion', outcome: 'bad_credentials' }) >= 15, 'refusals counted');
});

t.test('a secret-only device cannot log in with an assertion, nor a key-only device with a secret; a disabled one with neither', async (t) => {
  const h = await startHarness(t);
  const key = await keyPair('ES256');
  const secret = await h.provision('secret-only');
  await provisionWithKeys(h, 'key-only', [key]);
  const device = await h.device();
  await expectRefused(t, h, await login(device, 'secret-only', await sign(key, claimsFor(h))), /has no public key/, 'secret-only, assertion');
  await expectRefused(t, h, (await device.login('key-only', secret)).answer, /device has no secret/, 'key-only, a secret');
  const record = (await h.gateway.store.devices.get('key-only'))!;
  t.ok(await h.gateway.store.devices.replace(record, { ...record, disabled: true }), 'disabled');
  await expectRefused(t, h, await login(device, 'key-only', await sign(key, claimsFor(h))), /device disabled/, 'a disabled device');
  const enabled = (await h.gateway.store.devices.get('key-only'))!;
  t.ok(await h.gateway.store.devices.replace(enabled, { ...enabled, disabled: undefined }), 'enabled again');
  t.equal((await login(device, 'key-only', await sign(key, claimsFor(h)))).code, '2.01', 'and it logs in');
});

t.test('a device without a clock: a nonce, then an assertion with any iat; once, within 60 s, from the same address', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 1000 } });
  const key = await keyPair('ES256');
  await provisionWithKeys(h, 'clockless-1', [key]);
  const device = await h.device();
  const nonce = async (localAddress?: string) => {
    const answers = await requestNonce(t, h.port, localAddress);
    t.equal(answers.length, 2, 'an Echo round trip first: the answer is bigger than the request');
    const answer = answers.at(-1)!;
    t.equal(answer.code, '2.05', 'a nonce');
    const body = decodeCbor(answer.payload) as Map<number, unknown>;
    const bytes = body.get(AuthResponseKey.nonce) as Uint8Array;
    t.equal(bytes.length, 8, '8 random bytes');
    t.equal(body.get(AuthResponseKey.serverTimeSec), nowSec(h), 'and the server time');
    return Buffer.from(bytes).toString('base64url');
  };
  // A clock that thinks it is 1970: its iat is 56 years off, which only a nonce excuses.
  const clockless = (n: string) => claimsFor(h, { iat: 1000, exp: 1060, nonce: n });

  const first = await nonce();
  t.equal((await login(device, 'clockless-1', await sign(key, clockless(first)))).code, '2.01', 'accepted whatever its iat');
  await expectRefused(t, h, await login(device, 'clockless-1', await sign(key, clockless(first))), /nonce unknown, already used/, 'the nonce reused');

  const old = await nonce();
  h.clock.advanceSec(NONCE_LIFETIME_SEC + 1);
  await expectRefused(t, h, await login(device, 'clockless-1', await sign(key, clockless(old))), /nonce (too old|unknown)/, 'a nonce over 60 s old');

  const theirs = await nonce('127.0.0.2');
  await expectRefused(t, h, await login(device, 'clockless-1', await sign(key, clockless(theirs))), /another address/, 'a nonce issued to another address');

  const notEmpty = await requestNonce(t, h.port, '127.0.0.1', Buffer.from('x'));
  t.equal(notEmpty.at(-1)?.code, '4.00', 'a nonce request with a body: 4.00');
  const get = await device.send({ method: 'GET', path: '/auth/nonce' });
  t.equal(get.code, '4.05', 'GET: 4.05');
  await h.assertStillServes(t);
});

t.test('nonces outstanding are bounded per address, the oldest going first (counted)', async (t) => {
  const h = await startHarness(t, { config: { noncesPerAddress: 2 } });
  const key = await keyPair('ES256');
  await provisionWithKeys(h, 'clockless-1', [key]);
  const device = await h.device();
  const issued: string[] = [];
  for (let i = 0; i < 3; i += 1) {
    const answer = (await requestNonce(t, h.port)).at(-1)!;
    issued.push(Buffer.from((decodeCbor(answer.payload) as Map<number, Uint8Array>).get(AuthResponseKey.nonce)!).toString('base64url'));
  }
  t.equal(await metricValue(h, 'coap_gateway_nonce_entries'), 2, 'two outstanding');
  t.equal(await metricValue(h, 'coap_gateway_evictions_total', { table: 'nonces' }), 1, 'the first one ended, counted');
  const withNonce = async (n: string) => login(device, 'clockless-1', await sign(key, claimsFor(h, { iat: 5, exp: 65, nonce: n })));
  await expectRefused(t, h, await withNonce(issued[0]!), /nonce unknown/, 'the oldest nonce');
  t.equal((await withNonce(issued[2]!)).code, '2.01', 'the newest works');
});

t.test('past the failure budget an assertion gets 4.29 without its signature being checked', async (t) => {
  const h = await startHarness(t, { config: { loginFailuresPerMinute: 3 } });
  const key = await keyPair('ES256');
  const stranger = await keyPair('ES256');
  await provisionWithKeys(h, 'keyed-1', [key]);
  const device = await h.device();
  const forged = async () => login(device, 'keyed-1', await sign({ ...stranger, kid: key.kid }, claimsFor(h)));
  for (let i = 0; i < 3; i += 1) t.equal((await forged()).code, '4.01', `forgery ${i + 1}: 4.01`);
  const limited = await forged();
  t.equal(limited.code, '4.29', 'then 4.29');
  t.equal(wireCodeOf(limited.body), WireError.tooManyRequests);
  t.match(h.logs.findLast((l) => l.route === '/auth')?.reason, /assertion not checked/, 'and its signature was not checked');
  t.equal((await metricValue(h, 'coap_gateway_logins_total', { method: 'assertion', outcome: 'rate_limited' })), 1, 'counted');
});

t.test('an assertion made by openssl (an independent signer, as the operator guide shows) logs the device in', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'gw-openssl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const run = (args: string[], input?: Buffer) => new Promise<Buffer>((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'buffer', cwd: dir }, (err, stdout) => (err ? reject(err) : resolve(stdout)));
    if (input !== undefined) child.stdin!.end(input);
  });
  await run(['genpkey', '-algorithm', 'ed25519', '-out', 'device.key.pem']);
  await run(['pkey', '-in', 'device.key.pem', '-pubout', '-out', 'device.pub.pem']);
  const publicJwk = createPublicKey(await readFile(join(dir, 'device.pub.pem'))).export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(publicJwk);
  const h = await startHarness(t);
  await h.gateway.store.devices.add([{
    id: 'openssl-1', keys: [{ kid, alg: 'EdDSA', publicJwk, addedAt: new Date().toISOString() }], scopes: ['telemetry:write'],
    createdAt: new Date(h.clock.nowMs()).toISOString(), recordId: newRecordId(),
  }]);
  const header = b64({ alg: 'EdDSA' });
  const claims = b64(claimsFor(h));
  await writeFile(join(dir, 'input'), `${header}.${claims}`);
  const signature = await run(['pkeyutl', '-sign', '-rawin', '-inkey', 'device.key.pem', '-in', 'input']);
  t.equal(signature.length, 64, 'a raw Ed25519 signature');
  const device = await h.device();
  const answer = await login(device, 'openssl-1', `${header}.${claims}.${signature.toString('base64url')}`);
  t.equal(answer.code, '2.01', 'the gateway accepts it');
});
