import t, { type Test } from 'tap';
import { createVerificationBudget, type BudgetKind } from '../../gateway/src/auth/index.ts';
import { AuthError, type GatewayErrorCode } from '../../gateway/src/errors.ts';
import { boundClaims, randomSignature, signToken } from '../helpers/token-forge.ts';
import { verifierFixture, type VerifierFixture } from '../helpers/verifier-fixture.ts';

const AT = 'at+jwt';
const BUDGET = 5;

async function codeOf(verify: Promise<unknown>): Promise<GatewayErrorCode | 'ok'> {
  try {
    await verify;
    return 'ok';
  } catch (err) {
    if (!(err instanceof AuthError)) throw err;
    return err.code;
  }
}

async function budgetFixture(t: Test) {
  const exceeded: BudgetKind[] = [];
  const f = await verifierFixture(t, { forgedTokensPerMinute: BUDGET, onBudgetExceeded: (kind) => exceeded.push(kind) });
  return { f, exceeded };
}

/** A token of the real key, bound to the record: good, and each a new one (its own jti). */
async function goodToken(f: VerifierFixture, id: string): Promise<string> {
  const key = f.keystore.signingKey();
  return signToken(key, boundClaims(id, (await f.store.devices.get(id))!.recordId!, f.clock.nowMs()), { kid: key.kid });
}

/** Lands the clock a second into a fresh one-minute window, so a test's requests never straddle two. */
function startOfWindow(f: VerifierFixture): void {
  f.clock.advanceSec((60_000 - (f.clock.nowMs() % 60_000) + 1000) / 1000);
}

t.test('forged signatures from one address: 4.29 past the budget, with no signature check, until the window ends', async (t) => {
  const { f, exceeded } = await budgetFixture(t);
  await f.provision('victim');
  await f.provision('bystander');
  startOfWindow(f);
  const attacker = { address: '192.0.2.7' };
  const cached = await goodToken(f, 'victim');
  t.equal(await codeOf(f.verify(cached, AT, true, attacker)), 'ok', 'a good token from that address, verified before the flood (now cached)');
  const checksBefore = f.signatureChecks();

  const codes: string[] = [];
  let maxAgeSec: number | undefined;
  for (let i = 0; i < 4 * BUDGET; i += 1) {
    try {
      await f.verify(randomSignature(await goodToken(f, 'victim')), AT, true, attacker);
      codes.push('ok');
    } catch (err) {
      codes.push((err as AuthError).code);
      maxAgeSec ??= (err as AuthError).maxAgeSec;
    }
  }
  t.same(codes.slice(0, BUDGET), Array(BUDGET).fill('GW_ERR_AUTH_TOKEN_INVALID'), `the first ${BUDGET} are checked and refused`);
  t.same(codes.slice(BUDGET), Array(3 * BUDGET).fill('GW_ERR_TOO_MANY_REQUESTS'), 'the rest get 4.29');
  t.equal(f.signatureChecks() - checksBefore, BUDGET, `${BUDGET} signature checks for ${4 * BUDGET} forgeries`);
  t.same(exceeded, Array(3 * BUDGET).fill('address'), 'onBudgetExceeded names the address');
  t.ok(f.outcomes.filter((o) => o === 'rate_limited').length === 3 * BUDGET, 'counted as rate_limited');

  t.equal(await codeOf(f.verify(cached, AT, true, attacker)), 'ok', 'the cached token from the same address keeps working');
  t.equal(await codeOf(f.verify(await goodToken(f, 'bystander'), AT, true, { address: '198.51.100.1' })), 'ok',
    'a new token of another device from another address is verified as usual');

  f.clock.advanceSec(30);
  const refused = await f.verify(randomSignature(await goodToken(f, 'bystander')), AT, true, attacker).catch((err: AuthError) => err);
  t.equal((refused as AuthError).code, 'GW_ERR_TOO_MANY_REQUESTS', 'half a minute later, still spent');
  t.ok(maxAgeSec !== undefined && maxAgeSec >= 58 && maxAgeSec <= 60, `Max-Age at the start of the window: ${maxAgeSec} s`);
  const laterAge = (refused as AuthError).maxAgeSec ?? -1;
  t.ok(laterAge >= 28 && laterAge <= 30, `Max-Age half a minute in: ${laterAge} s, until the window ends`);
  f.clock.advanceSec(laterAge);
  t.equal(await codeOf(f.verify(randomSignature(await goodToken(f, 'bystander')), AT, true, attacker)), 'GW_ERR_AUTH_TOKEN_INVALID',
    'once the window has ended, the next forgery is checked again');
});

