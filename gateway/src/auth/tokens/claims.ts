import { AuthError } from '../../errors.ts';
import { quoted } from '../../log/index.ts';

/** What an access token states about itself, whatever its format; read, not verified yet. */
export interface AccessClaims {
  sub: string;
  exp: number;
  nbf: number | undefined;
  /** Issued at: from a claim, or from the token's id (a compact JWT's jti, a CWT's cti). */
  iat: number;
  /** Our tokens leave out iss and aud (the keys sign for this issuer and audience only); present, they must be ours. */
  iss: string | undefined;
  aud: string | readonly string[] | undefined;
}

/** A token that verified: who it is for, what it may do, and what ties it to its key, record and family. */
export interface VerifiedToken {
  sub: string;
  /** Issued at, seconds. */
  iat: number;
  scopes: ReadonlySet<string>;
  jti: string;
  exp: number;
  kid: string;
  /** The device record it was issued to; '' for a token from before records had ids. */
  rid: string;
  /** Its refresh-token family; undefined for a token from before families. */
  fam: string | undefined;
}

export interface ClaimRules {
  issuer: string;
  audience: string;
  /** Clock skew allowed on exp, nbf and iat, seconds. */
  leewaySec: number;
}

/**
 * The claims check of every access token, JWT or CWT (jose's `validateClaimsSet` is the
 * model): iss and aud if present, exp, nbf and iat with the leeway, in whole seconds as jose
 * counts them. An expired token is GW_ERR_AUTH_TOKEN_EXPIRED, anything else
 * GW_ERR_AUTH_TOKEN_INVALID; a message quotes at most 64 characters of what the sender chose.
 */
export function checkClaims(claims: AccessClaims, rules: ClaimRules, nowSec: number): void {
  const { issuer, audience, leewaySec } = rules;
  const invalid = (message: string) => new AuthError('GW_ERR_AUTH_TOKEN_INVALID', message);
  if (claims.iss !== undefined && claims.iss !== issuer) throw invalid(`iss ${quoted(claims.iss)}`);
  const { aud } = claims;
  if (aud !== undefined && aud !== audience && !(Array.isArray(aud) && aud.includes(audience))) throw invalid('aud is not ours');
  if (claims.exp <= nowSec - leewaySec) throw new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'token expired');
  if (claims.nbf !== undefined && claims.nbf > nowSec + leewaySec) throw invalid(`nbf ${claims.nbf} is more than ${leewaySec} s ahead`);
  // jose checks iat only against a maximum age; a token from the future is no token of ours.
  if (claims.iat > nowSec + leewaySec) throw invalid(`iat ${claims.iat} is more than ${leewaySec} s ahead`);
}
