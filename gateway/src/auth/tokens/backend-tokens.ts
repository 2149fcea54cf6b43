import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { ACCESS_TOKEN_TYP } from './issue-tokens.ts';
import type { Keystore } from '../keys/keystore.ts';
import type { VerifiedToken } from './verify-token.ts';

export interface BackendTokensOptions {
  keystore: Keystore;
  issuer: string;
  audience: string;
  nowMs: () => number;
  /** The access token lifetime: a JWT for a request under OSCORE without a token lives as long (and up to twice that). */
  ttlSec: number;
  /** JWTs held at once (about 600 bytes each with the entry); the gateway holds as many as verified tokens. */
  maxEntries: number;
  /** A JWT pushed out of the full table before its token expired (metrics). */
  onEvicted?: () => void;
  /** One JWT signed (metrics, bench). */
  onMinted?: () => void;
}

export interface BackendTokens {
  /**
   * The JWT a backend receives for a request made with a device token (JWT or CWT): minted once
   * per token, held until it expires. `protection` 'oscore': the request came under the device's
   * OSCORE context, which the JWT says with the claim `sec: "oscore"`.
   */
  jwtFor(token: VerifiedToken, protection?: 'oscore'): Promise<string>;
  /**
   * The JWT for a request proved by the device's OSCORE context alone (no Access-Token): the
   * device's record scopes, `sec: "oscore"`, no `rid` or `fam`; one per device and lifetime window,
   * so that the next requests reuse it.
   */
  jwtForContext(deviceId: string, scopes: ReadonlySet<string>): Promise<string>;
  /** JWTs held now (a gauge). */
  size(): number;
}

/**
 * Backends keep verifying what they receive with the JWKS and jose, with issuer, audience and
 * scope: the compact tokens devices send leave those out (a CWT signs them unsent, a compact JWT
 * has them from the gateway's configuration and the device record). So for each device token the
 * gateway signs, with its active key, a JWT with the same sub, iat, exp and jti plus iss, aud,
 * scope, rid and fam. Bounded by count like the verifier's cache, oldest first; concurrent
 * requests with one token share one signature.
 */
export function createBackendTokens(options: BackendTokensOptions): BackendTokens {
  const { keystore, issuer, audience, nowMs } = options;
  const { maxEntries } = options;
  const held = new Map<string, { jwt: Promise<string>; exp: number }>();

  const mint = async (token: Pick<VerifiedToken, 'sub' | 'iat' | 'exp' | 'jti' | 'scopes'> & Partial<Pick<VerifiedToken, 'rid' | 'fam'>>,
    protection: 'oscore' | undefined): Promise<string> => {
    const key = keystore.signingKey();
    const jwt = await new SignJWT({
      scope: [...token.scopes].join(' '),
      ...(token.rid !== undefined ? { rid: token.rid } : {}),
      ...(token.fam !== undefined ? { fam: token.fam } : {}),
      ...(protection !== undefined ? { sec: protection } : {}),
    })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: ACCESS_TOKEN_TYP })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(token.sub)
      .setIssuedAt(token.iat)
      .setExpirationTime(token.exp)
      .setJti(token.jti)
      .sign(key.privateKey);
    options.onMinted?.();
    return jwt;
  };

  /** The held JWT under `cacheKey`, or a new one; the table bounded by count, oldest first. */
  const heldOr = (cacheKey: string, exp: number, make: () => Promise<string>): Promise<string> => {
    const hit = held.get(cacheKey);
    if (hit !== undefined && hit.exp > nowMs() / 1000) return hit.jwt;
    if (hit !== undefined) held.delete(cacheKey);
    if (held.size >= maxEntries) {
      // The oldest goes (insertion order is nearly expiry order); its device's next request costs one more signature.
      const [oldestKey, oldest] = held.entries().next().value!;
      held.delete(oldestKey);
      if (oldest.exp > nowMs() / 1000) options.onEvicted?.();
    }
    const jwt = make();
    held.set(cacheKey, { jwt, exp });
    jwt.catch(() => held.delete(cacheKey));
    return jwt;
  };

  return {
    jwtFor(token, protection) {
      return heldOr(`${token.sub} ${token.jti} ${token.exp} ${token.rid} ${protection ?? ''}`, token.exp, () => mint(token, protection));
    },
    jwtForContext(deviceId, scopes) {
      // Windows of one lifetime: each JWT is good for at least one lifetime after it is made.
      const iat = Math.floor(nowMs() / 1000 / options.ttlSec) * options.ttlSec;
      const exp = iat + 2 * options.ttlSec;
      const scopeKey = [...scopes].join(' ');
      return heldOr(`oscore ${deviceId} ${iat} ${scopeKey}`, exp,
        () => mint({ sub: deviceId, iat, exp, jti: randomBytes(16).toString('base64url'), scopes }, 'oscore'));
    },
    size: () => held.size,
  };
}
