import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Keystore } from './keystore.ts';
import type { VerifiedToken } from './verify-token.ts';

export const ACCESS_TOKEN_TYP = 'at+jwt';
export const REFRESH_TOKEN_TYP = 'rt+jwt';

export interface TokenIssuerOptions {
  keystore: Keystore;
  issuer: string;
  audience: string;
  ttlSec: number;
  refreshTtlSec: number;
  nowMs: () => number;
}

/** Who the tokens are for: the device record's id binds them to this provisioning of the device. */
export interface TokenSubject {
  id: string;
  scopes: readonly string[];
  /** `recordIdOf(record)`. */
  recordId: string;
}

export interface IssuedTokens {
  accessToken: string;
  /** What verifying `accessToken` would yield, so the verifier can remember it without a signature check. */
  accessClaims: VerifiedToken;
  refreshToken: string;
  /** The refresh token's `jti` and `exp`, for whoever tracks its one use. */
  refreshJti: string;
  refreshExp: number;
  /** The refresh-token family both tokens belong to (`fam`). */
  family: string;
  expiresInSec: number;
  serverTimeSec: number;
}

export interface TokenIssuer {
  /** Signs a new pair; without `family` (a login) the pair starts a new family, with it (a refresh) it continues one. */
  issue(device: TokenSubject, family?: string): Promise<IssuedTokens>;
}

/**
 * Signs a device's access token (RFC 9068 `at+jwt`) and its one-use refresh token (`rt+jwt`)
 * with the keystore's active key. Claims are only the non-sensitive ones DESIGN.md lists, plus
 * `rid` (the device record they were issued to) and `fam` (their refresh-token family).
 */
export function createTokenIssuer(options: TokenIssuerOptions): TokenIssuer {
  const { keystore, issuer, audience, ttlSec, refreshTtlSec, nowMs } = options;
  const newId = (bytes: number) => randomBytes(bytes).toString('base64url');

  return {
    async issue(device, family = newId(12)) {
      if (typeof device !== 'object' || typeof device.id !== 'string' || typeof device.recordId !== 'string') {
        throw new TypeError('issue(device): device must be { id, scopes, recordId }');
      }
      const key = keystore.signingKey();
      const iat = Math.floor(nowMs() / 1000);
      const scope = device.scopes.join(' ');
      const sign = (typ: string, exp: number, jti: string): Promise<string> =>
        new SignJWT({ scope, rid: device.recordId, fam: family })
          .setProtectedHeader({ alg: key.alg, kid: key.kid, typ })
          .setIssuer(issuer)
          .setAudience(audience)
          .setSubject(device.id)
          .setIssuedAt(iat)
          .setExpirationTime(exp)
          .setJti(jti)
          .sign(key.privateKey);
      const accessJti = newId(12);
      const refreshJti = newId(12);
      const refreshExp = iat + refreshTtlSec;
      const [accessToken, refreshToken] = await Promise.all([
        sign(ACCESS_TOKEN_TYP, iat + ttlSec, accessJti),
        sign(REFRESH_TOKEN_TYP, refreshExp, refreshJti),
      ]);
      return {
        accessToken, refreshToken, refreshJti, refreshExp, family, expiresInSec: ttlSec, serverTimeSec: iat,
        accessClaims: {
          sub: device.id, iat, scopes: new Set(device.scopes), jti: accessJti, exp: iat + ttlSec, kid: key.kid,
          rid: device.recordId, fam: family,
        },
      };
    },
  };
}
