import { SignJWT } from 'jose';
import { ACCESS_TOKEN_TYP } from './issue-tokens.ts';
import type { Keystore } from '../keys/keystore.ts';
import type { VerifiedToken } from './verify-token.ts';

export interface BackendTokensOptions {
  keystore: Keystore;
  issuer: string;
  audience: string;
  nowMs: () => number;
  /** JWTs held at once (about 600 bytes each with the entry); the gateway holds as many as verified tokens. */
  maxEntries: number;
  /** A JWT pushed out of the full table before its token expired (metrics). */
  onEvicted?: () => void;
  /** One JWT signed (metrics, bench). */
  onMinted?: () => void;
}

export interface BackendTokens {
  /** The JWT a backend receives for a request made with a device token (JWT or CWT): minted once per token, held until it expires. */
  jwtFor(token: VerifiedToken): Promise<string>;
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

  const mint = async (token: VerifiedToken): Promise<string> => {
    const key = keystore.signingKey();
    const jwt = await new SignJWT({ scope: [...token.scopes].join(' '), rid: token.rid, ...(token.fam !== undefined ? { fam: token.fam } : {}) })
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

  return {
    jwtFor(token) {
      const cacheKey = `${token.sub} ${token.jti} ${token.exp} ${token.rid}`;
      const hit = held.get(cacheKey);
      if (hit !== undefined && hit.exp > nowMs() / 1000) return hit.jwt;
      if (hit !== undefined) held.delete(cacheKey);
      if (held.size >= maxEntries) {
        // The oldest goes (insertion order is nearly expiry order); its device's next request costs one more signature.
        const [oldestKey, oldest] = held.entries().next().value!;
        held.delete(oldestKey);
        if (oldest.exp > nowMs() / 1000) options.onEvicted?.();
      }
      const jwt = mint(token);
      held.set(cacheKey, { jwt, exp: token.exp });
      jwt.catch(() => held.delete(cacheKey));
      return jwt;
    },
    size: () => held.size,
  };
}
