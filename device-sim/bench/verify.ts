// Token verification, cold and repeated, through the gateway's own verifier (createTokenVerifier):
// - cold: cache off, so the ES256 signature is checked every time (and jose's jwtVerify alone, for reference);
// - cached: the same token again and again (remembered by SHA-256 until it expires; each hit
//   re-checks expiry, key and device), and 2,000 devices' tokens in turn.
// The variants alternate for a few rounds and each keeps its best round, so a busy machine skews
// them alike and their ratio holds.
import { jwtVerify } from 'jose';
import { ACCESS_TOKEN_TYP, createTokenVerifier } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { createDeviceView } from '../../gateway/src/store/index.ts';
import { emitResult, flag, fleetIds, opsPerSec, say, tokenFixture } from './lib.ts';

const ms = Number(flag('ms') ?? 700);
const rounds = Number(flag('rounds') ?? 3);
const fixture = await tokenFixture();
try {
  const options = { keystore: fixture.keystore, devices: createDeviceView(fixture.store), issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
    leewaySec: DEFAULTS.leewaySec, nowMs: Date.now };
  const cold = createTokenVerifier({ ...options, cacheEntries: 0 });
  const cached = createTokenVerifier(options);
  const publicKey = fixture.keystore.verificationKey(fixture.keystore.signingKey().kid)!.publicKey;
  const tokens = await Promise.all(fleetIds(10_000).slice(0, 2000).map((id) => fixture.issue(id)));
  for (const token of [fixture.token, ...tokens]) await cached(token, ACCESS_TOKEN_TYP);
  let i = 0;
  const variants = {
    verify_cold_per_s: () => opsPerSec(() => cold(fixture.token, ACCESS_TOKEN_TYP), ms, 50),
    verify_jose_per_s: () => opsPerSec(() => jwtVerify(fixture.token, publicKey,
      { issuer: DEFAULTS.issuer, audience: DEFAULTS.audience, algorithms: ['ES256'] }), ms, 50),
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
  emitResult(best);
} finally {
  await fixture.remove();
}
