import t from 'tap';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, createLocalJWKSet, decodeJwt, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify, type JWK } from 'jose';
import { pino } from 'pino';
import { DeviceClient } from '../../device-sim/src/device-client.ts';
import { loadConfig } from '../../gateway/src/config/index.ts';
import { buildGateway } from '../../gateway/src/gateway.ts';
import { ErrorKey, WireError } from '../../gateway/src/wire/index.ts';
import { parsePrometheusText, sampleValue } from '../helpers/admin-prometheus.ts';
import { runCli, waitUntilPickedUp } from '../helpers/cli-run.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { forwardedClaims, jtiOf } from '../helpers/backend-jwt.ts';

// Short lifetimes so the harness clock can walk a key through its whole life: max lifetime 150 s.
const SHORT_TOKENS = { tokenTtl: 60, refreshTtl: 120, leeway: 30 };
const MAX_TOKEN_LIFETIME_SEC = 120 + 30;

/** A token the gateway would accept if it trusted `key`: right issuer, audience, typ and claims. */
async function signToken(key: Parameters<SignJWT['sign']>[0], header: Record<string, unknown>, sub: string, nowSec: number, ttlSec = 600) {
  return new SignJWT({ scope: 'telemetry:write config:read' })
    .setProtectedHeader({ typ: 'at+jwt', ...header } as never)
    .setIssuer('coap-gateway').setAudience('coap-gateway').setSubject(sub)
    .setIssuedAt(nowSec).setExpirationTime(nowSec + ttlSec).setJti(randomBytes(9).toString('base64url'))
    .sign(key);
}

const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const wireCode = (body: unknown) => (body as Map<number, unknown> | undefined)?.get(ErrorKey.code);

async function loggedIn(h: Harness, id: string) {
  const secret = await h.provision(id);
  const device = await h.device();
  const { tokens } = await device.login(id, secret);
  return { device, secret, token: tokens!.accessToken, refreshToken: tokens!.refreshToken };
}

t.test('rotation by the CLI under traffic from 5 devices: zero failed requests, new logins get the new kid', async (t) => {
  const h = await startHarness(t, { config: SHORT_TOKENS });
  const oldKid = h.gateway.keystore.signingKey().kid;
  const fleet = await Promise.all([0, 1, 2, 3, 4].map(async (i) => ({ id: `dev-${i}`, secret: await h.provision(`dev-${i}`), client: await h.device() })));
  const failures: string[] = [];
  const logins: { kid: string | undefined; sentAfterPickup: boolean }[] = [];
  let oldKidAcceptedAfterPickup = 0;
  const oldTokens: string[] = [];
  let done = 0;
  let pickedUp = false;
  let stop = false;
  const MAX_REQUESTS = 20_000; // a bound, so a stuck milestone cannot loop forever
  const waiters: { count: number; resolve: () => void }[] = [];
  const progressed = () => {
    done += 1;
    for (const w of waiters.filter((w) => done >= w.count || stop)) w.resolve();
  };
  const reached = (count: number) => new Promise<void>((resolve) => {
    if (done >= count || stop) resolve();
    else waiters.push({ count, resolve });
  });
  const traffic = Promise.all(fleet.map(async ({ id, secret, client }, i) => {
    let token = '';
    for (let n = 0; !stop && done < MAX_REQUESTS; n += 1) {
      try {
        if (n % 4 === 0) {
          const sentAfterPickup = pickedUp;
          const login = await client.login(id, secret);
          if (login.answer.code !== '2.01') failures.push(`${id} login: ${login.answer.code}`);
          token = login.tokens?.accessToken ?? token;
          if (kidOf(token) === oldKid) oldTokens.push(token);
          logins.push({ kid: kidOf(token), sentAfterPickup });
        }
        const sentAfterPickup = pickedUp;
        const res = await client.send({ method: 'POST', path: `/telemetry/t${i}`, body: { n }, token });
        if (res.code !== '2.01') failures.push(`${id} request ${n}: ${res.code}`);
        else if (sentAfterPickup && kidOf(token) === oldKid) oldKidAcceptedAfterPickup += 1;
      } catch (err) {
        failures.push(`${id}: ${(err as Error).message}`);
      }
      progressed();
    }
  })).finally(() => {
    stop = true;
    for (const w of waiters) w.resolve();
  });

  await reached(60);
  const cli = await runCli(['keys', 'rotate', '--state', h.stateDir]);
  t.equal(cli.code, 0, `keys rotate exits 0 (${cli.stderr.trim()})`);
  const newKid = cli.stdout.trim();
  t.match(newKid, /^[0-9a-f]{8}$/, 'prints the new kid (8 hex characters)');
  const pickupMs = await waitUntilPickedUp(() => h.gateway.keystore.signingKey().kid === newKid, join(h.stateDir, 'keys'))
    .catch((err: Error) => { t.fail(err.message); return -1; });
  pickedUp = true;
  t.comment(`the running gateway picked the CLI's rotation up ${pickupMs} ms after the CLI exited`);
  await reached(done + 100);
  stop = true;
  await traffic;

  t.same(failures, [], 'no failed login or request across the rotation');
  t.ok(done >= 160 && done < MAX_REQUESTS, `${done} requests made`);
  t.ok(logins.some((l) => !l.sentAfterPickup && l.kid === oldKid), 'logins before the rotation got the old kid');
  const after = logins.filter((l) => l.sentAfterPickup);
  t.ok(after.length >= 5, `${after.length} logins after the pickup`);
  t.same([...new Set(after.map((l) => l.kid))], [newKid], 'every login after the pickup got the new kid');
  t.comment(`${oldKidAcceptedAfterPickup} requests with old-kid tokens were accepted after the pickup`);
  const oldTokenNow = await fleet[0]!.client.send({ method: 'POST', path: '/telemetry/t0', body: { n: -1 }, token: oldTokens[0]! });
  t.equal(oldTokenNow.code, '2.01', 'a token signed before the rotation is still accepted after it');
  t.equal(h.backend.requests.length, done + 1, 'every request reached the backend once');
});

