/** RFC 7252 section 5.10.5: Max-Age is an unsigned integer of 0-4 bytes, so at most 2^32 - 1 seconds. */
export const MAX_AGE_LIMIT_SEC = 0xffff_ffff;

/**
 * Any number of seconds as a Max-Age value, whatever its source (Retry-After, Cache-Control, a
 * limiter's wait): whole (rounded up, so a device never comes back early), from 0 to
 * MAX_AGE_LIMIT_SEC. Not a number is 0: no freshness is claimed.
 */
export function clampMaxAge(sec: number): number {
  if (Number.isNaN(sec) || sec <= 0) return 0;
  return Math.min(Math.ceil(sec), MAX_AGE_LIMIT_SEC);
}
