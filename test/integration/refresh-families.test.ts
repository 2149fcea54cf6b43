import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { decodeJwt } from 'jose';
import { readJti } from '../../gateway/src/auth/tokens/token-id.ts';
import type { DeviceClient, Tokens } from '../../device-sim/src/device-client.ts';
import { recordIdOf } from '../../gateway/src/auth/tokens/record-id.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { REFRESH_TOKEN_BYTES, WireError } from '../../gateway/src/wire/index.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness } from '../helpers/harness.ts';
import { expectTokenInvalid, wireCodeOf } from '../helpers/token-checks.ts';
import { accessClaims, signToken } from '../helpers/token-forge.ts';

// RFC 9700 section 4.14.2: opaque refresh tokens rotate within a family; a spent one presented
// again revokes the family, successors and access tokens included, cached or not.

const config = (token: string) => ({ method: 'GET' as const, path: '/config', token });
// A compact JWT's jti holds its family (gateway/src/auth/token-id.ts).
const familyOf = (tokens: Tokens) => readJti(decodeJwt(tokens.accessToken).jti!)?.family;
const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

async function login(t: Test, device: DeviceClient, id: string, secret: Buffer): Promise<Tokens> {
  const { answer, tokens } = await device.login(id, secret);
  t.equal(answer.code, '2.01', `${id} logs in`);
  return tokens!;
}

async function refresh(t: Test, device: DeviceClient, refreshToken: Uint8Array, what: string): Promise<Tokens> {
  const { answer, tokens } = await device.refresh(refreshToken);
  t.equal(answer.code, '2.01', what);
  return tokens!;
}

t.test('a refresh token is 16 opaque bytes; the store keeps only its hash', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const first = await login(t, device, 'sensor-1', secret);
  t.ok(first.refreshToken instanceof Uint8Array, 'bytes, not a JWT');
  t.equal(first.refreshToken.length, REFRESH_TOKEN_BYTES);
  const next = await refresh(t, device, first.refreshToken, 'it refreshes');
  t.not(hex(next.refreshToken), hex(first.refreshToken), 'into a new refresh token');
  t.equal(hex(next.refreshToken).slice(0, 16), hex(first.refreshToken).slice(0, 16), 'of the same family (its first 8 bytes)');
  t.equal(familyOf(next), familyOf(first), 'and the access tokens name the family');
  await h.gateway.close();
  const files = (await readdir(h.stateDir, { recursive: true, withFileTypes: true })).filter((entry) => entry.isFile());
  const stateText = (await Promise.all(files.map((entry) => readFile(join(entry.parentPath, entry.name))))).map((b) => b.toString('latin1')).join('\n');
  t.ok(stateText.includes(familyOf(first) as string), 'precondition: the family is in the state');
  t.notOk(stateText.includes(Buffer.from(next.refreshToken).toString('base64url')), 'the state holds no refresh token');
  t.notOk(stateText.includes(hex(next.refreshToken)), 'in any spelling');
  t.notOk(stateText.includes(Buffer.from(next.refreshToken).toString('latin1')), 'nor as raw bytes');
});

t.test('a spent refresh token presented again revokes its family: successors and cached access tokens stop', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const otherSecret = await h.provision('sensor-2');
  const device = await h.device();
  const thief = await h.device();

  const first = await login(t, device, 'sensor-1', secret);
  const family = familyOf(first);
  t.type(family, 'string', 'a login starts a family');
  const next = await refresh(t, device, first.refreshToken, 'the device refreshes');
  t.equal(familyOf(next), family, 'the successor stays in the family');
  t.equal((await device.send(config(next.accessToken))).code, '2.05', 'the successor access token works (and is cached)');
  t.equal((await device.send(config(next.accessToken))).code, '2.05', 'again, from the cache');

  // Other families: a second login of the same device, and another device.
  const second = await login(t, device, 'sensor-1', secret);
  t.not(familyOf(second), family, 'another login, another family');
  const other = await login(t, device, 'sensor-2', otherSecret);

  const reused = await thief.refresh(first.refreshToken);
  expectTokenInvalid(t, reused.answer, 'the spent refresh token, presented again');
  expectTokenInvalid(t, (await device.refresh(next.refreshToken)).answer, 'the successor refresh token');
  expectTokenInvalid(t, await device.send(config(next.accessToken)), 'the successor access token, cached before');
  expectTokenInvalid(t, await device.send(config(first.accessToken)), 'the family\'s first access token');
  t.equal(h.backend.requests.length, 2, 'no revoked token reached the backend');

  t.equal((await device.send(config(second.accessToken))).code, '2.05', 'the device\'s other family still works');
  await refresh(t, device, second.refreshToken, 'and refreshes');
  t.equal((await device.send(config(other.accessToken))).code, '2.05', 'another device is not touched');
  await refresh(t, device, other.refreshToken, 'and refreshes');

  const warnings = h.logs.filter((line) => line.family !== undefined);
  t.equal(warnings.length, 1, 'one log line for the theft');
  t.match(warnings[0], { level: 40, deviceId: 'sensor-1', family, msg: /possible theft/ }, 'a warning with device and family');
  const logText = JSON.stringify(h.logs);
  const pieces = [first.accessToken, next.accessToken].flatMap((token) => [token, ...token.split('.').slice(1)])
    .concat([first.refreshToken, next.refreshToken].flatMap((bytes) => [hex(bytes), Buffer.from(bytes).toString('base64url')]));
  t.same(pieces.filter((piece) => logText.includes(piece)), [], 'no token, nor any part of one, in the logs');
  t.equal(await metricValue(h, 'coap_gateway_refresh_families_revoked_total'), 1, 'the revocation is counted');
  t.equal(await metricValue(h, 'coap_gateway_logins_total', { method: 'refresh', outcome: 'reused' }), 1, 'and the reuse');
  t.equal(await metricValue(h, 'coap_gateway_revocations_total', { kind: 'family' }), 1, 'a revocation of kind family');
  await h.assertStillServes(t);
});

