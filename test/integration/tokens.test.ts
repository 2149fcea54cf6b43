import { createPublicKey } from 'node:crypto';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import type { DeviceClient, Tokens } from '../../device-sim/src/device-client.ts';
import { WireError } from '../../gateway/src/wire/index.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { expectRefused } from '../helpers/token-checks.ts';
import {
  accessClaims, flipSignatureByte, foreignKey, hmacToken, publicKeyAsSecrets, signToken, unsecuredToken, withPayload,
} from '../helpers/token-forge.ts';
import { forwardedClaims, jtiOf } from '../helpers/backend-jwt.ts';

const TTL_SEC = 3600;
const LEEWAY_SEC = 30;
const invalid = { code: '4.01', wire: WireError.tokenInvalid };
const expired = { code: '4.01', wire: WireError.tokenExpired };
const telemetry = (token: string | null) => ({ method: 'POST' as const, path: '/telemetry/temp', body: new Map([['c', 21]]), token });
const config = (token: string) => ({ method: 'GET' as const, path: '/config', token });
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const base64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');

async function loggedIn(t: Test, h: Harness, id: string, scopes?: string[])
  : Promise<{ device: DeviceClient; secret: Buffer; tokens: Tokens }> {
  const secret = await h.provision(id, scopes);
  const device = await h.device();
  const { answer, tokens } = await device.login(id, secret);
  t.equal(answer.code, '2.01', `${id} logs in`);
  return { device, secret, tokens: tokens! };
}

t.test('a tokened request is forwarded: method, path, headers, and the CBOR body as JSON', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  const raw = Buffer.from([0xde, 0xad, 0xbe, 0xef, 0xfb, 0xff]);
  const body = new Map<string, unknown>([
    ['celsius', 21.5], ['count', 7], ['raw', raw], ['tags', ['a', 'b']], ['meta', new Map<string, unknown>([['ok', true], ['none', null]])],
  ]);
  const answer = await device.send({ method: 'POST', path: '/telemetry/temp', body, token: tokens.accessToken });
  t.equal(answer.code, '2.01', 'backend 201 -> 2.01');
  t.equal((answer.body as Map<string, unknown>).get('path'), '/devices/sensor-1/telemetry/temp', 'backend JSON answer came back as CBOR');
  t.equal(h.backend.requests.length, 1, 'exactly one backend request');
  const req = h.backend.requests[0]!;
  t.equal(req.method, 'POST');
  t.equal(req.url, '/devices/sensor-1/telemetry/temp');
  // The backend gets a full JWT (iss, aud, scope) of the same token: same sub, jti and exp.
  t.match(await forwardedClaims(h, req), { sub: 'sensor-1', jti: jtiOf(tokens.accessToken), exp: decodeJwt(tokens.accessToken).exp, scope: 'telemetry:write config:read' });
  t.equal(req.headers['x-device-id'], 'sensor-1');
  t.match(req.headers['x-request-id'], /^\S{8,}$/, 'x-request-id present');
  t.equal(req.headers['content-type'], 'application/json');
  t.strictSame(JSON.parse(req.body.toString('utf8')), {
    celsius: 21.5, count: 7, raw: raw.toString('base64url'), tags: ['a', 'b'], meta: { ok: true, none: null },
  }, 'text keys kept, byte string as base64url');
  const line = h.logs.find((l) => l.msg === 'coap request' && l.path === '/telemetry/temp');
  t.equal(line?.reqId, req.headers['x-request-id'], 'the backend request id is the log line request id');
});

t.test('no Access-Token option: 4.01 tokenMissing', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  await expectRefused(t, h, device, telemetry(null), { code: '4.01', wire: WireError.tokenMissing }, 'no token');
  await expectRefused(t, h, device, telemetry(''), invalid, 'empty token');
});

t.test('a flipped signature byte: 4.01 tokenInvalid', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'the untouched token works');
  for (const index of [0, 31, 32, 63]) {
    await expectRefused(t, h, device, telemetry(flipSignatureByte(tokens.accessToken, index)), invalid, `signature byte ${index}`);
  }
});

