import { generate, parse } from 'coap-packet';
import { optionNumber } from '../option-number.ts';
import { MAX_PLAINTEXT_BYTES } from './aead.ts';
import { codeByte, type CoapMessage, type CoapOption } from './coap-message.ts';

/**
 * The plaintext (RFC 8613 section 5.3, Figure 9) is a CoAP message without its first byte
 * (version, type, token length), Message ID and token: the code, the inner options (deltas from
 * the previous inner option) and, if there is a payload, 0xff and the payload. That is exactly
 * what coap-packet writes after a 4-byte header for a message with an empty token, so it does
 * the option encoding both ways.
 */

const EMPTY = Buffer.alloc(0);
/** Version 1, CON, token length 0: the header coap-packet needs in front of a plaintext to parse it. */
const HEADER_BYTE = 0x40;
/** The 4-byte header less the code byte, which the plaintext keeps. */
const HEADER_REST = 3;


/** Section 5.3. `options` are the inner ones only (see splitOptions); TypeError for a code that cannot be protected. */
export function encodePlaintext(message: CoapMessage): Buffer {
  if (codeByte(message.code) === 0) throw new TypeError('an Empty message (0.00) is never protected');
  if (!Buffer.isBuffer(message.payload)) throw new TypeError('the payload must be a Buffer');
  let datagram: Buffer;
  try {
    datagram = generate({
      code: message.code,
      messageId: 0,
      token: EMPTY,
      confirmable: true,
      options: message.options.map((option) => ({ name: option.number, value: option.value })),
      payload: message.payload,
    }, MAX_PLAINTEXT_BYTES + HEADER_REST);
  } catch {
    throw new TypeError(`the plaintext would exceed AES-CCM's ${MAX_PLAINTEXT_BYTES} bytes, or an option is longer than CoAP allows`);
  }
  // The code is byte 1; writing it over byte 3 (the Message ID's low byte) makes the plaintext
  // one view of the datagram, with no copy.
  datagram[HEADER_REST] = datagram[1]!;
  return datagram.subarray(HEADER_REST);
}

/**
 * The message in a plaintext, or undefined when it is none: empty, code 0.00, an option whose
 * delta or length is malformed or runs past the end, a payload marker with no payload after it
 * (RFC 7252 section 3). Options come in the order sent; values and payload are views of a copy
 * of the plaintext.
 */
export function decodePlaintext(plaintext: Buffer): CoapMessage | undefined {
  if (plaintext.length === 0 || plaintext[0] === 0) return undefined;
  const framed = Buffer.allocUnsafe(HEADER_REST + plaintext.length);
  framed[0] = HEADER_BYTE;
  framed[1] = plaintext[0]!;
  framed[2] = 0;
  plaintext.copy(framed, HEADER_REST);
  let packet: ReturnType<typeof parse>;
  try {
    packet = parse(framed);
    // coap-packet stops quietly at the end: an option running past it, or a payload marker with
    // nothing after it, leaves an empty payload. Only then can the bytes differ from their own
    // re-encoding, so only then is it checked that way.
    if (packet.payload.length === 0) {
      const again = generate({ ...packet, options: packet.options.slice() }, framed.length);
      if (!again.equals(framed)) return undefined;
    }
  } catch {
    return undefined;
  }
  const options: CoapOption[] = packet.options.map((option) => ({ number: optionNumber(option.name), value: option.value }));
  return { code: packet.code, options, payload: packet.payload };
}
