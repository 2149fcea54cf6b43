import { randomBytes } from 'node:crypto';
import { SignJWT, calculateJwkThumbprint, decodeJwt, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import t, { type Test } from 'tap';
import type { DeviceClient } from '../../device-sim/src/device-client.ts';
import { generateSecret, hashSecret, newRecordId } from '../../gateway/src/auth/index.ts';
import { DEFAULTS, parseStoreSetting } from '../../gateway/src/config/index.ts';
import { openStore, type Store } from '../../gateway/src/store/index.ts';
import { AuthRequestKey, AuthResponseKey, decodeCbor } from '../../gateway/src/wire/index.ts';
import { startGatewayProcess, type GatewayProcess } from '../helpers/gateway-process.ts';
import { CHANGE_DEADLINE_MS, getConfig, untilAnswered } from '../helpers/fleet-changes.ts';
import { startRedis } from '../helpers/redis-server.ts';
import { tempDir } from '../helpers/store-fixtures.ts';

// Device keys, spent jtis, nonces, refresh families and revocations are shared state: two
// `gateway serve` processes on one real Redis must act as one gateway for each of them.

interface KeyedDevice { id: string; secret: Buffer; kid: string; privateKey: CryptoKey }

async function startFleet(t: Test) {
  const redis = await startRedis(t);
  const dir = await tempDir(t, 'gw-fleet-keys-');
  const store: Store = await openStore(parseStoreSetting(redis.url), { stateDir: dir });
  t.teardown(() => store.close());
  const devices: KeyedDevice[] = [];
  for (const id of ['keyed-1', 'keyed-2']) {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const publicJwk = await exportJWK(publicKey);
    const kid = await calculateJwkThumbprint(publicJwk);
    const secret = generateSecret();
    await store.devices.add([{
      id, secretHash: hashSecret(secret), keys: [{ kid, alg: 'ES256', publicJwk, addedAt: new Date().toISOString() }],
      scopes: ['telemetry:write', 'config:read'], createdAt: new Date().toISOString(), recordId: newRecordId(),
    }]);
    devices.push({ id, secret, kid, privateKey });
  }
  const gateways = await Promise.all([0, 1].map(() =>
    startGatewayProcess(t, { store: redis.url, provisioned: devices, config: { loginFailuresPerMinute: 1000 } })));
  return { store, gateways: gateways as [GatewayProcess, GatewayProcess], devices };
}

const assertion = (device: KeyedDevice, extra: Record<string, unknown> = {}, iatSec = Math.floor(Date.now() / 1000)) =>
  new SignJWT({ aud: DEFAULTS.audience, jti: randomBytes(12).toString('base64url'), ...extra })
    .setProtectedHeader({ alg: 'ES256', kid: device.kid }).setIssuedAt(iatSec).setExpirationTime(iatSec + 60).sign(device.privateKey);

const login = (client: DeviceClient, id: string, signed: string) =>
  client.send({ method: 'POST', path: '/auth', body: new Map<number, unknown>([[AuthRequestKey.deviceId, id], [AuthRequestKey.assertion, signed]]) });

t.test('on one Redis: an assertion spent at A is refused at B; a nonce from A is taken once, at B', async (t) => {
  const { gateways: [a, b], devices: [device] } = await startFleet(t);
  const [atA, atB] = [await a.client(), await b.client()];
  const signed = await assertion(device!);
  t.equal((await login(atA, device!.id, signed)).code, '2.01', 'A accepts the assertion');
  t.equal((await login(atB, device!.id, signed)).code, '4.01', 'B refuses it replayed: its jti is spent fleet-wide');

  const { nonce } = await atA.nonce();
  t.ok(nonce, 'A issues a nonce');
  const withNonce = await assertion(device!, { nonce: Buffer.from(nonce!.nonce).toString('base64url') }, 1000);
  t.equal((await login(atB, device!.id, withNonce)).code, '2.01', 'B accepts an assertion with A\'s nonce, whatever its iat');
  const again = await assertion(device!, { nonce: Buffer.from(nonce!.nonce).toString('base64url') }, 1000);
  t.equal((await login(atA, device!.id, again)).code, '4.01', 'and the nonce is gone at A too');
  await a.assertStillServes(t);
  await b.assertStillServes(t);
});

t.test('on one Redis: a refresh at B of A\'s token; its reuse at A revokes the family on B within 1 s; a revoked jti on both', async (t) => {
  const { store, gateways: [a, b], devices: [device, other] } = await startFleet(t);
  const [atA, atB] = [await a.client(), await b.client()];
  const first = (await atA.login(device!.id, device!.secret)).tokens!;
  const next = await atB.refresh(first.refreshToken);
  t.equal(next.answer.code, '2.01', 'B refreshes A\'s refresh token');
  t.equal((await getConfig(atB, next.tokens!.accessToken)).code, '2.05', 'B serves the new token (and caches it)');
  const reusedAt = Date.now();
  t.equal((await atA.refresh(first.refreshToken)).answer.code, '4.01', 'A refuses the spent one, revoking the family');
  const elapsed = await untilAnswered(atB, next.tokens!.accessToken, '4.01', reusedAt);
  t.ok(elapsed <= CHANGE_DEADLINE_MS, `B refuses the family's cached access token ${elapsed} ms after`);
  t.equal((await atB.refresh(next.tokens!.refreshToken)).answer.code, '4.01', 'and its current refresh token');

  const answer = await login(atA, other!.id, await assertion(other!));
  const token = (decodeCbor(answer.payload) as Map<number, string>).get(AuthResponseKey.accessToken)!;
  const otherToken = (await atB.login(other!.id, other!.secret)).tokens!.accessToken;
  t.equal((await getConfig(atB, token)).code, '2.05', 'B serves a token A issued after an assertion login');
  const nowSec = Math.floor(Date.now() / 1000);
  const revokedAt = Date.now();
  await store.revocations.revokeToken({ kind: 'token', jti: decodeJwt(token).jti!, atSec: nowSec, untilSec: nowSec + 3700 });
  for (const [name, client] of [['A', atA], ['B', atB]] as const) {
    const took = await untilAnswered(client, token, '4.01', revokedAt);
    t.ok(took <= CHANGE_DEADLINE_MS, `${name} refuses the revoked jti ${took} ms after`);
    t.equal((await getConfig(client, otherToken)).code, '2.05', `${name} still serves the device's other token`);
  }
});
