import type { KeyObject } from 'node:crypto';
import type { SigningAlg } from '../../config/index.ts';
import { decodeCbor, encodeCbor } from '../../wire/index.ts';
import { AuthError } from '../../errors.ts';
import type { AccessClaims } from './claims.ts';
import { MAX_TOKEN_CHARS } from './compact-jws.ts';
import { CoseFormatError, decodeCoseSign1, signCoseSign1, type CoseSign1 } from './cose-sign1.ts';

/** RFC 8392 section 4 claim keys, and `scope` (9) of RFC 9200 section 5.10. */
export const CwtClaim = { iss: 1, sub: 2, aud: 3, exp: 4, nbf: 5, iat: 6, cti: 7, scope: 9 } as const;

/** The first byte of every CWT we issue (tag 18, COSE_Sign1): a JWT starts with `e`. */
export const CWT_FIRST_BYTE = 0xd2;
const FAMILY_BYTES = 8;
/** A cti: the token's refresh-token family (8 bytes), then its issue second (uint32, big-endian). */
export const CTI_BYTES = FAMILY_BYTES + 4;

/** What a CWT of ours says, read but not yet verified. */
export interface CwtClaims {
  sub: string;
  exp: number;
  nbf: number | undefined;
  /** From the `iat` claim if present, else from the cti. */
  iat: number;
  cti: Buffer;
  /** The refresh-token family, base64url (from the cti). */
  family: string;
  /** Space-separated; undefined: the device record's scopes. */
  scope: string | undefined;
  iss: string | undefined;
  aud: string | undefined;
}

/** Why a CWT's claims were refused before its signature was checked (no bytes of it in the message). */
export class CwtClaimsError extends Error {}

/**
 * A token's id: its family and its issue second, so that neither needs a claim of its own. Two
 * tokens of one family issued in the same second share it (a refresh within a second of the
 * last answer), which costs nothing: revoking one by jti revokes its twin, whose refresh token
 * is spent anyway.
 */
export function newCti(family: string, iatSec: number): Buffer {
  const cti = Buffer.alloc(CTI_BYTES);
  Buffer.from(family, 'base64url').copy(cti, 0, 0, FAMILY_BYTES);
  cti.writeUInt32BE(iatSec >>> 0, FAMILY_BYTES);
  return cti;
}

/** Our kids are hex: a CWT carries their bytes (4 for a key made now, 8 for an older one). */
export function kidBytes(kid: string): Buffer {
  return /^(?:[0-9a-f]{2})+$/.test(kid) ? Buffer.from(kid, 'hex') : Buffer.from(kid, 'utf8');
}

export function kidText(bytes: Buffer): string {
  return bytes.toString('hex');
}

/**
 * Signed with the token but never sent (RFC 9052 section 4.3, external AAD): the issuer, the
 * audience and the device record's id. The verifier knows all three, so binding them costs no
 * byte on the radio: a token for another issuer or audience, or of an earlier record of its
 * device (removed and added again, or revoked), fails its signature check.
 */
export function cwtExternalAad(issuer: string, audience: string, recordId: string): Buffer {
  return encodeCbor([issuer, audience, recordId]);
}

export interface CwtContent {
  sub: string;
  iatSec: number;
  expSec: number;
  family: string;
  /** Only when it differs from the device record's scopes (never, today: a login gets them all). */
  scope?: string;
}

/** A CWT of `content`, signed with `key`; the claims are what the wire contract lists (sub, exp, cti). */
export function signCwt(content: CwtContent, key: { kid: string; alg: SigningAlg; privateKey: KeyObject }, aad: Buffer): Buffer {
  const claims = new Map<number, string | number | Buffer>([
    [CwtClaim.sub, content.sub],
    [CwtClaim.exp, content.expSec],
    [CwtClaim.cti, newCti(content.family, content.iatSec)],
  ]);
  if (content.scope !== undefined) claims.set(CwtClaim.scope, content.scope);
  return signCoseSign1(encodeCbor(claims), { alg: key.alg, kid: kidBytes(key.kid), privateKey: key.privateKey }, aad);
}

const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isSafeInteger(value);

/** The claims of a CWT payload, types checked; unknown claims are ignored (RFC 8392 section 3). */
export function readCwtClaims(payload: Buffer): CwtClaims {
  let map: unknown;
  try {
    map = decodeCbor(payload);
  } catch {
    throw new CwtClaimsError('the claims are not CBOR');
  }
  if (!(map instanceof Map)) throw new CwtClaimsError('the claims are not a CBOR map');
  const sub = map.get(CwtClaim.sub);
  const exp = map.get(CwtClaim.exp);
  const nbf = map.get(CwtClaim.nbf);
  const iat = map.get(CwtClaim.iat);
  const cti = map.get(CwtClaim.cti);
  const scope = map.get(CwtClaim.scope);
  const iss = map.get(CwtClaim.iss);
  const aud = map.get(CwtClaim.aud);
  if (typeof sub !== 'string') throw new CwtClaimsError('sub (2) must be a text string');
  if (!isInt(exp) || (nbf !== undefined && !isInt(nbf)) || (iat !== undefined && !isInt(iat))) {
    throw new CwtClaimsError('exp (4), nbf (5) and iat (6) must be integers');
  }
  if (!(cti instanceof Uint8Array) || cti.length !== CTI_BYTES) throw new CwtClaimsError(`cti (7) must be ${CTI_BYTES} bytes`);
  if (scope !== undefined && typeof scope !== 'string') throw new CwtClaimsError('scope (9) must be a text string');
  if ((iss !== undefined && typeof iss !== 'string') || (aud !== undefined && typeof aud !== 'string')) {
    throw new CwtClaimsError('iss (1) and aud (3) must be text strings');
  }
  const ctiBytes = Buffer.from(cti);
  return {
    sub, exp, nbf, cti: ctiBytes, scope, iss, aud,
    iat: iat ?? ctiBytes.readUInt32BE(FAMILY_BYTES),
    family: ctiBytes.subarray(0, FAMILY_BYTES).toString('base64url'),
  };
}

/** A CWT access token, read but not verified: what the checks before its signature need. */
export interface AccessCwt {
  message: CoseSign1;
  kid: string;
  claims: AccessClaims;
  /** The cti, base64url: the token's id for revocations. */
  jti: string;
  family: string;
  /** Undefined: the device record's scopes. */
  scope: string | undefined;
}

/** A CWT (the Access-Token option's bytes, latin1) as one of our access tokens: its COSE_Sign1 and claims, strictly parsed. */
export function readAccessCwt(token: string): AccessCwt {
  if (token.length > MAX_TOKEN_CHARS) throw invalid(`token of ${token.length} bytes (at most ${MAX_TOKEN_CHARS})`);
  let message: CoseSign1;
  let claims: CwtClaims;
  try {
    message = decodeCoseSign1(Buffer.from(token, 'latin1'));
    claims = readCwtClaims(message.payload);
  } catch (err) {
    if (err instanceof CoseFormatError || err instanceof CwtClaimsError) throw invalid(`CWT: ${err.message}`);
    throw err;
  }
  const { sub, exp, nbf, iat, iss, aud } = claims;
  return {
    message, kid: kidText(message.kid), claims: { sub, exp, nbf, iat, iss, aud }, jti: claims.cti.toString('base64url'),
    family: claims.family, scope: claims.scope,
  };
}

const invalid = (message: string) => new AuthError('GW_ERR_AUTH_TOKEN_INVALID', message);
