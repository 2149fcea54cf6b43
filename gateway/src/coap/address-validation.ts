import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** An Echo value stays good for this long (two windows of this size are accepted). */
const WINDOW_MS = 60_000;
const MAC_BYTES = 5;

export interface AddressValidator {
  /** A fresh Echo option value for this address (RFC 9175 section 2.4). */
  challenge(address: string): Buffer;
  /** Whether the device echoed a value this gateway made for its address within the last window or two. */
  verify(address: string, echo: Buffer | undefined): boolean;
}

/**
 * RFC 9175 section 2.4: before sending an unauthenticated answer larger than its request, make
 * sure the request's source address is real. The device must repeat the request with the Echo
 * value of a 4.01, which only a device receiving at that address can know. The value is the low
 * byte of a window number and an HMAC of the whole number and the address under a key of this
 * process: nothing is stored per address, so a flood of challenges costs no memory.
 */
export function createAddressValidator(nowMs: () => number, key: Buffer = randomBytes(32)): AddressValidator {
  const mac = (address: string, window: number) =>
    createHmac('sha256', key).update(`${window} ${address}`).digest().subarray(0, MAC_BYTES);
  const windowOf = () => Math.floor(nowMs() / WINDOW_MS);

  return {
    challenge(address) {
      const window = windowOf();
      return Buffer.concat([Buffer.from([window & 0xff]), mac(address, window)]);
    },
    verify(address, echo) {
      if (echo === undefined || echo.length !== 1 + MAC_BYTES) return false;
      const now = windowOf();
      for (const window of [now, now - 1]) {
        if ((window & 0xff) === echo[0] && timingSafeEqual(mac(address, window), echo.subarray(1))) return true;
      }
      return false;
    },
  };
}
