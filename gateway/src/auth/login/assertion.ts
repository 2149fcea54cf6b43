import { createPublicKey, type KeyObject } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { AuthError, RequestError } from '../../errors.ts';
import type { DeviceKey, DeviceRecord, NonceEntry, OneTimeIds } from '../../store/index.ts';
import { NONCE_BYTES, NONCE_LIFETIME_SEC } from '../../wire/index.ts';
import { quoted } from '../../log/index.ts';
import { MAX_TOKEN_CHARS, decodeJws, splitCompactJws } from '../tokens/compact-jws.ts';

/** The algorithms a device key may have; an assertion is checked with its key's own only. */
export const DEVICE_KEY_ALGS = ['ES256', 'EdDSA'] as const;

export interface AssertionRules {
  /** The gateway's audience: an assertion must name it in `aud`. */
  audience: string;
  /** The longest `exp - iat` accepted. */
  maxLifetimeSec: number;
  /** How far `iat` may be from the gateway's clock, unless the assertion carries a nonce. */
  iatSkewSec: number;
  /** The tokens' leeway: for `exp` and `nbf`, and how long a jti stays spent past `exp`. */
  leewaySec: number;
}

export interface AssertionVerifierOptions extends AssertionRules {
  nowMs: () => number;
  /** Spent assertion jtis, fleet-wide: a captured assertion cannot be replayed. */
  onceIds: OneTimeIds;
  /** Takes a nonce once (see NonceIssuer). */
  takeNonce: (nonce: string) => Promise<NonceEntry | undefined>;
}

/** What the checks before the signature found. */
export interface PrecheckedAssertion {
  key: DeviceKey;
  claims: { iat: number; exp: number; jti: string; nonce?: string };
}

export interface AssertionVerifier {
  /**
   * Everything that costs no signature check, in order: shape, header (alg one of ours, never
   * `none` or HS*), the device's key for it (kid, or the one key of that alg), key expiry,
   * audience, claims and their times. Throws AuthError GW_ERR_AUTH_BAD_CREDENTIALS whose message
   * says the precise reason (for the log only; the device is told only the wire code).
   */
  precheck(device: DeviceRecord, assertion: string): PrecheckedAssertion;
  /** The signature (by jose), then the nonce (once, same address, fresh) and the jti (once). */
  verify(checked: PrecheckedAssertion, assertion: string, deviceId: string, address: string): Promise<void>;
}

