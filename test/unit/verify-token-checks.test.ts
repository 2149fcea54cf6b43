import { sign } from 'node:crypto';
import t, { type Test } from 'tap';
import { isCanonicalBase64url, MAX_TOKEN_CHARS, type TokenVerifier } from '../../gateway/src/auth/index.ts';
import { AuthError, type GatewayErrorCode } from '../../gateway/src/errors.ts';
import { seededRandom } from '../helpers/seeded-random.ts';
import { boundClaims, nonCanonical, signToken } from '../helpers/token-forge.ts';
import { LEEWAY_SEC, verifierFixture, type VerifierFixture } from '../helpers/verifier-fixture.ts';

const AT = 'at+jwt';
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The definition: only base64url characters, and decoding then encoding gives the same text. */
const canonicalByRoundTrip = (text: string) =>
  /^[A-Za-z0-9_-]*$/.test(text) && Buffer.from(text, 'base64url').toString('base64url') === text;

async function refusal(t: Test, verify: Promise<unknown>, code: GatewayErrorCode, what: string): Promise<AuthError | undefined> {
  try {
    await verify;
  } catch (err) {
    t.ok(err instanceof AuthError, `${what}: an AuthError`);
    t.equal((err as AuthError).code, code, `${what}: ${code}`);
    return err as AuthError;
  }
  t.fail(`${what}: accepted`);
  return undefined;
}

/** A token the gateway would accept, signed with its real key, with `changes` to its claims and header. */
async function signed(f: VerifierFixture, sub: string, rid: string, changes: Record<string, unknown> = {}, header: Record<string, unknown> = {}) {
  const key = f.keystore.signingKey();
  return signToken(key, boundClaims(sub, rid, f.clock.nowMs(), changes), { kid: key.kid, ...header });
}

