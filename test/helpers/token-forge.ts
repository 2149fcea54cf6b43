import { createHmac, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import { DEFAULTS } from '../../gateway/src/config/index.ts';

// Tokens an attacker (or a buggy device) might present, built the way the gateway builds its own
// (gateway/src/auth/issue-tokens.ts) so that each forgery differs from a good token in one way only.

export interface ForgeClaims extends JWTPayload {
  scope?: string;
}

export interface ForgeHeader {
  alg: string;
  typ?: string;
  kid?: string;
  [name: string]: unknown;
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * The claims the gateway wrote for `sub` at `nowMs` before tokens were bound to records: iss, aud,
 * sub, iat, exp, jti, scope. Still accepted, bound to the record's creation second; `boundClaims`
 * adds what the gateway writes now (`rid`, `fam`).
 */
export function accessClaims(sub: string, nowMs: number, scope = 'telemetry:write config:read', ttlSec = 3600): ForgeClaims {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: DEFAULTS.issuer, aud: DEFAULTS.audience, sub, iat, exp: iat + ttlSec,
    jti: randomBytes(12).toString('base64url'), scope,
  };
}

/** Signs `claims` with a real asymmetric key via jose, as the gateway does. */
export function signToken(key: { alg: string; privateKey: KeyObject }, claims: ForgeClaims, header: Partial<ForgeHeader> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, typ: 'at+jwt', ...header }).sign(key.privateKey);
}

/** An unsecured JWS (RFC 7515 appendix A.5): `alg: none` and an empty signature. */
export function unsecuredToken(claims: ForgeClaims, kid: string): string {
  return `${b64url({ alg: 'none', typ: 'at+jwt', kid })}.${b64url(claims)}.`;
}

/** HS256 by hand (node's HMAC, not jose), keyed with whatever bytes the attacker chose. */
export function hmacToken(secret: Uint8Array | string, claims: ForgeClaims, kid: string): string {
  const signingInput = `${b64url({ alg: 'HS256', typ: 'at+jwt', kid })}.${b64url(claims)}`;
  return `${signingInput}.${createHmac('sha256', secret).update(signingInput).digest('base64url')}`;
}

/** The public key bytes an algorithm-confusion attack would use as an HMAC secret. */
export function publicKeyAsSecrets(publicKey: KeyObject): { name: string; secret: Uint8Array | string }[] {
  const pem = publicKey.export({ format: 'pem', type: 'spki' }) as string;
  return [
    { name: 'SPKI PEM', secret: pem },
    { name: 'SPKI PEM without final newline', secret: pem.trimEnd() },
    { name: 'SPKI DER', secret: publicKey.export({ format: 'der', type: 'spki' }) },
    { name: 'JWK JSON', secret: JSON.stringify(publicKey.export({ format: 'jwk' })) },
  ];
}

/** A key the gateway has never seen. */
export function foreignKey(alg: 'ES256' | 'EdDSA' = 'ES256'): { alg: string; privateKey: KeyObject } {
  const { privateKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  return { alg, privateKey };
}

/** The same token with one bit of its signature flipped (in the decoded bytes, so it stays valid base64url). */
export function flipSignatureByte(token: string, index = 10): string {
  const [header, payload, signature] = splitToken(token);
  const bytes = Buffer.from(signature, 'base64url');
  bytes[index % bytes.length]! ^= 0x01;
  return `${header}.${payload}.${bytes.toString('base64url')}`;
}

/** The same header and signature over a payload with `changes` applied, re-encoded as base64url. */
export function withPayload(token: string, changes: ForgeClaims): string {
  const [header, payload, signature] = splitToken(token);
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as ForgeClaims;
  return `${header}.${b64url({ ...claims, ...changes })}.${signature}`;
}

export function decodePart(token: string, part: 0 | 1): Record<string, unknown> {
  return JSON.parse(Buffer.from(splitToken(token)[part], 'base64url').toString('utf8')) as Record<string, unknown>;
}

function splitToken(token: string): [string, string, string] {
  const parts = token.split('.');
  if (parts.length !== 3) throw new TypeError(`not a JWS compact serialization: ${parts.length} parts`);
  return parts as [string, string, string];
}

/** Claims bound to a device record, as the gateway now issues them: `rid` (and a family, `fam`). */
export function boundClaims(sub: string, rid: string, nowMs: number, changes: ForgeClaims = {}): ForgeClaims {
  return { ...accessClaims(sub, nowMs), rid, fam: randomBytes(12).toString('base64url'), ...changes };
}

/** The same header and claims under 64 random bytes: what a signature flood sends, one forgery each. */
export function randomSignature(token: string): string {
  const [header, payload] = splitToken(token);
  return `${header}.${payload}.${randomBytes(64).toString('base64url')}`;
}

/**
 * Another spelling of the same bytes: the last character of a part with its unused low bits set
 * (RFC 4648 section 3.5 says they are zero). Base64url decoders ignore them, so the part decodes
 * to the very same bytes. Throws for a part whose length leaves no unused bits.
 */
export function nonCanonical(token: string, part: 0 | 1 | 2): string {
  const parts = splitToken(token);
  const text = parts[part];
  const unusedBits = text.length % 4 === 2 ? 4 : text.length % 4 === 3 ? 2 : 0;
  if (unusedBits === 0) throw new TypeError(`part ${part} (${text.length} chars) has no unused bits`);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = alphabet.indexOf(text.at(-1)!);
  parts[part] = text.slice(0, -1) + alphabet[last | 1]!;
  return parts.join('.');
}
