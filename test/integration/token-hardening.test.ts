import { randomBytes } from 'node:crypto';
import type { ParsedPacket } from 'coap-packet';
import { decodeJwt } from 'jose';
import t, { type Test } from 'tap';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { ErrorKey, WireError, decodeCbor } from '../../gateway/src/wire/index.ts';
import { isAnswerTo, rawRequest, uintOption } from '../helpers/bridge-raw-coap.ts';
import { metricValue } from '../helpers/coap-wire.ts';
import { startHarness, type Harness } from '../helpers/harness.ts';
import { expectRefused } from '../helpers/token-checks.ts';
import { boundClaims, nonCanonical, signToken } from '../helpers/token-forge.ts';
import { UdpProbe } from '../helpers/udp-probe.ts';

// Hostile tokens against the real gateway over UDP: forged algorithms, oversized fields, replays.

const BUDGET = DEFAULTS.forgedTokensPerMinute;
const invalid = { code: '4.01', wire: WireError.tokenInvalid };
const VERIFICATIONS = 'coap_gateway_token_verifications_total';
const config = (token: string) => ({ method: 'GET' as const, path: '/config', token });

async function loggedIn(t: Test, h: Harness, id: string) {
  const secret = await h.provision(id);
  const device = await h.device();
  const { answer, tokens } = await device.login(id, secret);
  t.equal(answer.code, '2.01', `${id} logs in`);
  return { device, secret, tokens: tokens! };
}

/** Signature checks the gateway made: verifications that passed every early check. */
async function signatureChecks(h: Harness): Promise<number> {
  return (await metricValue(h, VERIFICATIONS, { outcome: 'ok' })) + (await metricValue(h, VERIFICATIONS, { outcome: 'invalid' }));
}