t.test('old-kid tokens verify until expiry plus leeway, then are refused; the key retires and its private key goes', async (t) => {
  const h = await startHarness(t, { config: SHORT_TOKENS });
  const oldKid = h.gateway.keystore.signingKey().kid;
  const { device, token: oldToken, refreshToken: oldRefresh } = await loggedIn(h, 'dev-1');
  t.equal(kidOf(oldToken), oldKid);
  // Signed by the old key but valid for an hour: only the key's retirement can refuse it.
  const oldPrivate = JSON.parse(await readFile(join(h.stateDir, 'keys', `${oldKid}.private.json`), 'utf8')) as JWK;
  const longLived = await signToken(await importJWK(oldPrivate, 'ES256'), { alg: 'ES256', kid: oldKid }, 'dev-1',
    Math.floor(h.clock.nowMs() / 1000), 3600);

  const created = await h.gateway.keystore.rotate('ES256');
  const { token: newToken } = await loggedIn(h, 'dev-2');
  t.equal(kidOf(newToken), created.kid, 'a login after the rotation gets the new kid');
  for (const [name, token] of [['old', oldToken], ['new', newToken], ['long-lived old-key', longLived]]) {
    t.equal((await device.send({ path: '/config', token })).code, '2.05', `${name} token accepted after the rotation`);
  }

  // Move the clock relative to the token's own exp, so the fraction of a second it was issued at does not matter.
  const exp = decodeJwt(oldToken).exp!;
  const moveTo = (ms: number) => h.clock.advanceSec((ms - h.clock.nowMs()) / 1000);
  moveTo((exp + 29) * 1000);
  t.equal((await device.send({ path: '/config', token: oldToken })).code, '2.05', 'expired 29 s ago: within the 30 s leeway');
  const refreshed = await device.refresh(oldRefresh);
  t.equal(refreshed.answer.code, '2.01', 'the old key\'s refresh token still verifies');
  t.equal(kidOf(refreshed.tokens!.accessToken), created.kid, 'and the refresh signs with the new key');
  moveTo((exp + 31) * 1000);
  const expired = await device.send({ path: '/config', token: oldToken });
  t.equal(expired.code, '4.01', 'expired 31 s ago: refused');
  t.equal(wireCode(expired.body), WireError.tokenExpired);
  t.equal((await device.send({ path: '/config', token: longLived })).code, '2.05', 'the old key still verifies');

  const verifyUntil = Date.parse(h.gateway.keystore.list().find((k) => k.kid === oldKid)!.verifyUntil!);
  t.equal(verifyUntil, Date.parse(created.createdAt) + MAX_TOKEN_LIFETIME_SEC * 1000, 'verifying until rotation + max token lifetime');
  moveTo(verifyUntil + 1000);
  const refused = await device.send({ path: '/config', token: longLived });
  t.equal(refused.code, '4.01', 'past verifyUntil the old key verifies nothing, even a cached token');
  t.equal(wireCode(refused.body), WireError.tokenInvalid);
  await h.gateway.retireExpiredKeys(); // the gateway's one-second maintenance may have done it already
  t.equal(h.gateway.keystore.list().find((k) => k.kid === oldKid)?.state, 'retired');
  t.notOk(existsSync(join(h.stateDir, 'keys', `${oldKid}.private.json`)), 'retired key\'s private file deleted');
  t.ok(existsSync(join(h.stateDir, 'keys', `${created.kid}.private.json`)), 'active private file kept');
  t.same(h.gateway.keystore.jwks().keys.map((k) => k.kid), [created.kid], 'JWKS lists only the active key');
  await h.assertStillServes(t);
});

