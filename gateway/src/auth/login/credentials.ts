import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SECRET_BYTES = 32;
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
export const SCOPE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/;

export function generateSecret(): Buffer {
  return randomBytes(SECRET_BYTES);
}

/**
 * Device secrets are 256 random bits, so a plain SHA-256 is as strong as a slow password hash
 * here and keeps logins cheap for constrained fleets.
 */
export function hashSecret(secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('base64url');
}

// Compared against when the device is unknown, so both failures cost the same time.
const DUMMY_HASH = hashSecret(Buffer.alloc(SECRET_BYTES));

export function secretMatches(secret: Uint8Array, storedHash: string | undefined): boolean {
  const actual = Buffer.from(hashSecret(secret), 'base64url');
  const expected = Buffer.from(storedHash ?? DUMMY_HASH, 'base64url');
  return actual.length === expected.length && timingSafeEqual(actual, expected) && storedHash !== undefined;
}
