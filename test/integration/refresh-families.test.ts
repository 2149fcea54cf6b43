import t, { type Test } from 'tap';
import { decodeJwt } from 'jose';
import type { DeviceClient, Tokens } from '../../device-sim/src/device-client.ts';
import { REFRESH_TOKEN_TYP } from '../../gateway/src/auth/index.ts';
import { recordIdOf } from '../../gateway/src/auth/record-id.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness } from '../helpers/harness.ts';
import { accessClaims, signToken } from '../helpers/token-forge.ts';

// RFC 9700 section 4.14.2: refresh tokens rotate within a family; a spent one presented again
// revokes the family, successors and access tokens included, cached or not.

const wireCodeOf = (body: unknown) => (body instanceof Map ? (body as Map<number, unknown>).get(ErrorKey.code) : undefined);
const config = (token: string) => ({ method: 'GET' as const, path: '/config', token });

async function login(t: Test, device: DeviceClient, id: string, secret: Buffer): Promise<Tokens> {
  const { answer, tokens } = await device.login(id, secret);
  t.equal(answer.code, '2.01', `${id} logs in`);
  return tokens!;
}

async function refresh(t: Test, device: DeviceClient, refreshToken: string, what: string): Promise<Tokens> {
  const { answer, tokens } = await device.refresh(refreshToken);
  t.equal(answer.code, '2.01', what);
  return tokens!;
}

function expectInvalid(t: Test, answer: { code: string; body: unknown }, what: string): void {
  t.equal(answer.code, '4.01', `${what}: 4.01`);
  t.equal(wireCodeOf(answer.body), WireError.tokenInvalid, `${what}: tokenInvalid`);
}

/** Every piece of token material: each whole token, its claims and its signature. */
const material = (tokens: readonly string[]) => tokens.flatMap((token) => [token, ...token.split('.').slice(1)]);

t.test('a spent refresh token presented again revokes its family: successors and cached access tokens stop', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const otherSecret = await h.provision('sensor-2');
  const device = await h.device();
  const thief = await h.device();

  const first = await login(t, device, 'sensor-1', secret);
  const family = decodeJwt(first.refreshToken).fam;
  t.type(family, 'string', 'a login starts a family');
  const next = await refresh(t, device, first.refreshToken, 'the device refreshes');
  t.equal(decodeJwt(next.refreshToken).fam, family, 'the successor stays in the family');
  t.equal(decodeJwt(next.accessToken).fam, family, 'and so does its access token');
  t.equal((await device.send(config(next.accessToken))).code, '2.05', 'the successor access token works (and is cached)');
  t.equal((await device.send(config(next.accessToken))).code, '2.05', 'again, from the cache');

  // Other families: a second login of the same device, and another device.
  const second = await login(t, device, 'sensor-1', secret);
  t.not(decodeJwt(second.refreshToken).fam, family, 'another login, another family');
  const other = await login(t, device, 'sensor-2', otherSecret);

  const reused = await thief.refresh(first.refreshToken);
  expectInvalid(t, reused.answer, 'the spent refresh token, presented again');
  expectInvalid(t, (await device.refresh(next.refreshToken)).answer, 'the successor refresh token');
  expectInvalid(t, await device.send(config(next.accessToken)), 'the successor access token, cached before');
  expectInvalid(t, await device.send(config(first.accessToken)), 'the family\'s first access token');
  t.equal(h.backend.requests.length, 2, 'no revoked token reached the backend');

  t.equal((await device.send(config(second.accessToken))).code, '2.05', 'the device\'s other family still works');
  await refresh(t, device, second.refreshToken, 'and refreshes');
  t.equal((await device.send(config(other.accessToken))).code, '2.05', 'another device is not touched');
  await refresh(t, device, other.refreshToken, 'and refreshes');

  const warnings = h.logs.filter((line) => line.family !== undefined);
  t.equal(warnings.length, 1, 'one log line for the theft');
  t.match(warnings[0], { level: 40, deviceId: 'sensor-1', family, msg: /possible theft/ }, 'a warning with device and family');
  const logText = JSON.stringify(h.logs);
  const leaked = material([first.accessToken, first.refreshToken, next.accessToken, next.refreshToken])
    .filter((piece) => logText.includes(piece));
  t.same(leaked, [], 'no token, nor any part of one, in the logs');
  t.equal(await metricValue(h, 'coap_gateway_refresh_families_revoked_total'), 1, 'the revocation is counted');
  t.equal(await metricValue(h, 'coap_gateway_logins_total', { outcome: 'refresh_reused' }), 1, 'and the reuse');
  await h.assertStillServes(t);
});

t.test('a revoked family stays revoked when its spent tokens are presented again, and is logged once', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const first = await login(t, device, 'sensor-1', secret);
  const next = await refresh(t, device, first.refreshToken, 'refresh');
  expectInvalid(t, (await device.refresh(first.refreshToken)).answer, 'reuse');
  for (const token of [first.refreshToken, next.refreshToken, first.refreshToken]) {
    expectInvalid(t, (await device.refresh(token)).answer, 'a refresh token of the revoked family');
  }
  t.equal(h.logs.filter((line) => line.family !== undefined).length, 1, 'one theft, one warning');
  const fresh = await login(t, device, 'sensor-1', secret);
  t.equal((await device.send(config(fresh.accessToken))).code, '2.05', 'the device logs in again with its secret');
});

t.test('a refresh token from before families works once and starts a family; its reuse revokes nothing', async (t) => {
  const h = await startHarness(t);
  await h.provision('sensor-1');
  const device = await h.device();
  const record = (await h.gateway.store.devices.get('sensor-1'))!;
  // What the gateway issued before `fam` existed (bound to the record, as tokens now are).
  const legacy = await signToken(h.gateway.keystore.signingKey(),
    { ...accessClaims('sensor-1', h.clock.nowMs(), record.scopes.join(' '), DEFAULTS.refreshTtlSec), rid: recordIdOf(record) },
    { kid: h.gateway.keystore.signingKey().kid, typ: REFRESH_TOKEN_TYP });
  t.equal(decodeJwt(legacy).fam, undefined, 'a token without `fam`');
  const renewed = await refresh(t, device, legacy, 'a refresh token without a family still refreshes');
  t.type(decodeJwt(renewed.refreshToken).fam, 'string', 'into a new family');
  expectInvalid(t, (await device.refresh(legacy)).answer, 'and only once');
  t.equal((await device.send(config(renewed.accessToken))).code, '2.05', 'its reuse revokes nothing: there is no family to name');
  await refresh(t, device, renewed.refreshToken, 'the new family refreshes');
  t.equal(await metricValue(h, 'coap_gateway_refresh_families_revoked_total'), 0, 'no family revoked');
});