/** Signed by hand with the gateway's key (jose will not sign a header it would not accept). */
function signedRaw(f: VerifierFixture, header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = sign('sha256', Buffer.from(input), { key: f.keystore.signingKey().privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

t.test('canonical base64url: the cheap check agrees with decode-and-encode', async (t) => {
  // Every string of up to 3 characters of the alphabet (the tail is all that matters), then random ones.
  let checked = 0;
  let disagreements = 0;
  const check = (text: string) => {
    checked += 1;
    if (isCanonicalBase64url(text) !== canonicalByRoundTrip(text)) disagreements += 1;
  };
  check('');
  for (const a of ALPHABET) {
    check(a);
    for (const b of ALPHABET) {
      check(a + b);
      for (const c of ALPHABET) check(a + b + c);
    }
  }
  const random = seededRandom(8);
  const chars = `${ALPHABET}=+/. \u00e9`;
  for (let i = 0; i < 20_000; i += 1) {
    check(Array.from({ length: random.int(12) }, () => random.pick([...chars])).join(''));
  }
  t.equal(disagreements, 0, `${checked} strings, seed ${random.seed}`);
  t.notOk(isCanonicalBase64url('QQ=='), 'padding');
  t.notOk(isCanonicalBase64url('a+b/'), 'base64 (not url) characters');
  t.notOk(isCanonicalBase64url('QR'), 'QR decodes to the byte of QQ: its last bits are not zero');
});

t.test('every non-canonical spelling of a good token is refused before any signature work, cached or not', async (t) => {
  const f = await verifierFixture(t);
  const device = await f.provision('sensor-1');
  const { accessToken } = await f.issuer.issue({ id: device.id, scopes: device.scopes, recordId: device.recordId! });
  t.equal((await f.verify(accessToken, AT)).sub, 'sensor-1', 'the token itself verifies (and is now cached)');
  const checksBefore = f.signatureChecks();
  const [header, payload, signature] = accessToken.split('.') as [string, string, string];
  const spellings: [string, string][] = [
    ['signature with its unused bits set', nonCanonical(accessToken, 2)],
    ['padding on the signature', `${header}.${payload}.${signature}==`],
    ['padding on the header', `${header}${'='.repeat((4 - (header.length % 4)) % 4 || 4)}.${payload}.${signature}`],
    ['a base64 (not url) character', `${header}.${payload}.${signature.slice(0, 10)}+${signature.slice(11)}`],
  ];
  for (const part of [0, 1] as const) {
    if ([2, 3].includes(accessToken.split('.')[part]!.length % 4)) spellings.push([`part ${part} with its unused bits set`, nonCanonical(accessToken, part)]);
  }
  const sameBytes = nonCanonical(accessToken, 2).split('.')[2]!;
  t.same(Buffer.from(sameBytes, 'base64url'), Buffer.from(signature, 'base64url'), 'the other spelling decodes to the same signature bytes');
  for (const [what, spelling] of spellings) {
    t.not(spelling, accessToken);
    const err = await refusal(t, f.verify(spelling, AT), 'GW_ERR_AUTH_TOKEN_INVALID', what);
    t.match(err?.message, /canonical base64url|JWS compact/, `${what}: the log says why`);
  }
  t.equal(f.signatureChecks(), checksBefore, 'no signature check for any of them');
  t.same(f.outcomes.slice(-spellings.length), spellings.map(() => 'rejected_early'), 'each counted as rejected early');
  t.equal((await f.verify(accessToken, AT)).sub, 'sensor-1', 'the canonical token still verifies');
});

t.test('size and shape: refused before any decoding of JSON or signature work', async (t) => {
  const f = await verifierFixture(t);
  const device = await f.provision('sensor-1');
  const good = await signed(f, 'sensor-1', device.recordId!);
  const cases: [string, string][] = [
    ['empty', ''],
    [`${MAX_TOKEN_CHARS + 1} characters`, `${good}${'A'.repeat(MAX_TOKEN_CHARS + 1 - good.length)}`],
    ['two parts', good.split('.').slice(0, 2).join('.')],
    ['four parts', `${good}.AAAA`],
    ['header not JSON', `${Buffer.from('{"alg":').toString('base64url')}.${good.split('.').slice(1).join('.')}`],
    ['header a JSON array', `${Buffer.from('["ES256"]').toString('base64url')}.${good.split('.').slice(1).join('.')}`],
    ['alg none', `${Buffer.from(JSON.stringify({ alg: 'none', typ: AT, kid: f.keystore.signingKey().kid })).toString('base64url')}.${good.split('.')[1]}.`],
    ['a signature of 63 bytes', `${good.split('.').slice(0, 2).join('.')}.${Buffer.alloc(63, 7).toString('base64url')}`],
  ];
  for (const [what, token] of cases) await refusal(t, f.verify(token, AT), 'GW_ERR_AUTH_TOKEN_INVALID', what);
  t.equal(f.signatureChecks(), 0, 'no signature check');
  t.equal((await f.verify(good, AT)).sub, 'sensor-1', 'control: the good token verifies');
  t.equal(f.signatureChecks(), 1);
});

t.test('iat further in the future than the leeway: refused, without a signature check', async (t) => {
  const f = await verifierFixture(t);
  const { recordId } = await f.provision('sensor-1');
  const nowSec = Math.floor(f.clock.nowMs() / 1000);
  const future = async (aheadSec: number) => signed(f, 'sensor-1', recordId!, { iat: nowSec + aheadSec, exp: nowSec + aheadSec + 600 });
  const hourAhead = await future(3600);
  const err = await refusal(t, f.verify(hourAhead, AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'iat an hour ahead');
  t.match(err?.message, /iat .* ahead/);
  await refusal(t, f.verify(await future(LEEWAY_SEC + 2), AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'iat leeway + 2 s ahead');
  t.equal(f.signatureChecks(), 0, 'no signature check for either');
  t.equal((await f.verify(await future(LEEWAY_SEC - 5), AT)).sub, 'sensor-1', 'iat within the leeway: accepted (a device clock a little ahead)');
  f.clock.advanceSec(3600);
  t.equal((await f.verify(hourAhead, AT)).sub, 'sensor-1', 'an hour later, the same token is fine');
});

t.test('tokens are bound to the device record: removed and added again within the same second, old tokens are refused', async (t) => {
  const f = await verifierFixture(t);
  const first = await f.provision('sensor-1');
  const old = await f.issuer.issue({ id: 'sensor-1', scopes: first.scopes, recordId: first.recordId! });
  f.verify.remember(old.accessToken, AT, old.accessClaims);
  t.equal((await f.verify(old.accessToken, AT)).rid, first.recordId, 'the old token works (from the cache), and carries rid');
  await f.store.devices.remove('sensor-1');
  // The very same creation time: the old binding to the creation second could not tell them apart.
  const second = await f.provision('sensor-1', { createdAt: first.createdAt });
  t.equal(old.accessClaims.iat >= Math.floor(Date.parse(second.createdAt) / 1000), true, 'precondition: the old token is not older than the new record');
  await refusal(t, f.verify(old.accessToken, AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'the cached old access token');
  await refusal(t, f.verify(old.accessToken, AT, false), 'GW_ERR_AUTH_TOKEN_INVALID', 'the old access token, uncached');
  const err = await refusal(t, f.verify(old.accessToken, AT, false), 'GW_ERR_AUTH_TOKEN_INVALID', 'the old access token, again');
  t.match(err?.message, /earlier record/);
  const fresh = await f.issuer.issue({ id: 'sensor-1', scopes: second.scopes, recordId: second.recordId! });
  t.equal((await f.verify(fresh.accessToken, AT)).sub, 'sensor-1', 'tokens of the new record work');
});

t.test('a record from an older state file (no recordId) binds as legacy:createdAt; tokens without rid bind to the creation second', async (t) => {
  const f = await verifierFixture(t);
  const createdAt = new Date(f.clock.nowMs()).toISOString();
  await f.provision('old-1', { recordId: undefined, createdAt });
  const nowSec = Math.floor(f.clock.nowMs() / 1000);
  t.equal((await f.verify(await signed(f, 'old-1', `legacy:${createdAt}`), AT)).sub, 'old-1', 'rid legacy:createdAt accepted');
  await refusal(t, f.verify(await signed(f, 'old-1', 'legacy:2020-01-01T00:00:00.000Z'), AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'another legacy rid');
  const noRid = async (iat: number) => signed(f, 'old-1', '', { rid: undefined, iat, exp: iat + 600 });
  t.equal((await f.verify(await noRid(nowSec), AT)).rid, '', 'a token from before rid, issued after the record: accepted');
  await refusal(t, f.verify(await noRid(nowSec - 5), AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'a token from before rid, older than the record');
  await refusal(t, f.verify(await signed(f, 'old-1', '', { rid: 42 }), AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'rid not a string');
});

t.test('isRevoked is asked on every cache hit and after every signature check', async (t) => {
  const revoked = new Set<string>();
  const f = await verifierFixture(t, { isRevoked: (token) => token.fam !== undefined && revoked.has(token.fam) });
  const device = await f.provision('sensor-1');
  const subject = { id: device.id, scopes: device.scopes, recordId: device.recordId! };
  const login = await f.issuer.issue(subject);
  f.verify.remember(login.accessToken, AT, login.accessClaims);
  const refreshed = await f.issuer.issue(subject, login.family);
  t.equal(refreshed.family, login.family, 'a refresh continues the family');
  t.equal((await f.verify(login.accessToken, AT)).fam, login.family);
  revoked.add(login.family);
  const err = await refusal(t, f.verify(login.accessToken, AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'a cached token of the revoked family');
  t.equal(err?.message, 'token revoked');
  const checks = f.signatureChecks();
  await refusal(t, f.verify(refreshed.accessToken, AT), 'GW_ERR_AUTH_TOKEN_INVALID', 'a fresh token of the revoked family');
  t.equal(f.signatureChecks(), checks + 1, 'the fresh one was refused after its signature check');
  const other = await f.issuer.issue(subject);
  t.equal((await f.verify(other.accessToken, AT)).fam, other.family, 'a new login (a new family) works');
});

t.test('messages: no token material, and no more than 64 characters of anything the sender chose', async (t) => {
  const f = await verifierFixture(t);
  const { recordId } = await f.provision('sensor-1');
  // 600 characters: long enough to need cutting, short enough to fit in the 2,048 characters of a token.
  const long = (c: string) => c.repeat(600);
  const key = f.keystore.signingKey();
  const forged = (await signed(f, 'sensor-1', recordId!)).split('.');
  forged[2] = Buffer.alloc(64, 3).toString('base64url');
  const cases: [string, string, string, RegExp][] = [
    ['a 600-character kid', await signed(f, 'sensor-1', recordId!, {}, { kid: long('k') }), long('k'), /^no verifying key for kid "k{64}"\.\.\. \(600 chars\)/],
    ['a 600-character typ', await signed(f, 'sensor-1', recordId!, {}, { typ: long('t') }), long('t'), /^typ "t{64}"/],
    ['a 600-character alg', `${Buffer.from(JSON.stringify({ alg: long('a'), kid: key.kid, typ: AT })).toString('base64url')}.e30.${'A'.repeat(86)}`,
      long('a'), /^alg "a{64}"/],
    ['a 600-character sub', await signed(f, long('s'), recordId!), long('s'), /^device "s{64}"/],
    ['a 600-character iss', await signed(f, 'sensor-1', recordId!, { iss: long('i') }), long('i'), /^iss "i{64}"/],
    ['an unknown crit parameter (jose quotes it)', signedRaw(f, { alg: 'ES256', typ: AT, kid: key.kid, crit: ['c'.repeat(300)], ['c'.repeat(300)]: 1 },
      boundClaims('sensor-1', recordId!, f.clock.nowMs())), 'c'.repeat(300), /^token rejected \(ERR_JOSE_NOT_SUPPORTED\)$/],
    ['control characters in a kid', await signed(f, 'sensor-1', recordId!, {}, { kid: '\u0000\n\u001b[31mred' }), '\n', /^no verifying key for kid "\?\?\?\[31mred"/],
    ['a forged signature', forged.join('.'), '', /^token rejected \(ERR_JWS_SIGNATURE_VERIFICATION_FAILED\)$/],
  ];
  for (const [what, token, chosen, expected] of cases) {
    t.ok(token.length <= MAX_TOKEN_CHARS, `${what}: a token of ${token.length} characters, within the size limit`);
    const err = await refusal(t, f.verify(token, AT), 'GW_ERR_AUTH_TOKEN_INVALID', what);
    const message = err?.message ?? '';
    t.match(message, expected, `${what}: ${message}`);
    t.ok(message.length <= 200, `${what}: ${message.length} characters`);
    if (chosen !== '') t.notOk(message.includes(chosen.slice(0, 65)), `${what}: at most 64 characters of it`);
    for (const part of token.split('.')) if (part.length > 20) t.notOk(message.includes(part), `${what}: no part of the token`);
  }
});

t.test('the verifier keeps its call shape: a TokenVerifier is a function with remember', async (t) => {
  const f = await verifierFixture(t);
  const verify: TokenVerifier = f.verify;
  t.type(verify, 'function');
  t.type(verify.remember, 'function');
});