const refused = (reason: string) => new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', `assertion refused: ${reason}`);
const JTI_PATTERN = /^[\x21-\x7e]{1,128}$/;
const NONCE_PATTERN = new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((NONCE_BYTES * 4) / 3)}}$`);

/**
 * Signed-assertion login (RFC 7523's JWT bearer assertion, as Cloud IoT Core devices made them):
 * a device proves itself with a compact JWS signed by a private key that never leaves it.
 */
export function createAssertionVerifier(options: AssertionVerifierOptions): AssertionVerifier {
  const { audience, maxLifetimeSec, iatSkewSec, leewaySec, nowMs } = options;
  // Imported public keys by their JWK: a device holds at most three, a fleet many; bounded.
  const imported = new Map<string, KeyObject>();
  const publicKey = (key: DeviceKey): KeyObject => {
    const id = `${key.alg} ${JSON.stringify(key.publicJwk)}`;
    let object = imported.get(id);
    if (object === undefined) {
      object = createPublicKey({ key: key.publicJwk as never, format: 'jwk' });
      if (imported.size >= 10_000) imported.delete(imported.keys().next().value!);
      imported.set(id, object);
    }
    return object;
  };

  return {
    precheck(device, assertion) {
      if (assertion.length > MAX_TOKEN_CHARS) {
        throw new RequestError('GW_ERR_BAD_REQUEST', `assertion of ${assertion.length} characters (at most ${MAX_TOKEN_CHARS})`);
      }
      let decoded;
      try {
        decoded = decodeJws(splitCompactJws(assertion));
      } catch (err) {
        throw refused((err as Error).message);
      }
      const { header, claims } = decoded;
      if (typeof header.alg !== 'string' || !(DEVICE_KEY_ALGS as readonly string[]).includes(header.alg)) {
        throw refused(`alg ${quoted(header.alg)} is not ES256 or EdDSA`);
      }
      if (header.crit !== undefined) throw refused('crit header parameters are not supported');
      const keys = device.keys ?? [];
      if (keys.length === 0) throw refused(`device ${quoted(device.id)} has no public key`);
      let key: DeviceKey | undefined;
      if (header.kid !== undefined) {
        key = keys.find((k) => k.kid === header.kid);
        if (key === undefined) throw refused(`device ${quoted(device.id)} has no key ${quoted(header.kid)}`);
      } else {
        const ofAlg = keys.filter((k) => k.alg === header.alg);
        if (ofAlg.length !== 1) throw refused(`no kid, and device ${quoted(device.id)} has ${ofAlg.length} keys of alg ${quoted(header.alg)}`);
        key = ofAlg[0]!;
      }
      if (key.alg !== header.alg) throw refused(`alg ${quoted(header.alg)}, but key ${quoted(key.kid)} is ${key.alg}`);
      const nowSec = Math.floor(nowMs() / 1000);
      if (key.expiresAt !== undefined && Date.parse(key.expiresAt) <= nowMs()) throw refused(`key ${quoted(key.kid)} expired at ${key.expiresAt}`);
      if (!(claims.aud === audience || (Array.isArray(claims.aud) && claims.aud.includes(audience)))) {
        throw refused(`aud ${quoted(Array.isArray(claims.aud) ? claims.aud[0] : claims.aud)} is not this gateway's`);
      }
      const { iat, exp, jti, nbf, nonce } = claims;
      if (typeof iat !== 'number' || typeof exp !== 'number' || !Number.isFinite(iat) || !Number.isFinite(exp)) {
        throw refused('iat and exp must be numbers');
      }
      if (typeof jti !== 'string' || !JTI_PATTERN.test(jti)) throw refused('jti must be 1-128 printable characters');
      if (nbf !== undefined && typeof nbf !== 'number') throw refused('nbf must be a number');
      if (nonce !== undefined && (typeof nonce !== 'string' || !NONCE_PATTERN.test(nonce))) throw refused(`nonce ${quoted(nonce)} is not one of ours`);
      if (exp <= iat) throw refused(`exp ${exp} is not after iat ${iat}`);
      if (exp - iat > maxLifetimeSec) throw refused(`lifetime ${exp - iat} s is over ${maxLifetimeSec} s`);
      // A device with a nonce needs no clock: its times are checked against each other only.
      if (nonce === undefined) {
        if (Math.abs(iat - nowSec) > iatSkewSec) throw refused(`iat is ${iat - nowSec} s from the gateway's clock (at most ${iatSkewSec})`);
        if (exp <= nowSec - leewaySec) throw refused('expired');
        if (nbf !== undefined && nbf > nowSec + leewaySec) throw refused(`nbf is ${nbf - nowSec} s ahead`);
      }
      return { key, claims: { iat, exp, jti, ...(nonce === undefined ? {} : { nonce: nonce as string }) } };
    },

    async verify({ key, claims }, assertion, deviceId, address) {
      try {
        await jwtVerify(assertion, publicKey(key), {
          algorithms: [key.alg], audience, requiredClaims: ['iat', 'exp', 'jti'], clockTolerance: leewaySec,
          currentDate: new Date(claims.nonce === undefined ? nowMs() : claims.iat * 1000),
        });
      } catch (err) {
        // By code only: jose's messages may quote the assertion's header.
        throw refused(err instanceof errors.JWSSignatureVerificationFailed ? `signature does not verify with key ${quoted(key.kid)}`
          : `rejected by jose (${err instanceof errors.JOSEError ? err.code : (err as Error).name})`);
      }
      const nowSec = Math.floor(nowMs() / 1000);
      if (claims.nonce !== undefined) {
        const entry = await options.takeNonce(claims.nonce);
        if (entry === undefined) throw refused('nonce unknown, already used or expired');
        if (nowMs() - entry.issuedAtMs > NONCE_LIFETIME_SEC * 1000) throw refused('nonce too old');
        if (entry.address !== address) throw refused('nonce issued to another address');
      }
      // Spent until it could no longer be accepted: exp plus the leeway (or, with a nonce, a lifetime from now).
      const untilSec = (claims.nonce === undefined ? claims.exp : nowSec + maxLifetimeSec) + leewaySec;
      if (!(await options.onceIds.consume(`assertion:${deviceId}:${claims.jti}`, untilSec))) throw refused(`jti ${quoted(claims.jti)} seen before`);
    },
  };
}
