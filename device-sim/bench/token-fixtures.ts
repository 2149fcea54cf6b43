// Tokens exactly like the gateway's, made by its own issuer (auth/index.ts) in this process: the
// echo runs send one in every request, and the verify figures measure the verifier on them.
import { join } from 'node:path';
import { Keystore, createTokenIssuer, generateSecret, hashSecret, newRecordId, recordIdOf } from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { buildFileStore, type Store } from '../../gateway/src/store/index.ts';
import { fleetIds, tempDir } from './lib.ts';

/** A token exactly like the gateway's (same claims, same key type), for the echo server's requests. */
export async function gatewayLikeToken(sub: string): Promise<string> {
  const dir = await tempDir('bench-keys-');
  try {
    const keystore = await Keystore.open({ dir: dir.path, signingAlg: DEFAULTS.signingAlg, maxTokenLifetimeSec: 3600, nowMs: Date.now }, true);
    const issuer = createTokenIssuer({ keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
      ttlSec: DEFAULTS.tokenTtlSec, nowMs: Date.now });
    return (await issuer.issue({ id: sub, scopes: ['telemetry:write'], recordId: newRecordId() })).accessToken;
  } finally {
    await dir.remove();
  }
}

/** A keystore, a store with one device, and a token the gateway issued to it: what the verify benchmarks need. */
export async function tokenFixture(): Promise<{
  token: string; keystore: Keystore; store: Store; issue(sub: string, format?: 'jwt' | 'cwt'): Promise<string>;
  remove(): Promise<void>;
}> {
  const dir = await tempDir('bench-verify-');
  const keystore = await Keystore.open({ dir: join(dir.path, 'keys'), signingAlg: DEFAULTS.signingAlg, maxTokenLifetimeSec: 3600, nowMs: Date.now }, true);
  const store = await buildFileStore(dir.path);
  const ids = fleetIds(10_000);
  const createdAt = new Date().toISOString();
  await store.devices.add(ids.map((id) => ({ id, secretHash: hashSecret(generateSecret()), scopes: ['telemetry:write'], createdAt })));
  const issuer = createTokenIssuer({ keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience,
    ttlSec: DEFAULTS.tokenTtlSec, nowMs: Date.now });
  const issue = async (sub: string, format: 'jwt' | 'cwt' = 'jwt') =>
    (await issuer.issue({ id: sub, scopes: ['telemetry:write'], recordId: recordIdOf((await store.devices.get(sub))!) }, undefined, format))
      .accessToken;
  return { token: await issue(ids[0]!), keystore, store, issue, remove: dir.remove };
}