t.test('a modified payload under the original signature: 4.01 tokenInvalid', async (t) => {
  const h = await startHarness(t);
  await h.provision('sensor-2');
  const { device, tokens } = await loggedIn(t, h, 'reader-1', ['config:read']);
  const changes = [
    { sub: 'sensor-2' }, { scope: 'config:read telemetry:write' }, { exp: Math.floor(h.clock.nowMs() / 1000) + 365 * 86400 },
  ];
  for (const change of changes) {
    await expectRefused(t, h, device, telemetry(withPayload(tokens.accessToken, change)), invalid, `payload ${JSON.stringify(change)}`);
  }
});

t.test('an expired token (clock past exp + leeway): 4.01 tokenExpired', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'valid before expiry (and now cached)');
  h.clock.advanceSec(TTL_SEC + 3600);
  await expectRefused(t, h, device, telemetry(tokens.accessToken), expired, 'an hour past exp');
});

t.test('a token expired by less than the leeway (exp + 10 s) is still accepted', async (t) => {
  const h = await startHarness(t);
  const used = await loggedIn(t, h, 'sensor-1');
  const fresh = await loggedIn(t, h, 'sensor-2');
  t.equal((await used.device.send(config(used.tokens.accessToken))).code, '2.05', 'verified once (cached)');
  h.clock.advanceSec(TTL_SEC + 10);
  t.equal((await used.device.send(config(used.tokens.accessToken))).code, '2.05', 'cached token within leeway');
  t.equal((await fresh.device.send(config(fresh.tokens.accessToken))).code, '2.05', 'never-seen token within leeway');
  t.equal(h.backend.requests.length, 3, 'all three forwarded');
});

t.test('a token expired by more than the leeway (exp + 31 s): 4.01 tokenExpired', async (t) => {
  const h = await startHarness(t);
  const used = await loggedIn(t, h, 'sensor-1');
  const fresh = await loggedIn(t, h, 'sensor-2');
  t.equal((await used.device.send(config(used.tokens.accessToken))).code, '2.05', 'verified once (cached)');
  h.clock.advanceSec(TTL_SEC + LEEWAY_SEC + 1);
  await expectRefused(t, h, used.device, telemetry(used.tokens.accessToken), expired, 'cached token');
  await expectRefused(t, h, fresh.device, telemetry(fresh.tokens.accessToken), expired, 'never-seen token');
});

t.test('nbf in the future: refused beyond the leeway, accepted within it', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const key = h.gateway.keystore.signingKey();
  const nowSec = Math.floor(h.clock.nowMs() / 1000);
  const claims = accessClaims('sensor-1', h.clock.nowMs());
  t.equal((await device.send(config(await signToken(key, claims, { kid: key.kid })))).code, '2.05', 'control: forged with the real key, no nbf');
  const later = await signToken(key, { ...claims, nbf: nowSec + 120 }, { kid: key.kid });
  await expectRefused(t, h, device, telemetry(later), invalid, 'nbf = now + 120 s');
  const soon = await signToken(key, { ...claims, nbf: nowSec + 10 }, { kid: key.kid });
  t.equal((await device.send(config(soon))).code, '2.05', 'nbf = now + 10 s is within the leeway');
  h.clock.advanceSec(100);
  t.equal((await device.send(config(later))).code, '2.05', 'the nbf + 120 token is good once the clock is within the leeway');
});

