import { generate, parse, type ParsedPacket } from 'coap-packet';

/** Why a datagram got no answer (or only an RST); the label of coap_gateway_datagrams_dropped_total. */
export type DropReason =
  | 'short'
  | 'version'
  | 'format'
  | 'empty_non'
  | 'stray_ack'
  | 'stray_reset'
  | 'response'
  | 'duplicate_non'
  | 'internal';

export type Datagram =
  | { kind: 'drop'; reason: DropReason }
  /** RFC 7252 section 4.2: a confirmable message the endpoint cannot process is rejected with a matching RST. */
  | { kind: 'reject'; reason: DropReason; messageId: number }
  | { kind: 'ping'; messageId: number }
  | { kind: 'ack'; messageId: number }
  | { kind: 'reset'; messageId: number }
  | { kind: 'request'; packet: ParsedPacket };

const CON = 0;
const ACK = 2;
const MAX_DATAGRAM_BYTES = 65_535;

/**
 * Classifies one datagram (RFC 7252 sections 3 and 4) before any work is spent on it. coap-packet
 * parses; this decides what the endpoint may answer: nothing to a wrong version, a short datagram,
 * an ACK or an RST (section 4.2: never answered); an RST to a confirmable message with a format
 * error; only well-formed requests go further.
 */
export function decodeDatagram(datagram: Buffer): Datagram {
  if (datagram.length < 4) return { kind: 'drop', reason: 'short' };
  const first = datagram[0]!;
  // Section 3: a message with an unknown version number MUST be silently ignored.
  if (first >> 6 !== 1) return { kind: 'drop', reason: 'version' };
  const type = (first >> 4) & 0x03;
  const tokenLength = first & 0x0f;
  const code = datagram[1]!;
  const messageId = datagram.readUInt16BE(2);
  const empty = code === 0;
  // An Empty message is exactly the 4-byte header (section 4.1); lengths 9-15 are reserved (section 3),
  // and RFC 8974's extended tokens (13, 14) are not supported, which is the same answer.
  const wellFramed = tokenLength <= 8 && (!empty || (datagram.length === 4 && tokenLength === 0));

  if (type >= ACK) {
    if (!wellFramed) return { kind: 'drop', reason: 'format' };
    // The gateway never sends requests, so an ACK carrying a response answers nothing of ours.
    if (type === ACK) return empty ? { kind: 'ack', messageId } : { kind: 'drop', reason: 'stray_ack' };
    return empty ? { kind: 'reset', messageId } : { kind: 'drop', reason: 'format' };
  }
  const reject = (reason: DropReason): Datagram =>
    type === CON ? { kind: 'reject', reason, messageId } : { kind: 'drop', reason };
  if (!wellFramed) return reject('format');
  if (empty) return type === CON ? { kind: 'ping', messageId } : { kind: 'drop', reason: 'empty_non' };
  const codeClass = code >> 5;
  // A response sent to us (we are no client), or a reserved class (1, 6, 7).
  if (codeClass !== 0) return reject(codeClass === 2 || codeClass === 4 || codeClass === 5 ? 'response' : 'format');

  let packet: ParsedPacket;
  try {
    packet = parse(datagram);
  } catch {
    return reject('format');
  }
  // coap-packet stops quietly at the end of the datagram: an option whose length runs past it, or a
  // payload marker with no payload (section 3), leaves an empty payload. Only then can the message
  // differ from its own re-encoding, so only then is it checked that way.
  if (packet.payload.length === 0) {
    const again = generate({ ...packet, options: packet.options.slice() }, MAX_DATAGRAM_BYTES);
    if (!again.equals(datagram)) return reject('format');
  }
  return { kind: 'request', packet };
}