t.test('forgeries naming one device from many addresses: that device\'s new tokens wait, its cached and logged-in tokens do not', async (t) => {
  const { f, exceeded } = await budgetFixture(t);
  const victim = await f.provision('victim');
  await f.provision('bystander');
  startOfWindow(f);
  const before = await goodToken(f, 'victim');
  t.equal(await codeOf(f.verify(before, AT, true, { address: '198.51.100.1' })), 'ok', 'the victim\'s token, verified before (cached)');

  const codes: string[] = [];
  for (let i = 0; i < 3 * BUDGET; i += 1) {
    codes.push(await codeOf(f.verify(randomSignature(await goodToken(f, 'victim')), AT, true, { address: `203.0.113.${i}` })));
  }
  t.same(codes, [...Array(BUDGET).fill('GW_ERR_AUTH_TOKEN_INVALID'), ...Array(2 * BUDGET).fill('GW_ERR_TOO_MANY_REQUESTS')],
    'each address is new, the device is not: 4.29 past the device\'s budget');
  t.same([...new Set(exceeded)], ['device'], 'onBudgetExceeded names the device');

  t.equal(await codeOf(f.verify(before, AT, true, { address: '198.51.100.1' })), 'ok', 'its cached token keeps working');
  // A login puts the new token in the cache (auth-resource's `remember`): never refused by the budget.
  const login = await f.issuer.issue({ id: 'victim', scopes: victim.scopes, recordId: victim.recordId! });
  f.verify.remember(login.accessToken, AT, login.accessClaims);
  t.equal(await codeOf(f.verify(login.accessToken, AT, true, { address: '198.51.100.1' })), 'ok', 'a token from a new login works at once');
  t.equal(await codeOf(f.verify(await goodToken(f, 'victim'), AT, true, { address: '198.51.100.1' })), 'ok',
    'a good token this gateway has not seen, from the address the device proved itself from: only that address\'s budget applies');
  t.equal(await codeOf(f.verify(await goodToken(f, 'victim'), AT, true, { address: '192.0.2.9' })), 'GW_ERR_TOO_MANY_REQUESTS',
    'the limit that remains: from an address it never proved itself from, it waits for the window (documented)');
  t.equal(await codeOf(f.verify(await goodToken(f, 'bystander'), AT, true, { address: '203.0.113.1' })), 'ok',
    'another device is unaffected, even from an attacking address under its own budget');
});

t.test('only failed signature checks count: refusals that cost nothing never spend the budget', async (t) => {
  const { f, exceeded } = await budgetFixture(t);
  await f.provision('victim');
  startOfWindow(f);
  const key = f.keystore.signingKey();
  const nowMs = f.clock.nowMs();
  const recordId = (await f.store.devices.get('victim'))!.recordId!;
  const cheap = [
    await signToken(key, boundClaims('victim', recordId, nowMs - 7200_000), { kid: key.kid }), // expired
    await signToken(key, boundClaims('nobody', recordId, nowMs), { kid: key.kid }), // no such device
    await signToken(key, boundClaims('victim', 'another-record', nowMs), { kid: key.kid }), // an earlier record
    await signToken(key, boundClaims('victim', recordId, nowMs), { kid: key.kid, typ: 'JWT' }), // wrong typ
  ];
  for (let i = 0; i < 10 * BUDGET; i += 1) {
    const code = await codeOf(f.verify(cheap[i % cheap.length]!, AT, true, { address: '192.0.2.9' }));
    if (code === 'GW_ERR_TOO_MANY_REQUESTS') t.fail(`request ${i} got 4.29`);
  }
  // The view holds no device yet, and deciding "no such device" or "an earlier record" needs the
  // store: a token pays that only once authenticated, so the first of each costs one (successful)
  // signature check, and the view answers every later one from memory.
  t.equal(f.signatureChecks(), 2, 'one signature check for each of the two devices the view could not yet answer for, none after');
  t.same(exceeded, [], 'no budget spent');
  const checksAfter = f.signatureChecks();
  for (const token of cheap) t.not(await codeOf(f.verify(token, AT, true, { address: '192.0.2.10' })), 'ok');
  t.equal(f.signatureChecks(), checksAfter, 'from a new address too: every one refused from memory');
  t.equal(await codeOf(f.verify(await goodToken(f, 'victim'), AT, true, { address: '192.0.2.9' })), 'ok', 'a good token from there still verifies');
});

