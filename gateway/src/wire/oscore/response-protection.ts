import { openAesCcm, sealAesCcm } from './aead.ts';
import { codeByte, isResponseCode, type CoapMessage, type ProtectedMessage } from './coap-message.ts';
import { aeadAad, type RequestBinding } from './external-aad.ts';
import { aeadNonce } from './nonce.ts';
import { splitOptions, withOscoreOption } from './option-classes.ts';
import { OscoreError } from './oscore-error.ts';
import { readOscoreOption, writeOscoreOption } from './oscore-option.ts';
import { partialIvOf } from './partial-iv.ts';
import { decodePlaintext, encodePlaintext } from './plaintext.ts';
import type { SecurityContext } from './security-context.ts';

const OBSERVE = 6;
/** Section 4.2: the outer code of a response is 2.04 (Changed, not cacheable), or 2.05 with an Observe (section 4.1.3.5). */
const OUTER_CODE = { plain: '2.04', observe: '2.05' } as const;
const EMPTY = Buffer.alloc(0);

/**
 * The server's side (RFC 8613 section 8.3): protects `message` as the answer to `request`.
 * Without `own` it reuses the request's nonce (section 5.2) and the option is empty. That is
 * right only for the one answer of a request known to be fresh: a second answer (a
 * notification, another answer to a retransmission) or an answer to a request the replay window
 * could not vouch for (Appendix B.1.2's Echo challenge) MUST carry a Partial IV of the server's
 * own, `own.sequenceNumber`, which the caller must never use twice with this context.
 * TypeError for misuse: a code that is no response code, a sequence number outside 0..2^40-1,
 * an OSCORE option in the message.
 */
export function protectResponse(ctx: SecurityContext, request: RequestBinding, message: CoapMessage,
  own?: { sequenceNumber: number }): ProtectedMessage {
  const partialIv = own === undefined ? undefined : partialIvOf(own.sequenceNumber);
  if (!isResponseCode(codeByte(message.code))) throw new TypeError('protectResponse takes a response (class 2, 4 or 5)');
  const { inner, outer } = splitOptions(message.options, 'response');
  const plaintext = encodePlaintext({ code: message.code, options: inner, payload: message.payload });
  const nonce = partialIv === undefined
    ? aeadNonce(ctx.commonIv, request.kid, request.partialIv)
    : aeadNonce(ctx.commonIv, ctx.senderId, partialIv);
  const payload = sealAesCcm(ctx.senderKey, nonce, aeadAad(request), plaintext);
  const option = partialIv === undefined ? EMPTY : writeOscoreOption({ partialIv });
  const observed = inner.some((o) => o.number === OBSERVE);
  return { outerCode: observed ? OUTER_CODE.observe : OUTER_CODE.plain, outerOptions: withOscoreOption(outer, option), payload };
}

/**
 * The client's side (section 8.4 steps 2-6): verifies and decrypts the answer to `request`
 * (what protectRequest returned), with the request's nonce when the option has no Partial IV,
 * else with the server's Partial IV. The message has the inner options only (decryptedOptions
 * joins the outer ones). Throws OscoreError only: 'malformed_option' for an option value that
 * does not decompress or an empty payload, 'decrypt_failed' for a kid or kid context that is
 * not the server's or a tag that does not verify (nothing decrypted is returned),
 * 'malformed_plaintext' for a verified plaintext that is no response.
 */
export function unprotectResponse(ctx: SecurityContext, request: RequestBinding, oscoreOptionValue: Buffer,
  ciphertext: Buffer): CoapMessage {
  const { partialIv, kid, kidContext } = readOscoreOption(oscoreOptionValue);
  if (ciphertext.length === 0) throw new OscoreError('malformed_option');
  if (kid !== undefined && !kid.equals(ctx.recipientId)) throw new OscoreError('decrypt_failed');
  if (kidContext !== undefined && (ctx.idContext === undefined || !kidContext.equals(ctx.idContext))) {
    throw new OscoreError('decrypt_failed');
  }
  const nonce = partialIv === undefined
    ? aeadNonce(ctx.commonIv, request.kid, request.partialIv)
    : aeadNonce(ctx.commonIv, ctx.recipientId, partialIv);
  const plaintext = openAesCcm(ctx.recipientKey, nonce, aeadAad(request), ciphertext);
  if (plaintext === undefined) throw new OscoreError('decrypt_failed');
  const message = decodePlaintext(plaintext);
  if (message === undefined || !isResponseCode(codeByte(message.code))) throw new OscoreError('malformed_plaintext', { request });
  return message;
}