/** A forgery as a flood sends it: the gateway's real kid, good claims naming `sub`, its own jti, 64 random bytes of signature. */
async function forgery(h: Harness, sub: string): Promise<string> {
  const header = { alg: 'ES256', typ: 'at+jwt', kid: h.gateway.keystore.signingKey().kid };
  const claims = boundClaims(sub, (await h.gateway.store.devices.get(sub))!.recordId!, h.clock.nowMs());
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part(header)}.${part(claims)}.${randomBytes(64).toString('base64url')}`;
}

/** Sends each token as a confirmable GET /config from `probe` (all at once) and collects the answers. */
async function sendAll(probe: UdpProbe, tokens: readonly string[], firstId: number): Promise<ParsedPacket[]> {
  const coapTokens = tokens.map((_, i) => Buffer.from((firstId + i).toString(16).padStart(8, '0'), 'hex'));
  await Promise.all(tokens.map((accessToken, i) =>
    probe.send(rawRequest({ path: ['config'], messageId: (firstId + i) & 0xffff, token: coapTokens[i]!, accessToken }))));
  return Promise.all(coapTokens.map((token, i) => probe.next(isAnswerTo(token), `answer to forgery ${firstId + i}`)));
}

/** Lands the gateway's clock a second into a fresh one-minute budget window, so a test's floods never straddle two. */
function startOfWindow(h: Harness): void {
  h.clock.advanceSec((60_000 - (h.clock.nowMs() % 60_000) + 1000) / 1000);
}

const wireOf = (p: ParsedPacket) => (p.payload.length > 0 ? (decodeCbor(p.payload) as Map<number, unknown>).get(ErrorKey.code) : undefined);

t.test('iat an hour in the future: 4.01, wire code 5 (jose alone checks iat only against a maximum age)', async (t) => {
  const h = await startHarness(t);
  const { device } = await loggedIn(t, h, 'sensor-1');
  const key = h.gateway.keystore.signingKey();
  const rid = (await h.gateway.store.devices.get('sensor-1'))!.recordId!;
  const nowSec = Math.floor(h.clock.nowMs() / 1000);
  const ahead = (sec: number) => signToken(key, boundClaims('sensor-1', rid, h.clock.nowMs(), { iat: nowSec + sec, exp: nowSec + sec + 600 }), { kid: key.kid });
  t.equal((await device.send(config(await ahead(0)))).code, '2.05', 'control: the same token issued now');
  await expectRefused(t, h, device, config(await ahead(3600)), invalid, 'iat = now + 1 h');
  t.equal((await device.send(config(await ahead(20)))).code, '2.05', 'iat = now + 20 s: within the 30 s leeway');
  const line = h.logs.find((l) => l.msg === 'coap request' && l.code === '4.01');
  t.match(line?.reason, /iat .* ahead/, 'the log says why');
});

t.test('a device removed and added again within the same second: its old tokens are refused', async (t) => {
  const h = await startHarness(t);
  // Start at the top of a second, so that login, removal and the new record share it.
  h.clock.advanceSec((1000 - (h.clock.nowMs() % 1000)) / 1000);
  const { device, tokens: old } = await loggedIn(t, h, 'sensor-1');
  const oldRid = (await h.gateway.store.devices.get('sensor-1'))!.recordId!;
  t.equal((await device.send(config(old.accessToken))).code, '2.05', 'the old token works (and is cached)');
  t.equal(await h.gateway.store.devices.remove('sensor-1'), true);
  const fresh = await h.provision('sensor-1');
  const record = (await h.gateway.store.devices.get('sensor-1'))!;
  const createdSec = Math.floor(Date.parse(record.createdAt) / 1000);
  const iat = decodeJwt(old.accessToken).iat!;
  if (iat === createdSec) t.pass('login and the new record share one second: binding to the creation second could not refuse it');
  else t.comment(`the machine was slow (iat ${iat}, record ${createdSec}): the forged check below still covers the same second`);
  t.not(record.recordId, oldRid, 'a new record id');
  await expectRefused(t, h, device, config(old.accessToken), invalid, 'the cached old access token');
  t.equal((await device.refresh(old.refreshToken)).answer.code, '4.01', 'the old refresh token');
  // Deterministic: a token of the old record issued in the new record's very second.
  const key = h.gateway.keystore.signingKey();
  const sameSecond = (rid: string) => signToken(key, boundClaims('sensor-1', rid, createdSec * 1000), { kid: key.kid });
  await expectRefused(t, h, device, config(await sameSecond(oldRid)), invalid, 'old rid, issued in the new record\'s second');
  t.equal((await device.send(config(await sameSecond(record.recordId!)))).code, '2.05', 'control: the new rid, the same second');
  const renewed = await device.login('sensor-1', fresh);
  t.equal(renewed.answer.code, '2.01');
  t.equal((await device.send(config(renewed.tokens!.accessToken))).code, '2.05', 'tokens of the new record work');
});

t.test('a non-canonical base64url spelling of a valid token: 4.01, and no signature check', async (t) => {
  const h = await startHarness(t);
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'the token as issued');
  const checks = await signatureChecks(h);
  const early = await metricValue(h, VERIFICATIONS, { outcome: 'rejected_early' });
  const spelling = nonCanonical(tokens.accessToken, 2);
  t.not(spelling, tokens.accessToken);
  t.same(Buffer.from(spelling.split('.')[2]!, 'base64url'), Buffer.from(tokens.accessToken.split('.')[2]!, 'base64url'),
    'the same signature bytes');
  const answer = await device.send(config(spelling));
  t.equal(answer.code, '4.01');
  t.equal((answer.body as Map<number, unknown>).get(ErrorKey.code), WireError.tokenInvalid, 'wire code 5');
  t.equal(await signatureChecks(h), checks, 'no signature check (coap_gateway_token_verifications_total ok + invalid)');
  t.equal(await metricValue(h, VERIFICATIONS, { outcome: 'rejected_early' }), early + 1, 'counted as rejected_early');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'the canonical token still works');
});

t.test(`a flood of ${15 * BUDGET} forged signatures from one address: 4.29 past ${BUDGET}, while a cached token on another address keeps getting 2.05`, async (t) => {
  const h = await startHarness(t);
  startOfWindow(h);
  await h.provision('victim');
  const { device, tokens } = await loggedIn(t, h, 'sensor-1');
  t.equal((await device.send(config(tokens.accessToken))).code, '2.05', 'the device\'s token, cached since its login');
  const attacker = await UdpProbe.open(t, { address: '127.0.0.1', port: h.port }, '127.0.0.2');
  const forged = await Promise.all(Array.from({ length: 15 * BUDGET }, () => forgery(h, 'victim')));
  const checksBefore = await signatureChecks(h);

  const answers: ParsedPacket[] = [];
  const legit: string[] = [];
  const ROUNDS = 10;
  const perRound = forged.length / ROUNDS;
  for (let round = 0; round < ROUNDS; round += 1) {
    // The device's request goes out in the middle of each burst.
    const [burst, mine] = await Promise.all([
      sendAll(attacker, forged.slice(round * perRound, (round + 1) * perRound), 0x1000 + round * perRound),
      device.send(config(tokens.accessToken)),
    ]);
    answers.push(...burst);
    legit.push(mine.code);
  }
  t.same(legit, Array(ROUNDS).fill('2.05'), `the device got 2.05 all ${ROUNDS} times during the flood`);
  const codes = answers.map((a) => a.code);
  t.equal(codes.filter((c) => c === '4.01').length, BUDGET, `${BUDGET} forgeries checked and refused with 4.01`);
  t.equal(codes.filter((c) => c === '4.29').length, forged.length - BUDGET, `the other ${forged.length - BUDGET} got 4.29`);
  const limited = answers.filter((a) => a.code === '4.29');
  t.same([...new Set(limited.map(wireOf))], [WireError.tooManyRequests], '4.29 with wire code tooManyRequests');
  const maxAges = limited.map((a) => uintOption(a, 'Max-Age'));
  t.ok(maxAges.every((s) => s !== undefined && s >= 1 && s <= 60), `Max-Age until the window frees: ${[...new Set(maxAges)].join(', ')} s`);
  t.equal(await signatureChecks(h) - checksBefore, BUDGET, `${BUDGET} signature checks for ${forged.length} forgeries`);
  t.equal(await metricValue(h, VERIFICATIONS, { outcome: 'rate_limited' }), forged.length - BUDGET, 'rate_limited counted');
  t.equal(h.backend.requests.filter((r) => r.headers['x-device-id'] === 'victim').length, 0, 'no forgery reached the backend');

  h.clock.advanceSec(60);
  const [late] = await sendAll(attacker, [await forgery(h, 'victim')], 0x3000);
  t.equal(late?.code, '4.01', 'in the next window the address gets its budget back (checked, refused)');
  const parts = forged.flatMap((token) => token.split('.').slice(1));
  t.notOk(h.logs.some((line) => parts.some((part) => JSON.stringify(line).includes(part))), 'no part of a forged token in the log');
  await h.assertStillServes(t);
});

t.test('forgeries naming a device, from several addresses, do not stop it logging in and using its new token', async (t) => {
  const h = await startHarness(t);
  startOfWindow(h);
  const secret = await h.provision('sensor-1');
  const probes = await Promise.all(['127.0.0.2', '127.0.0.3', '127.0.0.4'].map((address) =>
    UdpProbe.open(t, { address: '127.0.0.1', port: h.port }, address)));
  const codes: string[] = [];
  for (const [i, probe] of probes.entries()) {
    const burst = await sendAll(probe, await Promise.all(Array.from({ length: BUDGET }, () => forgery(h, 'sensor-1'))), 0x1000 + i * BUDGET);
    codes.push(...burst.map((a) => a.code));
  }
  t.equal(codes.filter((c) => c === '4.01').length, BUDGET, `${BUDGET} checked: the device's budget, though no address spent its own`);
  t.equal(codes.filter((c) => c === '4.29').length, 2 * BUDGET, 'the rest: 4.29');

  const device = await h.device();
  const login = await device.login('sensor-1', secret);
  t.equal(login.answer.code, '2.01', 'the device logs in (logins have budgets of their own)');
  t.equal((await device.send(config(login.tokens!.accessToken))).code, '2.05', 'and its new token works at once: the login put it in the cache');
  t.equal((await device.send(config(login.tokens!.accessToken))).code, '2.05', 'and keeps working');
  // Refresh tokens are never cached: from the address the device logged in from, they answer to
  // that address's budget only, not the device's, which the forgeries spent.
  const refreshed = await device.refresh(login.tokens!.refreshToken);
  t.equal(refreshed.answer.code, '2.01', 'the device refreshes from its own address despite the spent device budget');
  const forgedAgain = await sendAll(probes[0]!, [await forgery(h, 'sensor-1')], 0x2000);
  t.equal(forgedAgain[0]!.code, '4.29', 'a forgery from another address is still refused unchecked');
  await h.assertStillServes(t);
});
