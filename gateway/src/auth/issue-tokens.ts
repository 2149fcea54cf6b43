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

  const sign = (typ: string, sub: string, scope: string, iat: number, exp: number): Promise<string> => {
    const key = keystore.signingKey();
    return new SignJWT({ scope })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomBytes(12).toString('base64url'))
      .sign(key.privateKey);
  };

  return {
    async issue(deviceId: string, scopes: readonly string[]): Promise<IssuedTokens> {
      const iat = Math.floor(nowMs() / 1000);
      const scope = scopes.join(' ');
      const [accessToken, refreshToken] = await Promise.all([
        sign(ACCESS_TOKEN_TYP, deviceId, scope, iat, iat + ttlSec),
        sign(REFRESH_TOKEN_TYP, deviceId, scope, iat, iat + refreshTtlSec),
      ]);
      return { accessToken, refreshToken, expiresInSec: ttlSec, serverTimeSec: iat };
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;
