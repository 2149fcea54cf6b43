import { errors, jwtVerify, type JWTPayload } from 'jose';
import { AuthError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { Keystore } from './keystore.ts';

export interface VerifiedToken {
  sub: string;
  scopes: ReadonlySet<string>;
  jti: string;
  exp: number;
  kid: string;
}

export interface TokenVerifierOptions {
  keystore: Keystore;
  store: Store;
  issuer: string;
  audience: string;
  leewaySec: number;
  nowMs: () => number;
}

/**
 * Verifies a gateway-issued token: signature by a key of the keystore (by `kid`), algorithm
 * from the keystore's allow-list (asymmetric only: never `none`, never HS*), `typ`, issuer,
 * audience, exp and nbf with the clock-skew leeway, and that the device is still provisioned.
 * Every failure is an AuthError; jose's reason goes to the log only.
 */
export function createTokenVerifier(options: TokenVerifierOptions) {
  const { keystore, store, issuer, audience, leewaySec, nowMs } = options;

  return async function verifyToken(token: string, typ: string): Promise<VerifiedToken> {
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      const result = await jwtVerify(token, (header) => {
        const key = keystore.verificationKey(header.kid);
        if (key === undefined || key.alg !== header.alg) {
          throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `no verifying key for kid ${JSON.stringify(header.kid)}`);
        }
        return key.publicKey;
      }, {
        issuer,
        audience,
        algorithms: keystore.algorithms(),
        clockTolerance: leewaySec,
        currentDate: new Date(nowMs()),
        typ,
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      });
      payload = result.payload;
      kid = result.protectedHeader.kid;
    } catch (err) {
      if (err instanceof AuthError) throw err;
      if (err instanceof errors.JWTExpired) throw new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'token expired', { cause: err });
      const reason = err instanceof errors.JOSEError ? `${err.code}: ${err.message}` : String(err);
      throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `token rejected (${reason})`, { cause: err });
    }
    const sub = payload.sub!;
    if (store.getDevice(sub) === undefined) {
      throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `device "${sub}" is no longer provisioned`);
    }
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    return {
      sub,
      scopes: new Set(scope.split(' ').filter(Boolean)),
      jti: payload.jti!,
      exp: payload.exp!,
      kid: kid ?? '',
    };
  };
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;