t.test('`keys retire <kid>` of a verifying key: the running gateway refuses its tokens from then on', async (t) => {
  const h = await startHarness(t, { config: SHORT_TOKENS });
  const keysDir = join(h.stateDir, 'keys');
  const oldKid = h.gateway.keystore.signingKey().kid;
  const { device, token } = await loggedIn(h, 'dev-1');
  t.equal((await device.send({ path: '/config', token })).code, '2.05', 'accepted (and now cached)');

  const rotate = await runCli(['keys', 'rotate', '--state', h.stateDir]);
  t.equal(rotate.code, 0);
  const newKid = rotate.stdout.trim();
  const rotateMs = await waitUntilPickedUp(() => h.gateway.keystore.signingKey().kid === newKid, keysDir);
  t.equal((await device.send({ path: '/config', token })).code, '2.05', 'still verifying after the rotation');

  const retire = await runCli(['keys', 'retire', oldKid, '--state', h.stateDir]);
  t.equal(retire.code, 0, `keys retire exits 0 (${retire.stderr.trim()})`);
  const retireMs = await waitUntilPickedUp(
    () => h.gateway.keystore.list().find((k) => k.kid === oldKid)?.state === 'retired', keysDir);
  t.comment(`picked up: rotation ${rotateMs} ms, retirement ${retireMs} ms after the CLI exited`);
  const refused = await device.send({ path: '/config', token });
  t.equal(refused.code, '4.01', 'a retired key\'s token is refused at once');
  t.equal(wireCode(refused.body), WireError.tokenInvalid);
  t.notOk(existsSync(join(keysDir, `${oldKid}.private.json`)), 'its private key file is gone');
  const { token: fresh } = await loggedIn(h, 'dev-2');
  t.equal(kidOf(fresh), newKid);
  t.equal((await device.send({ path: '/config', token: fresh })).code, '2.05');
});

t.test('unknown kids: 4.01, no crash, and at most one keystore reload per second', async (t) => {
  const h = await startHarness(t);
  await h.provision('dev-1');
  const { privateKey } = await generateKeyPair('ES256');
  const nowSec = Math.floor(h.clock.nowMs() / 1000);
  const tokens = await Promise.all(Array.from({ length: 30 }, (_, i) => {
    const header = i === 0 ? { alg: 'ES256' } : i === 1 ? { alg: 'ES256', kid: 42 } : { alg: 'ES256', kid: randomBytes(i === 2 ? 150 : 8).toString('hex') };
    return signToken(privateKey, header, 'dev-1', nowSec);
  }));
  const reloads = async () => sampleValue(parsePrometheusText(await h.gateway.metrics.text()), 'coap_gateway_key_reloads_total', { cause: 'unknown_kid' }) ?? 0;
  t.equal(await reloads(), 0);
  const devices = await Promise.all([0, 1, 2].map(() => h.device()));
  const startedMs = performance.now();
  // A burst of 10 at once, then 20 one after another (each after the previous reload has finished).
  const answers = await Promise.all(tokens.slice(0, 10).map((token, i) => devices[i % 3]!.send({ path: '/config', token })));
  for (const [i, token] of tokens.slice(10).entries()) answers.push(await devices[i % 3]!.send({ path: '/config', token }));
  const elapsedMs = performance.now() - startedMs;
  t.same([...new Set(answers.map((a) => a.code))], ['4.01'], 'all 30 refused with 4.01');
  const count = await reloads();
  t.ok(count >= 1 && count <= 1 + Math.floor(elapsedMs / 1000), `${count} reload(s) for 30 unknown kids in ${Math.round(elapsedMs)} ms`);
  h.clock.advanceSec(5);
  const late = await devices[0]!.send({ path: '/config', token: tokens[5]! });
  t.equal(late.code, '4.01');
  t.equal(await reloads(), count + 1, 'after the cooldown, one more reload');
  t.equal(h.backend.requests.length, 0, 'nothing reached the backend');
  await h.assertStillServes(t);
});

