import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import {
  Keystore, createTokenIssuer, createTokenVerifier, newRecordId,
  type TokenIssuer, type TokenVerifier, type TokenVerifierOptions, type VerifyOutcome,
} from '../../gateway/src/auth/index.ts';
import { DEFAULTS } from '../../gateway/src/config/index.ts';
import { buildFileStore, createDeviceView, type DeviceRecord, type Store } from '../../gateway/src/store/index.ts';

export const LEEWAY_SEC = 30;
export const TTL_SEC = 3600;

export interface VerifierFixture {
  verify: TokenVerifier;
  issuer: TokenIssuer;
  keystore: Keystore;
  store: Store;
  /** Every outcome the verifier reported, in order. */
  outcomes: VerifyOutcome[];
  clock: { nowMs(): number; advanceSec(sec: number): void };
  provision(id: string, record?: Partial<DeviceRecord>): Promise<DeviceRecord>;
  /** Signature checks made so far: calls of WebCrypto's verify, which jose makes for every JWS it checks. */
  signatureChecks(): number;
}

/**
 * The verifier on a real keystore (real ES256 keys on disk) and a real file store, in a
 * temporary state directory removed after the test; time moves by `clock.advanceSec`.
 */
export async function verifierFixture(t: Test, options: Partial<TokenVerifierOptions> = {}): Promise<VerifierFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'gw-verify-'));
  let offsetMs = 0;
  const clock = { nowMs: () => Date.now() + offsetMs, advanceSec: (sec: number) => { offsetMs += sec * 1000; } };
  const store = await buildFileStore(dir, { nowMs: clock.nowMs });
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  const keystore = await Keystore.open({
    dir: join(dir, 'keys'), signingAlg: 'ES256', maxTokenLifetimeSec: TTL_SEC + LEEWAY_SEC, nowMs: clock.nowMs,
  }, true);
  // Counted, not replaced: every call goes to the real implementation.
  const subtle = globalThis.crypto.subtle;
  const realVerify = subtle.verify;
  let signatureChecks = 0;
  type Subtle = typeof subtle;
  subtle.verify = function countedVerify(this: Subtle, ...args: Parameters<Subtle['verify']>) {
    signatureChecks += 1;
    return realVerify.apply(this, args);
  };
  t.teardown(() => { subtle.verify = realVerify; });
  const outcomes: VerifyOutcome[] = [];
  const { onOutcome } = options;
  const verify = createTokenVerifier({
    keystore, devices: createDeviceView(store, { maxEntries: DEFAULTS.deviceViewEntries }), issuer: DEFAULTS.issuer, audience: DEFAULTS.audience, leewaySec: LEEWAY_SEC, nowMs: clock.nowMs,
    cacheEntries: DEFAULTS.verifiedTokenCacheEntries, forgedTokensPerMinute: DEFAULTS.forgedTokensPerMinute,
    ...options,
    onOutcome: (outcome) => {
      outcomes.push(outcome);
      onOutcome?.(outcome);
    },
  });
  const issuer = createTokenIssuer({
    keystore, issuer: DEFAULTS.issuer, audience: DEFAULTS.audience, ttlSec: TTL_SEC, nowMs: clock.nowMs,
  });
  return {
    verify, issuer, keystore, store, outcomes, clock,
    async provision(id, record = {}) {
      const full: DeviceRecord = {
        id, secretHash: 'unused', scopes: ['telemetry:write', 'config:read'],
        createdAt: new Date(clock.nowMs()).toISOString(), recordId: newRecordId(), ...record,
      };
      await store.devices.add([full]);
      return full;
    },
    signatureChecks: () => signatureChecks,
  };
}