t.test('a revoked family stays revoked when its spent tokens are presented again, and is logged once', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const first = await login(t, device, 'sensor-1', secret);
  const next = await refresh(t, device, first.refreshToken, 'refresh');
  expectTokenInvalid(t, (await device.refresh(first.refreshToken)).answer, 'reuse');
  for (const token of [first.refreshToken, next.refreshToken, first.refreshToken]) {
    expectTokenInvalid(t, (await device.refresh(token)).answer, 'a refresh token of the revoked family');
  }
  t.equal(h.logs.filter((line) => line.family !== undefined).length, 1, 'one theft, one warning');
  const fresh = await login(t, device, 'sensor-1', secret);
  t.equal((await device.send(config(fresh.accessToken))).code, '2.05', 'the device logs in again with its secret');
});

t.test('refresh tokens that are none of ours: 4.01 tokenInvalid, or 4.00 when key 5 is not even bytes', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const tokens = await login(t, device, 'sensor-1', secret);
  expectTokenInvalid(t, (await device.refresh(Buffer.alloc(REFRESH_TOKEN_BYTES))).answer, 'sixteen zero bytes (no such family)');
  expectTokenInvalid(t, (await device.refresh(Buffer.alloc(40, 1))).answer, '40 bytes');
  const record = (await h.gateway.store.devices.get('sensor-1'))!;
  // What a device that kept its refresh JWT from an earlier version sends.
  const legacy = await signToken(h.gateway.keystore.signingKey(),
    { ...accessClaims('sensor-1', h.clock.nowMs(), record.scopes.join(' '), DEFAULTS.refreshTtlSec), rid: recordIdOf(record) },
    { kid: h.gateway.keystore.signingKey().kid, typ: 'rt+jwt' });
  const legacyAnswer = await device.send({ method: 'POST', path: '/auth/refresh', body: new Map([[5, legacy]]) });
  expectTokenInvalid(t, legacyAnswer, 'a refresh JWT of an earlier version: log in again');
  const notBytes = await device.send({ method: 'POST', path: '/auth/refresh', body: new Map([[5, 42]]) });
  t.equal(notBytes.code, '4.00', 'a number: 4.00');
  t.equal(wireCodeOf(notBytes.body), WireError.badRequest);
  await refresh(t, device, tokens.refreshToken, 'the real one still refreshes: none of these named its family');
  t.equal(await metricValue(h, 'coap_gateway_refresh_families_revoked_total'), 0, 'and nothing was revoked');
  await h.assertStillServes(t);
});

t.test('a token of a live family that is not its current one revokes the family: only a holder of a token knows the family id', async (t) => {
  const h = await startHarness(t);
  const secret = await h.provision('sensor-1');
  const device = await h.device();
  const tokens = await login(t, device, 'sensor-1', secret);
  const next = await refresh(t, device, tokens.refreshToken, 'a refresh');
  const forged = Buffer.from(next.refreshToken);
  forged[15]! ^= 1;
  expectTokenInvalid(t, (await device.refresh(forged)).answer, 'the current token with its last byte changed');
  expectTokenInvalid(t, (await device.refresh(next.refreshToken)).answer, 'the family is revoked: the current token too');
  expectTokenInvalid(t, await device.send(config(next.accessToken)), 'and its access token');
  t.equal(await metricValue(h, 'coap_gateway_refresh_families_revoked_total'), 1, 'counted as a theft');
  t.equal((await device.login('sensor-1', secret)).answer.code, '2.01', 'the device logs in again');
});