t.test('wrong issuer, wrong audience, missing claims or wrong typ (real key): 4.01', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const key = h.gateway.keystore.signingKey();
  const good = accessClaims('sensor-1', h.clock.nowMs());
  t.equal((await device.send(config(await signToken(key, good, { kid: key.kid })))).code, '2.05', 'control: right claims');
  const { exp: _exp, ...noExp } = good;
  const { sub: _sub, ...noSub } = good;
  const cases: [string, Parameters<typeof signToken>[1], Record<string, string>][] = [
    ['wrong iss', { ...good, iss: 'evil-gateway' }, {}],
    ['wrong aud', { ...good, aud: 'another-service' }, {}],
    ['no exp', noExp, {}],
    ['no sub', noSub, {}],
    ['typ JWT', good, { typ: 'JWT' }],
  ];
  for (const [name, claims, header] of cases) {
    await expectRefused(t, h, device, telemetry(await signToken(key, claims, { kid: key.kid, ...header })), invalid, name);
  }
});

t.test('alg none (an unsecured JWT): 4.01', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const claims = accessClaims('sensor-1', h.clock.nowMs());
  await expectRefused(t, h, device, telemetry(unsecuredToken(claims, h.gateway.keystore.signingKey().kid)), invalid, 'alg none');
});

t.test('HS256 keyed with the gateway public key (algorithm confusion): 4.01', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const { kid, privateKey } = h.gateway.keystore.signingKey();
  const claims = accessClaims('sensor-1', h.clock.nowMs());
  for (const { name, secret } of publicKeyAsSecrets(createPublicKey(privateKey))) {
    await expectRefused(t, h, device, telemetry(hmacToken(secret, claims, kid)), invalid, `HS256 with ${name}`);
  }
});

t.test('signed by a key not in the keystore: 4.01', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const { kid } = h.gateway.keystore.signingKey();
  const claims = accessClaims('sensor-1', h.clock.nowMs());
  const cases: [string, ReturnType<typeof foreignKey>, Record<string, string>][] = [
    ['ES256, the real kid', foreignKey('ES256'), { kid }],
    ['ES256, an unknown kid', foreignKey('ES256'), { kid: 'not-a-known-kid' }],
    ['ES256, no kid', foreignKey('ES256'), {}],
    ['EdDSA, the real kid', foreignKey('EdDSA'), { kid }],
  ];
  for (const [name, key, header] of cases) {
    await expectRefused(t, h, device, telemetry(await signToken(key, claims, header)), invalid, name);
  }
});

t.test('a refresh token used as an access token, and an access token used to refresh: 4.01', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  // The refresh token is opaque bytes: as Access-Token text, only a spelling of it can be sent.
  await expectRefused(t, h, device, telemetry(hex(tokens.refreshToken)), invalid, 'refresh token (hex) on a bridged route');
  await expectRefused(t, h, device, telemetry(base64url(tokens.refreshToken)), invalid, 'refresh token (base64url) on a bridged route');
  await expectRefused(t, h, device, { method: 'POST', path: '/auth/refresh', body: new Map([[5, tokens.accessToken]]) },
    invalid, 'access token on /auth/refresh');
});

t.test('a scope the device lacks: 4.03 forbidden', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'reader-1', ['config:read']);
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'its own scope works');
  await expectRefused(t, h, device, { ...telemetry(tokens.accessToken), path: '/telemetry/x' },
    { code: '4.03', wire: WireError.forbidden }, 'config:read only, POST /telemetry/x');
  const line = h.logs.find((l) => l.msg === 'coap request' && l.code === '4.03');
  t.equal(line?.deviceId, 'reader-1', 'the log knows who was refused');
  t.equal(line?.err, 'GW_ERR_AUTH_FORBIDDEN', 'and why');
});

t.test('a device removed after login: its tokens are refused', async (t) => {
  const h = await startHarness(t);
  const { device, secret, tokens } = await loggedIn(t, h, 'sensor-1');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'works while provisioned (and is cached)');
  t.equal(await h.gateway.store.devices.remove('sensor-1'), true);
  await expectRefused(t, h, device, telemetry(tokens.accessToken), invalid, 'access token of a removed device');
  await expectRefused(t, h, device, { method: 'POST', path: '/auth/refresh', body: new Map([[5, tokens.refreshToken]]) },
    invalid, 'refresh token of a removed device');
  const again = await device.login('sensor-1', secret);
  t.equal(again.answer.code, '4.01', 'cannot log in again');
});

