import { openAesCcm, sealAesCcm } from './aead.ts';
import { codeByte, isRequestCode, type CoapMessage, type ProtectedMessage } from './coap-message.ts';
import { aeadAad, type RequestBinding } from './external-aad.ts';
import { aeadNonce } from './nonce.ts';
import { splitOptions, withOscoreOption } from './option-classes.ts';
import { OscoreError } from './oscore-error.ts';
import { writeOscoreOption, type OscoreOption } from './oscore-option.ts';
import { partialIvOf, sequenceNumberOf } from './partial-iv.ts';
import { decodePlaintext, encodePlaintext } from './plaintext.ts';
import type { SecurityContext } from './security-context.ts';

const OBSERVE = 6;
const PROXY_URI = 35;
/** Section 4.2: the outer code of a request is POST, or FETCH when it has an Observe (section 4.1.3.5: POST with Observe is not defined). */
const OUTER_CODE = { plain: '0.02', observe: '0.05' } as const;

export interface ProtectedRequest extends ProtectedMessage {
  /** What the response to this request is verified against: keep it until the last response. */
  request: RequestBinding;
}

export interface UnprotectedRequest {
  /** The decrypted code, inner options and payload; the caller joins the outer Class U options (decryptedOptions). */
  message: CoapMessage;
  /** The request's Sender Sequence Number: check it against the replay window, and accept it there, before acting. */
  sequenceNumber: number;
  request: RequestBinding;
}

/**
 * The client's side (RFC 8613 section 8.1): protects `message` with the Sender Context under
 * `senderSequenceNumber`, which the caller must never use twice with this context (the nonce
 * is built from it: a reused one gives away plaintext and the key's integrity). The kid context
 * goes in the option whenever the context has an ID Context, so that the server can find it.
 * TypeError for misuse: a sequence number outside 0..2^40-1, a code that is no request code, an
 * OSCORE option in the message, a Proxy-Uri (section 4.1.3.3: the caller splits it into
 * Proxy-Scheme and Uri-* first, or its path and query would travel in clear).
 */
export function protectRequest(ctx: SecurityContext, senderSequenceNumber: number, message: CoapMessage): ProtectedRequest {
  const partialIv = partialIvOf(senderSequenceNumber);
  if (!isRequestCode(codeByte(message.code))) throw new TypeError('protectRequest takes a request (code 0.01-0.31)');
  if (message.options.some((option) => option.number === PROXY_URI)) {
    throw new TypeError('a Proxy-Uri must be split into Proxy-Scheme, Uri-Host, Uri-Port, Uri-Path and Uri-Query before protection');
  }
  const { inner, outer } = splitOptions(message.options, 'request');
  const request: RequestBinding = { kid: ctx.senderId, partialIv };
  const plaintext = encodePlaintext({ code: message.code, options: inner, payload: message.payload });
  const nonce = aeadNonce(ctx.commonIv, ctx.senderId, partialIv);
  const payload = sealAesCcm(ctx.senderKey, nonce, aeadAad(request), plaintext);
  const option = writeOscoreOption({
    partialIv, kid: ctx.senderId, ...(ctx.idContext === undefined ? {} : { kidContext: ctx.idContext }),
  });
  const observed = inner.some((o) => o.number === OBSERVE);
  return { outerCode: observed ? OUTER_CODE.observe : OUTER_CODE.plain, outerOptions: withOscoreOption(outer, option), payload, request };
}

/**
 * The server's side (section 8.2 steps 2 and 4-7) for a request whose option the caller has
 * read (readOscoreOption) and whose context it has found by the kid: decrypts and verifies.
 * Replay is the caller's (steps 3 and 6, "update the Replay Window"): the window lives where
 * the caller keeps it, and the check and the update are one step there.
 *
 * Throws OscoreError only:
 * - 'malformed_option': no Partial IV or no kid (both SHALL be in a request, section 5), or no
 *   payload (section 2: an OSCORE message without payload is malformed);
 * - 'decrypt_failed': the kid or kid context is not this context's, or the tag does not verify
 *   (the kid context is no input of the AEAD, so it is compared here: a request naming another
 *   ID Context is not this context's, whatever its tag says). Nothing decrypted is returned or kept;
 * - 'malformed_plaintext': it verified, but the plaintext is no request; the error carries the
 *   binding and the sequence number, since the answer is protected and the number is spent.
 */
export function unprotectRequest(ctx: SecurityContext, option: OscoreOption, ciphertext: Buffer): UnprotectedRequest {
  const { partialIv, kid, kidContext } = option;
  if (partialIv === undefined || kid === undefined || ciphertext.length === 0) throw new OscoreError('malformed_option');
  if (!kid.equals(ctx.recipientId)) throw new OscoreError('decrypt_failed');
  if (kidContext !== undefined && (ctx.idContext === undefined || !kidContext.equals(ctx.idContext))) {
    throw new OscoreError('decrypt_failed');
  }
  const request: RequestBinding = { kid, partialIv };
  const nonce = aeadNonce(ctx.commonIv, kid, partialIv);
  const plaintext = openAesCcm(ctx.recipientKey, nonce, aeadAad(request), ciphertext);
  if (plaintext === undefined) throw new OscoreError('decrypt_failed');
  const sequenceNumber = sequenceNumberOf(partialIv);
  const message = decodePlaintext(plaintext);
  if (message === undefined || !isRequestCode(codeByte(message.code))) {
    throw new OscoreError('malformed_plaintext', { request, sequenceNumber });
  }
  return { message, sequenceNumber, request };
}
