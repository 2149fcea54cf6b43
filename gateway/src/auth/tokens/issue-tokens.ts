import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import type { TokenFormatName } from '../../wire/index.ts';
import { cwtExternalAad, newCti, signCwt } from './cwt.ts';
import { newJti } from './token-id.ts';
import type { Keystore } from '../keys/keystore.ts';
import type { VerifiedToken } from './verify-token.ts';

export const ACCESS_TOKEN_TYP = 'at+jwt';

export interface TokenIssuerOptions {
  keystore: Keystore;
  issuer: string;
  audience: string;
  ttlSec: number;
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
  format: TokenFormatName;
  /** As the verifier sees it in the Access-Token option: a JWT's text, a CWT's bytes as latin1. */
  accessToken: string;
  /** As the login answer carries it: text (JWT) or bytes (CWT). */
  answerValue: string | Buffer;
  /** What verifying `accessToken` would yield, so the verifier can remember it without a signature check. */
  accessClaims: VerifiedToken;
  /** The refresh-token family the token belongs to (`fam`). */
  family: string;
  expiresInSec: number;
  serverTimeSec: number;
}

export interface TokenIssuer {
  /**
   * Signs an access token of refresh-token family `family` (whose opaque refresh tokens the auth
   * resource keeps); without one, of a family of its own.
   */
  issue(device: TokenSubject, family?: string, format?: TokenFormatName): Promise<IssuedTokens>;
}

/**
 * Signs a device's access token with the keystore's active key: a compact JWT (RFC 9068
 * `at+jwt`: sub, exp and a jti that holds the refresh-token family, the issue second and a tag
 * of the device record), or a CWT (see cwt.ts). Neither sends what the gateway knows: issuer,
 * audience, the scopes of the record. Backends get a full JWT (backend-tokens.ts).
 */
export function createTokenIssuer(options: TokenIssuerOptions): TokenIssuer {
  const { keystore, issuer, audience, ttlSec, nowMs } = options;
  const newId = (bytes: number) => randomBytes(bytes).toString('base64url');

  return {
    async issue(device, family = newId(8), format = 'jwt') {
      if (typeof device !== 'object' || typeof device.id !== 'string' || typeof device.recordId !== 'string') {
        throw new TypeError('issue(device): device must be { id, scopes, recordId }');
      }
      const key = keystore.signingKey();
      const iat = Math.floor(nowMs() / 1000);
      if (format === 'cwt') {
        const cwt = signCwt({ sub: device.id, iatSec: iat, expSec: iat + ttlSec, family }, key,
          cwtExternalAad(issuer, audience, device.recordId));
        const accessClaims = {
          sub: device.id, iat, scopes: new Set(device.scopes), jti: newCti(family, iat).toString('base64url'),
          exp: iat + ttlSec, kid: key.kid, rid: device.recordId, fam: family,
        };
        return {
          format, accessToken: cwt.toString('latin1'), answerValue: cwt, family, expiresInSec: ttlSec, serverTimeSec: iat, accessClaims,
        };
      }
      // Only what verification uses (RFC 9068's typ; sub, exp, jti): iss, aud, the record, the
      // scopes and the family are known to the gateway or inside the jti (see token-id.ts).
      const accessJti = newJti(family, iat, device.recordId);
      const accessToken = await new SignJWT({})
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYP })
        .setSubject(device.id)
        .setExpirationTime(iat + ttlSec)
        .setJti(accessJti)
        .sign(key.privateKey);
      return {
        format, accessToken, answerValue: accessToken, family, expiresInSec: ttlSec, serverTimeSec: iat,
        accessClaims: {
          sub: device.id, iat, scopes: new Set(device.scopes), jti: accessJti, exp: iat + ttlSec, kid: key.kid,
          rid: device.recordId, fam: family,
        },
      };
    },
  };
}