t.test('refresh: new tokens once per refresh token', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  const first = await device.refresh(tokens.refreshToken);
  t.equal(first.answer.code, '2.01', 'refresh gives new tokens');
  const next = first.tokens!;
  t.not(next.accessToken, tokens.accessToken, 'a new access token');
  t.not(hex(next.refreshToken), hex(tokens.refreshToken), 'a new refresh token');
  t.equal(next.expiresInSec, TTL_SEC);
  t.equal((await device.send(config(next.accessToken))).code, '2.05', 'the new access token works');
  t.equal((await forwardedClaims(h, h.backend.requests.at(-1))).jti, jtiOf(next.accessToken), 'the backend got the new token\'s JWT');
  const third = await device.refresh(next.refreshToken);
  t.equal(third.answer.code, '2.01', 'the rotated refresh token works once');
  t.equal((await device.refresh(next.refreshToken)).answer.code, '4.01', 'and only once');
  // RFC 9700 section 4.14.2: that reuse revoked the family, the successor it had issued included.
  t.equal((await device.refresh(third.tokens!.refreshToken)).answer.code, '4.01', 'the family is revoked');
  await expectRefused(t, h, device, { method: 'POST', path: '/auth/refresh', body: new Map([[5, tokens.refreshToken]]) },
    invalid, 'the used refresh token again');
});

t.test('logs: one line per request with id, device, route, code, latency; no token or secret anywhere', async (t) => {
  const h = await startHarness(t);
  const { device, secret, tokens } = await loggedIn(t, h, 'sensor-1');
  const key = h.gateway.keystore.signingKey();
  const forged = [
    flipSignatureByte(tokens.accessToken), withPayload(tokens.accessToken, { sub: 'healthy' }),
    unsecuredToken(accessClaims('sensor-1', h.clock.nowMs()), key.kid), hex(tokens.refreshToken),
  ];
  t.equal((await device.send(telemetry(tokens.accessToken))).code, '2.01');
  for (const token of forged) t.equal((await device.send(telemetry(token))).code, '4.01');
  t.equal((await device.send(telemetry(null))).code, '4.01');
  const refreshed = await device.refresh(tokens.refreshToken);
  t.equal(refreshed.answer.code, '2.01');
  t.equal((await device.refresh(tokens.refreshToken)).answer.code, '4.01');
  await h.assertStillServes(t);

  const tokenParts = [tokens, refreshed.tokens!].flatMap((k) => [k.accessToken]).concat(forged)
    .flatMap((tok) => [tok, tok.split('.')[2] ?? ''].filter((s) => s.length > 20))
    .concat([tokens, refreshed.tokens!].flatMap((k) => [hex(k.refreshToken), base64url(k.refreshToken)]));
  const secrets = [secret.toString('hex'), secret.toString('base64'), secret.toString('base64url')];
  for (const line of h.logs) {
    const text = JSON.stringify(line);
    t.notOk(tokenParts.some((s) => text.includes(s)), `no token in "${String(line.msg)}" (${String(line.code ?? '')})`);
    t.notOk(secrets.some((s) => text.includes(s)), `no secret in "${String(line.msg)}"`);
  }
  const lines = h.logs.filter((l) => l.msg === 'coap request');
  t.equal(lines.length, 11, 'one line per request (9 here, 2 from assertStillServes)');
  for (const line of lines) {
    const what = `${String(line.method)} ${String(line.path)} ${String(line.code)}`;
    t.match(line, { reqId: String, code: /^\d\.\d\d$/, latencyMs: Number }, `${what}: reqId, code, latencyMs`);
    // Every request here targets a configured route, so the line names it even when the token is refused.
    t.type(line.route, 'string', `${what}: route`);
    if (line.code !== '4.01' || line.path === '/auth/refresh') t.type(line.deviceId, 'string', `${what}: deviceId`);
    if (line.code === '4.01') t.type(line.err, 'string', `${what}: the log says why`);
  }
});