t.test('EdDSA: rotate to Ed25519, log in, the token is EdDSA and accepted; backends verify it from the JWKS', async (t) => {
  const h = await startHarness(t);
  const { device, token: es256Token } = await loggedIn(h, 'dev-1');
  const created = await h.gateway.keystore.rotate('EdDSA');
  const { token } = await loggedIn(h, 'dev-2');
  t.match(decodeProtectedHeader(token), { alg: 'EdDSA', kid: created.kid, typ: 'at+jwt' });
  t.equal((await device.send({ path: '/config', token })).code, '2.05', 'EdDSA token accepted');
  t.equal((await device.send({ path: '/config', token: es256Token })).code, '2.05', 'the ES256 token still is');
  t.same([...h.gateway.keystore.algorithms()].sort(), ['ES256', 'EdDSA']);
  const forwarded = h.backend.requests.find((r) => r.headers['x-device-id'] === 'dev-2');
  t.equal((await forwardedClaims(h, forwarded)).jti, jtiOf(token), 'the backend got a JWT of this token');
  const jwt = forwarded!.headers.authorization!.replace(/^Bearer /, '');
  const { protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(h.gateway.keystore.jwks() as never),
    { issuer: 'coap-gateway', audience: 'coap-gateway', currentDate: new Date(h.clock.nowMs()) });
  t.equal(protectedHeader.alg, 'EdDSA', 'a backend verifies the forwarded token with the JWKS');
});

t.test('the verifier accepts only algorithms of keys in the keystore: EdDSA (ES256-only keystore), none, HS256 refused', async (t) => {
  const h = await startHarness(t);
  await h.provision('dev-1');
  const device = await h.device();
  const kid = h.gateway.keystore.signingKey().kid;
  const nowSec = Math.floor(h.clock.nowMs() / 1000);
  const { privateKey: ed } = await generateKeyPair('EdDSA');
  const publicJwk = h.gateway.keystore.list()[0]!.publicJwk;
  const unsigned = (await signToken(ed, { alg: 'EdDSA', kid }, 'dev-1', nowSec)).split('.');
  const noneHeader = Buffer.from(JSON.stringify({ alg: 'none', kid, typ: 'at+jwt' })).toString('base64url');
  const forged: [string, string][] = [
    ['EdDSA with the active kid', await signToken(ed, { alg: 'EdDSA', kid }, 'dev-1', nowSec)],
    ['EdDSA with an unknown kid', await signToken(ed, { alg: 'EdDSA', kid: 'foreign' }, 'dev-1', nowSec)],
    ['alg none', `${noneHeader}.${unsigned[1]}.`],
    ['HS256 keyed with the public key', await signToken(new TextEncoder().encode(JSON.stringify(publicJwk)), { alg: 'HS256', kid }, 'dev-1', nowSec)],
  ];
  for (const [name, token] of forged) {
    const answer = await device.send({ path: '/config', token });
    t.equal(answer.code, '4.01', name);
  }
  t.equal(h.backend.requests.length, 0, 'nothing reached the backend');
  await h.assertStillServes(t);
});

t.test('a restarted gateway on the same state directory verifies tokens issued before, with the same key', async (t) => {
  const h = await startHarness(t);
  const { token } = await loggedIn(h, 'dev-1');
  const config = loadConfig({}, { coapHost: '127.0.0.1', coapPort: 0, backend: h.backend.url, state: h.stateDir });
  const second = await buildGateway(config, { logger: pino({ level: 'silent' }), nowMs: h.clock.nowMs });
  await second.start();
  const client = await DeviceClient.open('127.0.0.1', second.address().port);
  t.teardown(async () => {
    await client.close();
    await second.close();
  });
  t.equal(second.keystore.signingKey().kid, h.gateway.keystore.signingKey().kid, 'no new key made on restart');
  t.equal(second.keystore.list().length, 1);
  t.equal((await client.send({ path: '/config', token })).code, '2.05', 'the earlier token verifies on the new instance');
});
