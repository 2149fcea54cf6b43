// Token verification, cold and repeated, through the gateway's own verifier (createTokenVerifier):
// - cold: cache off, so the ES256 signature is checked every time (and jose's jwtVerify alone, for reference);
// - cached: the same token again and again (remembered by SHA-256 until it expires; each hit
//   re-checks expiry, key and device), and 2,000 devices' tokens in turn.
// - CWT beside JWT: the same cold and cached checks of a CWT (COSE_Sign1), the bytes of each on
//   the radio, and the backend JWT the gateway mints per device token (createBackendTokens), cold
//   (a new token each time) and held (the same token again), beside jose's SignJWT alone.
// The variants alternate for a few rounds and each keeps its best round, so a busy machine skews
// them alike and their ratio holds.
import { generate } from 'coap-packet';
import { SignJWT, jwtVerify } from 'jose';
import { ACCESS_TOKEN_TYP, createBackendTokens, createTokenVerifier, type VerifiedToken } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { ACCESS_TOKEN_OPTION } from '../../gateway/src/wire/index.ts';
import { createDeviceView } from '../../gateway/src/store/index.ts';
import { emitResult, flag, fleetIds, opsPerSec, say } from './lib.ts';
import { tokenFixture } from './token-fixtures.ts';

const ms = Number(flag('ms') ?? 700);
const rounds = Number(flag('rounds') ?? 3);
const fixture = await tokenFixture();
try {
  const options = { keystore: fixture.keystore, devices: createDeviceView(fixture.store, { maxEntries: DEFAULTS.deviceViewEntries }), issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
    leewaySec: DEFAULTS.leewaySec, nowMs: Date.now, cacheEntries: DEFAULTS.verifiedTokenCacheEntries,
    forgedTokensPerMinute: DEFAULTS.forgedTokensPerMinute };
  const cold = createTokenVerifier({ ...options, cacheEntries: 0 });
  const cached = createTokenVerifier(options);
  const publicKey = fixture.keystore.verificationKey(fixture.keystore.signingKey().kid)!.publicKey;
  const tokens = await Promise.all(fleetIds(10_000).slice(0, 2000).map((id) => fixture.issue(id)));
  for (const token of [fixture.token, ...tokens]) await cached(token, ACCESS_TOKEN_TYP);
  const cwt = await fixture.issue(fleetIds(10_000)[0]!, 'cwt');
  const cachedCwt = createTokenVerifier(options);
  await cachedCwt(cwt, ACCESS_TOKEN_TYP);
  const verified: VerifiedToken = await cold(cwt, ACCESS_TOKEN_TYP);
  const signing = fixture.keystore.signingKey();
  // Each cold mint a token the table has not seen (another jti), so each costs one signature.
  const minted = createBackendTokens({ keystore: fixture.keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience, nowMs: Date.now, ttlSec: DEFAULTS.tokenTtlSec, maxEntries: 1000 });
  const held = createBackendTokens({ keystore: fixture.keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience, nowMs: Date.now, ttlSec: DEFAULTS.tokenTtlSec, maxEntries: 1000 });
  await held.jwtFor(verified);
  let i = 0;
  let mints = 0;
  const variants = {
    verify_cold_per_s: () => opsPerSec(() => cold(fixture.token, ACCESS_TOKEN_TYP), ms, 50),
    verify_jose_per_s: () => opsPerSec(() => jwtVerify(fixture.token, publicKey, { algorithms: ['ES256'] }), ms, 50),
    verify_cwt_cold_per_s: () => opsPerSec(() => cold(cwt, ACCESS_TOKEN_TYP), ms, 50),
    verify_cwt_cached_per_s: () => opsPerSec(() => cachedCwt(cwt, ACCESS_TOKEN_TYP), ms, 1000),
    backend_jwt_mint_per_s: () => opsPerSec(() => minted.jwtFor({ ...verified, jti: `${verified.jti}${(mints += 1)}` }), ms, 50),
    backend_jwt_held_per_s: () => opsPerSec(() => held.jwtFor(verified), ms, 1000),
    jose_sign_per_s: () => opsPerSec(() => new SignJWT({ sub: verified.sub }).setProtectedHeader({ alg: signing.alg })
      .sign(signing.privateKey), ms, 50),
    verify_cached_per_s: () => opsPerSec(() => cached(fixture.token, ACCESS_TOKEN_TYP), ms, 1000),
    verify_cached_fleet_per_s: () => opsPerSec(() => cached(tokens[(i = (i + 1) % tokens.length)]!, ACCESS_TOKEN_TYP), ms, 1000),
  };
  const best: Record<string, number> = {};
  for (let round = 1; round <= rounds; round += 1) {
    const line: string[] = [];
    for (const [name, run] of Object.entries(variants)) {
      const value = await run();
      best[name] = Math.max(best[name] ?? 0, value);
      line.push(`${name.replace(/^verify_|_per_s$/g, '')} ${value}/s`);
    }
    say(`round ${round}: ${line.join(', ')}`);
  }
  say(`verify (best of ${rounds}): cold ${best.verify_cold_per_s}/s (jose alone ${best.verify_jose_per_s}/s); `
    + `cached, same token ${best.verify_cached_per_s}/s (${Math.round(best.verify_cached_per_s! / best.verify_cold_per_s!)}x cold); `
    + `cached, 2,000 tokens in turn ${best.verify_cached_fleet_per_s}/s`);
  // A 25-byte reading to /telemetry/temp as a device sends it (2-byte CoAP token), with each token.
  const readingBytes = (token: string) => generate({
    code: 'POST', messageId: 1, token: Buffer.alloc(2), payload: Buffer.alloc(25), options: [
      { name: 'Uri-Path', value: Buffer.from('telemetry') }, { name: 'Uri-Path', value: Buffer.from('temp') },
      { name: 'Content-Format', value: Buffer.of(60) }, { name: String(ACCESS_TOKEN_OPTION), value: Buffer.from(token, 'latin1') }],
  }).length;
  say(`a 25-byte reading: ${readingBytes(fixture.token)} bytes with the JWT, ${readingBytes(cwt)} with the CWT `
    + `(${Math.ceil(readingBytes(fixture.token) / 92)} and ${Math.ceil(readingBytes(cwt) / 92)} 802.15.4 frames of 92 CoAP bytes)`);
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  say(`CWT beside JWT: cold ${best.verify_cwt_cold_per_s}/s (${ratio(best.verify_cwt_cold_per_s!, best.verify_cold_per_s!)}x JWT), `
    + `cached ${best.verify_cwt_cached_per_s}/s (${ratio(best.verify_cwt_cached_per_s!, best.verify_cached_per_s!)}x JWT); `
    + `token ${fixture.token.length} characters (JWT) vs ${cwt.length} bytes (CWT)`);
  say(`backend JWT: minted ${best.backend_jwt_mint_per_s}/s (${ratio(best.backend_jwt_mint_per_s!, best.jose_sign_per_s!)}x jose SignJWT alone, `
    + `${best.jose_sign_per_s}/s), held ${best.backend_jwt_held_per_s}/s`);
  emitResult({
    ...best, jwt_chars: fixture.token.length, cwt_bytes: cwt.length,
    reading_bytes_jwt: readingBytes(fixture.token), reading_bytes_cwt: readingBytes(cwt),
    verify_cwt_cold_vs_jwt: ratio(best.verify_cwt_cold_per_s!, best.verify_cold_per_s!),
    backend_mint_vs_jose_sign: ratio(best.backend_jwt_mint_per_s!, best.jose_sign_per_s!),
  });
} finally {
  await fixture.remove();
}
