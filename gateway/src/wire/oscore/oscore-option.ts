import { OscoreError } from './oscore-error.ts';
import { MAX_PARTIAL_IV_BYTES } from './partial-iv.ts';

/** RFC 8613 section 2: the OSCORE option (critical, safe to forward, not repeatable, 0-255 bytes). */
export const OSCORE_OPTION = 9;
const MAX_OPTION_BYTES = 255;

/** Section 6.1, Figure 10: the flag byte. */
const PIV_LENGTH_MASK = 0x07;
const KID_FLAG = 0x08;
const KID_CONTEXT_FLAG = 0x10;
/** Bits 0-2 (0x80 the extension flag byte of a future document, 0x40 reserved, 0x20 unassigned): none is ours to read. */
const RESERVED_FLAGS = 0xe0;

/** The compressed COSE header parameters of the option value; each is present only when its flag or length says so. */
export interface OscoreOption {
  readonly partialIv?: Buffer;
  readonly kid?: Buffer;
  readonly kidContext?: Buffer;
}

const malformed = (): OscoreError => new OscoreError('malformed_option');

/**
 * Decompresses an option value (section 6.1). The fields are views of `value`, not copies.
 * Throws OscoreError('malformed_option') for what section 8.2 step 2 calls a failed
 * decompression: a value that is one 0x00 (all flags zero SHALL be the empty value, section 2),
 * a reserved flag bit, a Partial IV length of 6 or 7, a length that runs past the value, bytes
 * after the last field, a value over 255 bytes. The empty value is a valid option: no Partial
 * IV, no kid (a response that reuses the request's nonce).
 */
export function readOscoreOption(value: Uint8Array): OscoreOption {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length);
  if (bytes.length === 0) return {};
  if (bytes.length > MAX_OPTION_BYTES) throw malformed();
  const flags = bytes[0]!;
  if (flags === 0 || (flags & RESERVED_FLAGS) !== 0) throw malformed();
  const pivLength = flags & PIV_LENGTH_MASK;
  if (pivLength > MAX_PARTIAL_IV_BYTES) throw malformed();
  let at = 1;
  let partialIv: Buffer | undefined;
  if (pivLength > 0) {
    if (at + pivLength > bytes.length) throw malformed();
    partialIv = bytes.subarray(at, at + pivLength);
    at += pivLength;
  }
  let kidContext: Buffer | undefined;
  if ((flags & KID_CONTEXT_FLAG) !== 0) {
    if (at >= bytes.length) throw malformed();
    const length = bytes[at]!;
    at += 1;
    if (at + length > bytes.length) throw malformed();
    kidContext = bytes.subarray(at, at + length);
    at += length;
  }
  // The kid is the rest of the value, so it is the last field (section 6.1); without the kid
  // flag nothing may follow.
  let kid: Buffer | undefined;
  if ((flags & KID_FLAG) !== 0) kid = bytes.subarray(at);
  else if (at !== bytes.length) throw malformed();
  return {
    ...(partialIv === undefined ? {} : { partialIv }),
    ...(kid === undefined ? {} : { kid }),
    ...(kidContext === undefined ? {} : { kidContext }),
  };
}

/** Compresses the header parameters into an option value (section 6.1); nothing present is the empty value. */
export function writeOscoreOption(option: OscoreOption): Buffer {
  const { partialIv, kid, kidContext } = option;
  if (partialIv !== undefined && (partialIv.length === 0 || partialIv.length > MAX_PARTIAL_IV_BYTES)) {
    throw new TypeError('a Partial IV is 1 to 5 bytes');
  }
  if (kidContext !== undefined && kidContext.length > 255) throw new TypeError('a kid context is at most 255 bytes');
  const pivLength = partialIv?.length ?? 0;
  const flags = pivLength | (kid === undefined ? 0 : KID_FLAG) | (kidContext === undefined ? 0 : KID_CONTEXT_FLAG);
  if (flags === 0) return Buffer.alloc(0);
  const length = 1 + pivLength + (kidContext === undefined ? 0 : 1 + kidContext.length) + (kid?.length ?? 0);
  if (length > MAX_OPTION_BYTES) throw new TypeError('an OSCORE option value is at most 255 bytes');
  const value = Buffer.allocUnsafe(length);
  value[0] = flags;
  let at = 1;
  if (partialIv !== undefined) at += partialIv.copy(value, at);
  if (kidContext !== undefined) {
    value[at] = kidContext.length;
    at += 1 + kidContext.copy(value, at + 1);
  }
  if (kid !== undefined) kid.copy(value, at);
  return value;
}
