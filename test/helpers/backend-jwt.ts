import { createLocalJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import type { Harness } from './harness.ts';
import type { RecordedRequest } from './test-backend.ts';

/**
 * The claims of the JWT a backend request carried, verified as a backend would (the gateway's
 * JWKS, its issuer and audience, `typ: at+jwt`); throws when it does not verify.
 */
export async function forwardedClaims(h: Harness, req: RecordedRequest | undefined, options: { issuer?: string; audience?: string } = {})
  : Promise<JWTPayload> {
  const header = req?.headers.authorization;
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) throw new Error('no Authorization: Bearer on the backend request');
  const { payload } = await jwtVerify(header.slice('Bearer '.length), createLocalJWKSet(h.gateway.keystore.jwks() as never), {
    issuer: options.issuer ?? 'coap-gateway', audience: options.audience ?? 'coap-gateway', typ: 'at+jwt',
  });
  return payload;
}

/** The jti of a device's JWT: the backend's JWT for it has the same. */
export const jtiOf = (token: string): string | undefined => decodeJwt(token).jti;
