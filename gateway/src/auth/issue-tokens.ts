import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Keystore } from './keystore.ts';

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

export interface IssuedTokens {
  accessToken: string;
  /** What verifying `accessToken` would yield, so the verifier can remember it without a signature check. */
  accessClaims: { sub: string; iat: number; scopes: ReadonlySet<string>; jti: string; exp: number; kid: string };
  refreshToken: string;
  expiresInSec: number;
  serverTimeSec: number;
}

/**
 * Signs a device's access token (RFC 9068 `at+jwt`) and its one-use refresh token (`rt+jwt`)
 * with the keystore's active key. Claims are only the non-sensitive ones DESIGN.md lists.
 */
export function createTokenIssuer(options: TokenIssuerOptions) {
  const { keystore, issuer, audience, ttlSec, refreshTtlSec, nowMs } = options;

  const sign = (typ: string, sub: string, scope: string, iat: number, exp: number, jti: string): Promise<string> => {
    const key = keystore.signingKey();
    return new SignJWT({ scope })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key.privateKey);
  };
  const newJti = () => randomBytes(12).toString('base64url');

  return {
    async issue(deviceId: string, scopes: readonly string[]): Promise<IssuedTokens> {
      const iat = Math.floor(nowMs() / 1000);
      const scope = scopes.join(' ');
      const jti = newJti();
      const kid = keystore.signingKey().kid;
      const [accessToken, refreshToken] = await Promise.all([
        sign(ACCESS_TOKEN_TYP, deviceId, scope, iat, iat + ttlSec, jti),
        sign(REFRESH_TOKEN_TYP, deviceId, scope, iat, iat + refreshTtlSec, newJti()),
      ]);
      return {
        accessToken, refreshToken, expiresInSec: ttlSec, serverTimeSec: iat,
        accessClaims: { sub: deviceId, iat, scopes: new Set(scopes), jti, exp: iat + ttlSec, kid },
      };
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;