t.test('IPv6: one /64 is one source', async (t) => {
  const { f } = await budgetFixture(t);
  const devices = await Promise.all(Array.from({ length: 3 * BUDGET }, (_, i) => f.provision(`d${i}`)));
  startOfWindow(f);
  const codes: string[] = [];
  for (const [i, { id }] of devices.entries()) {
    // A different device each time (no device budget in play), a different address in one /64.
    codes.push(await codeOf(f.verify(randomSignature(await goodToken(f, id)), AT, true, { address: `2001:db8:1:2:${i.toString(16)}::1` })));
  }
  t.equal(codes.filter((c) => c === 'GW_ERR_TOO_MANY_REQUESTS').length, 2 * BUDGET, 'past the budget of the /64, 4.29');
  t.equal(await codeOf(f.verify(await goodToken(f, 'd0'), AT, true, { address: '2001:db8:1:3::1' })), 'ok', 'the next /64 is another source');
  t.equal(await codeOf(f.verify(await goodToken(f, 'd0'), AT, true, { address: '2001:db8:1:2::99' })), 'GW_ERR_TOO_MANY_REQUESTS',
    'any address of the spent /64 waits');
});

t.test('a burst: checks in flight count, so no more than the budget are ever made', async (t) => {
  const { f } = await budgetFixture(t);
  await f.provision('victim');
  startOfWindow(f);
  const forgeries = await Promise.all(Array.from({ length: 6 * BUDGET }, async () => randomSignature(await goodToken(f, 'victim'))));
  const codes = await Promise.all(forgeries.map((token) => codeOf(f.verify(token, AT, true, { address: '192.0.2.44' }))));
  t.equal(codes.filter((c) => c === 'GW_ERR_AUTH_TOKEN_INVALID').length, BUDGET, `${BUDGET} checked`);
  t.equal(codes.filter((c) => c === 'GW_ERR_TOO_MANY_REQUESTS').length, 5 * BUDGET, 'the rest refused unchecked');
  t.equal(f.signatureChecks(), BUDGET, `${BUDGET} signature checks, all ${6 * BUDGET} sent at once`);
  // Behind one NAT, many devices with tokens this gateway has not seen (it restarted): more at once than the budget.
  const fleet = await Promise.all(Array.from({ length: 6 * BUDGET }, (_, i) => f.provision(`nat-${i}`)));
  const nat = { address: '198.51.100.2' };
  const good = await Promise.all(fleet.map((d) => goodToken(f, d.id)));
  t.same([...new Set(await Promise.all(good.map((token) => codeOf(f.verify(token, AT, true, nat)))))], ['ok'],
    `${good.length} good tokens from one address at once: every one verifies (in turns of at most ${BUDGET})`);
});

t.test('the budget table is bounded: past maxSources the least recently failed source is forgotten', async (t) => {
  let evicted = 0;
  const nowMs = () => 120_000;
  const budget = createVerificationBudget({ failuresPerMinute: 1, nowMs, maxSources: 3, onEvicted: () => { evicted += 1; } });
  const fail = async (address: string | undefined, device: string) => {
    const reservation = await budget.reserve(address, device);
    if (reservation.granted) reservation.settle(true);
    return reservation;
  };
  for (let i = 1; i <= 5; i += 1) t.match(await fail(`192.0.2.${i}`, `device-${i}`), { granted: true }, `source ${i}: its one check`);
  t.equal(evicted, 2, 'two sources forgotten');
  t.match(await fail('192.0.2.1', 'device-x'), { granted: true }, 'the oldest is forgiven (it can only be let through, never locked out)');
  t.match(await budget.reserve('192.0.2.5', 'device-y'), { granted: false, exceeded: { kind: 'address' } }, 'the newest is still counted');
  t.match(await budget.reserve(undefined, 'device-2'), { granted: false, exceeded: { kind: 'device' } }, 'devices are counted without a source');
  t.match(await budget.reserve('192.0.2.77', 'device-2'), { granted: false, exceeded: { kind: 'device' } }, 'whatever the source');
  t.match(await fail('192.0.2.77', 'device-z'), { granted: true }, 'and a refusal for the device did not count against that source');
  const good = await budget.reserve('192.0.2.78', 'device-w');
  t.match(good, { granted: true });
  if (good.granted) good.settle(false);
  t.match(await budget.reserve('192.0.2.78', 'device-w'), { granted: true }, 'a check that did not fail spent nothing');
  t.throws(() => createVerificationBudget({ failuresPerMinute: 0, nowMs }), TypeError, 'a budget of 0 is a programming error');
});
