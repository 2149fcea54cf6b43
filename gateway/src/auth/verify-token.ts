import { hash } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { AuthError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import type { Keystore } from './keystore.ts';

export interface VerifiedToken {
  sub: string;
  /** Issued at, seconds. */
  iat: number;
  scopes: ReadonlySet<string>;
  jti: string;
  exp: number;
  kid: string;
}

export type VerifyOutcome = 'ok' | 'cache_hit' | 'expired' | 'invalid';

export interface TokenVerifierOptions {
  keystore: Keystore;
  store: Store;
  issuer: string;
  audience: string;
  leewaySec: number;
  nowMs: () => number;
  /** Verified access tokens remembered by hash; 0 turns the cache off. */
  cacheEntries?: number;
  onOutcome?: (outcome: VerifyOutcome) => void;
}

/**
 * Verifies a gateway-issued token: signature by a key of the keystore (by `kid`), algorithm
 * from the keystore's allow-list (asymmetric only: never `none`, never HS*), `typ`, issuer,
 * audience, exp and nbf with the clock-skew leeway, and that the device is still provisioned.
 * Every failure is an AuthError; jose's reason goes to the log only.
 *
 * A verified token is remembered by its SHA-256 until it expires. A hit re-checks what can
 * change meanwhile (expiry with leeway, its key still verifying, its device still provisioned),
 * so a key retirement or a device removal takes effect on the next request.
 */
export function createTokenVerifier(options: TokenVerifierOptions) {
  const { keystore, store, issuer, audience, leewaySec, nowMs } = options;
  const cacheEntries = options.cacheEntries ?? 100_000;
  const cache = new Map<string, VerifiedToken>();
  const outcome = options.onOutcome ?? (() => undefined);

  // A token is only good for the device record it was issued to: removing a device and adding
  // it again (the answer to a compromised device) must not bring its old tokens back. `iat` has
  // whole seconds, so only a token issued in the very second of the re-provisioning survives.
  const issuedToCurrentDevice = (sub: string, iat: number): boolean => {
    const device = store.getDevice(sub);
    return device !== undefined && iat >= Math.floor(Date.parse(device.createdAt) / 1000);
  };
  const stillValid = (token: VerifiedToken): boolean =>
    token.exp + leewaySec > nowMs() / 1000
    && keystore.verificationKey(token.kid) !== undefined
    && issuedToCurrentDevice(token.sub, token.iat);

  const verifySignature = async (token: string, typ: string): Promise<VerifiedToken> => {
    let payload: JWTPayload;
    let kid: string | undefined;
    try {
      const result = await jwtVerify(token, async (header) => {
        const key = keystore.verificationKey(header.kid) ?? (await keystore.reloadForUnknownKid(header.kid));
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
    if (!issuedToCurrentDevice(sub, payload.iat!)) {
      throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `device "${sub}" is not provisioned (or was provisioned again after this token)`);
    }
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    return { sub, iat: payload.iat!, scopes: new Set(scope.split(' ').filter(Boolean)), jti: payload.jti!, exp: payload.exp!, kid: kid ?? '' };
  };

  const cacheKey = (token: string, typ: string): string => hash('sha256', `${typ} ${token}`, 'base64');
  const remember = (key: string, verified: VerifiedToken): void => {
    if (cache.size >= cacheEntries) cache.delete(cache.keys().next().value!);
    cache.set(key, verified);
  };

  async function verifyToken(token: string, typ: string, cacheable = true): Promise<VerifiedToken> {
    const useCache = cacheable && cacheEntries > 0;
    const key = useCache ? cacheKey(token, typ) : '';
    if (useCache) {
      const hit = cache.get(key);
      if (hit !== undefined && stillValid(hit)) {
        outcome('cache_hit');
        return hit;
      }
      if (hit !== undefined) cache.delete(key);
    }
    let verified: VerifiedToken;
    try {
      verified = await verifySignature(token, typ);
    } catch (err) {
      outcome((err as AuthError).code === 'GW_ERR_AUTH_TOKEN_EXPIRED' ? 'expired' : 'invalid');
      throw err;
    }
    outcome('ok');
    if (useCache) remember(key, verified);
    return verified;
  }

  return Object.assign(verifyToken, {
    /**
     * Remembers a token this gateway has just signed, so a device's first request after login
     * costs no signature check. Hits re-check expiry, key and device like any other.
     */
    remember(token: string, typ: string, verified: VerifiedToken): void {
      if (cacheEntries > 0) remember(cacheKey(token, typ), verified);
    },
  });
}

export type TokenVerifier = ReturnType<typeof createTokenVerifier>;
