/**
 * The Partial IV: a Sender Sequence Number in network byte order, leading zero bytes removed,
 * 0 as the single byte 0x00 (RFC 8613 section 5). At most 5 bytes (section 6.1), so sequence
 * numbers stay below 2^40 (section 7.2.1): well inside a double's exact integers (2^53), which
 * is why they are plain numbers here, handled with arithmetic, never with 32-bit bit operators.
 */

export const MAX_PARTIAL_IV_BYTES = 5;
/** Section 7.2.1: the Sender Sequence Number SHALL be less than 2^40. */
export const MAX_SEQUENCE_NUMBER = 2 ** 40 - 1;

/** The Partial IV of a sequence number; TypeError outside 0..2^40-1 (a context that far has to be replaced, not wrapped). */
export function partialIvOf(sequenceNumber: number): Buffer {
  if (!Number.isSafeInteger(sequenceNumber) || sequenceNumber < 0 || sequenceNumber > MAX_SEQUENCE_NUMBER) {
    throw new TypeError(`a sender sequence number is an integer from 0 to 2^40 - 1, not ${String(sequenceNumber).slice(0, 24)}`);
  }
  let length = 1;
  for (let rest = Math.floor(sequenceNumber / 256); rest > 0; rest = Math.floor(rest / 256)) length += 1;
  const bytes = Buffer.allocUnsafe(length);
  let rest = sequenceNumber;
  for (let i = length - 1; i >= 0; i -= 1) {
    bytes[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return bytes;
}

/** The sequence number a Partial IV of 1 to 5 bytes carries (a leading zero byte changes nothing). */
export function sequenceNumberOf(partialIv: Uint8Array): number {
  let n = 0;
  for (const byte of partialIv) n = n * 256 + byte;
  return n;
}
