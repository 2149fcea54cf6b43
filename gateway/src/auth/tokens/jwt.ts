import type { KeyObject } from 'node:crypto';
import { compactVerify, errors } from 'jose';
import { AuthError } from '../../errors.ts';
import { quoted } from '../../log/index.ts';
import type { AccessClaims } from './claims.ts';
import { decodeJws, splitCompactJws } from './compact-jws.ts';
import type { Binding } from './device-binding.ts';
import { readJti } from './token-id.ts';

const REQUIRED_CLAIMS = ['sub', 'exp', 'jti'];
/** Both of our algorithms (ES256 in IEEE P1363 form, Ed25519) have 64-byte signatures. */
const SIGNATURE_BYTES = 64;

/** An access JWT, read but not verified: what the checks before its signature need. */
export interface AccessJwt {
  alg: string;
  kid: string | undefined;
  claims: AccessClaims;
  jti: string;
  binding: Binding;
  /** Its refresh-token family: from a compact jti, else the earlier shape's `fam` claim. */
  family: string | undefined;
  /** The earlier shape's `scope` claim; undefined: the device record's scopes. */
  scope: string | undefined;
}

const invalid = (message: string) => new AuthError('GW_ERR_AUTH_TOKEN_INVALID', message);

/**
 * A JWS compact serialization as one of our access tokens, cheapest checks first: size, three
 * canonical base64url parts (splitCompactJws), header (alg on `algorithms`, typ), signature
 * length, the claims' presence and types. The compact shape has sub, exp and a jti holding the
 * family, the issue second and the record's tag (token-id.ts); the earlier, full shape (iat, rid,
 * fam and scope claims, a random jti) is still read until the last of those tokens has expired.
 */
export function readAccessJwt(token: string, typ: string, algorithms: readonly string[]): AccessJwt {
  const { header, claims, signatureBytes } = decodeJws(splitCompactJws(token));
  if (typeof header.alg !== 'string' || !algorithms.includes(header.alg)) throw invalid(`alg ${quoted(header.alg)} is not allowed`);
  if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(typ)) {
    throw invalid(`typ ${quoted(header.typ)}, expected "${typ}"`);
  }
  if (signatureBytes !== SIGNATURE_BYTES) throw invalid(`signature of ${signatureBytes} bytes, expected ${SIGNATURE_BYTES}`);
  for (const claim of REQUIRED_CLAIMS) if (!Object.hasOwn(claims, claim)) throw invalid(`no ${claim} claim`);
  const { sub, exp, nbf, rid, jti } = claims;
  if (typeof sub !== 'string' || typeof jti !== 'string') throw invalid('sub and jti must be strings');
  // A compact token (no iat claim) has its issue second, family and record tag in its jti.
  const compact = claims.iat === undefined ? readJti(jti) : undefined;
  if (claims.iat === undefined && compact === undefined) throw invalid('no iat claim, and a jti that does not hold one');
  const iat = compact?.iatSec ?? claims.iat;
  if (typeof iat !== 'number' || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) {
    throw invalid('iat, exp and nbf must be numbers');
  }
  if (rid !== undefined && typeof rid !== 'string') throw invalid('rid must be a string');
  if (claims.scope !== undefined && typeof claims.scope !== 'string') throw invalid('scope must be a string');
  const { iss, aud } = claims;
  if (iss !== undefined && typeof iss !== 'string') throw invalid(`iss ${quoted(iss)}`);
  if (aud !== undefined && typeof aud !== 'string' && !(Array.isArray(aud) && aud.every((one) => typeof one === 'string'))) {
    throw invalid('aud is not ours');
  }
  const binding: Binding = compact !== undefined ? { kind: 'tag', tag: compact.recordTag }
    : rid !== undefined && rid !== '' ? { kind: 'record', recordId: rid } : { kind: 'created', iatSec: iat };
  return {
    alg: header.alg, kid: typeof header.kid === 'string' ? header.kid : undefined,
    claims: { sub, exp, nbf, iat, iss, aud: aud as AccessJwt['claims']['aud'] }, jti, binding,
    family: compact?.family ?? (typeof claims.fam === 'string' ? claims.fam : undefined),
    scope: claims.scope as string | undefined,
  };
}

/**
 * Whether the JWS's signature verifies with `key`, by jose (which also refuses unknown `crit`
 * parameters). False only for a signature that does not verify, the one failure that costs a
 * signature check; anything else jose refuses throws, by its code only (some of jose's messages
 * quote the token's header).
 */
export async function jwtSignatureVerifies(token: string, key: { alg: string; publicKey: KeyObject }): Promise<boolean> {
  try {
    await compactVerify(token, key.publicKey, { algorithms: [key.alg] });
    return true;
  } catch (err) {
    if (err instanceof errors.JWSSignatureVerificationFailed) return false;
    throw invalid(`token rejected (${err instanceof errors.JOSEError ? err.code : (err as Error).name})`);
  }
}

/** RFC 8725 section 3.11 and jose: media types compare case-insensitively, `application/` optional. */
function normalizeTyp(value: string): string {
  const lower = value.toLowerCase();
  return lower.includes('/') ? lower : `application/${lower}`;
}
