import { createHash, randomBytes } from 'node:crypto';
import { REFRESH_TOKEN_BYTES } from '../../wire/index.ts';

const FAMILY_BYTES = 8;

/** An opaque refresh token as the gateway hands it out, and what the store keeps of it. */
export interface RefreshToken {
  /** REFRESH_TOKEN_BYTES bytes: the family's id, then fresh random bytes. */
  token: Buffer;
  /** The family's id, base64url. */
  family: string;
  /** base64url SHA-256 of `token`: all the store ever holds. */
  hash: string;
}

/**
 * A new opaque refresh token: in a new family (a login), or the next of `family` (a refresh).
 * The family id in clear lets the gateway find the family with one lookup; the 8 random bytes
 * after it (64 bits, one guess per request and one use each) are what makes it unguessable.
 */
export function newRefreshToken(family?: string): RefreshToken {
  const familyBytes = family === undefined ? randomBytes(FAMILY_BYTES) : Buffer.from(family, 'base64url');
  const token = Buffer.concat([familyBytes, randomBytes(REFRESH_TOKEN_BYTES - FAMILY_BYTES)]);
  return { token, family: familyBytes.toString('base64url'), hash: hashRefreshToken(token) };
}

/** A presented refresh token's family and hash; undefined when it is not one of ours by shape. */
export function readRefreshToken(value: unknown): Omit<RefreshToken, 'token'> | undefined {
  if (!(value instanceof Uint8Array) || value.length !== REFRESH_TOKEN_BYTES) return undefined;
  return { family: Buffer.from(value.subarray(0, FAMILY_BYTES)).toString('base64url'), hash: hashRefreshToken(value) };
}

function hashRefreshToken(token: Uint8Array): string {
  return createHash('sha256').update(token).digest('base64url');
}
