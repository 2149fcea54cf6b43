// The fixed 4-byte CoAP header (RFC 7252 section 3), written by hand where a codec would hide the
// bytes: Ver (2 bits) | Type (2 bits) | Token Length (4 bits), then Code, then the Message ID.

export const HEADER_BYTES = 4;

/** RFC 7252 section 3: the Type field. */
export const MessageType = { con: 0, non: 1, ack: 2, rst: 3 } as const;

/**
 * Writes a header into the first four bytes of `into` and returns `into`. Any field value is
 * written as given, a version other than 1 included, so that tests can build what a peer must drop.
 */
export function writeHeader(into: Buffer, type: number, tokenLength: number, code: number, messageId: number, version = 1): Buffer {
  into[0] = (version << 6) | (type << 4) | tokenLength;
  into[1] = code;
  into.writeUInt16BE(messageId, 2);
  return into;
}
