import type { RequestBinding } from './external-aad.ts';

/**
 * The failures of OSCORE processing (RFC 8613 section 8.2), one row each: the CoAP code the
 * answer carries, whether that answer can itself be protected, and the diagnostic text the RFC
 * suggests (ours for the one it has no text for). Section 8.3: the errors of steps 2, 3 and 6 (a COSE object that does not decode, no
 * context, a replay, a failed decryption) go out as plain CoAP, since there is no verified
 * request to bind a protected answer to; an inner message that decrypted but does not parse is
 * CoAP processing of a verified request (step 8), so its answer is protected like any other.
 * Outer Max-Age 0 (section 4.1.3.1) suits every unprotected one: no cache can ever reuse it.
 */
export const OSCORE_ERRORS = {
  /** Section 8.2 step 2: the OSCORE option (or a request's missing kid, Partial IV or payload) does not decode. */
  malformed_option: { coap: '4.02', protectedAnswer: false, diagnostic: 'Failed to decode COSE' },
  /** Section 8.2 step 2: no Recipient Context for the kid (the caller's lookup says so). */
  unknown_context: { coap: '4.01', protectedAnswer: false, diagnostic: 'Security context not found' },
  /** Section 8.2 step 6: the tag did not verify under this context's key, nonce and AAD. */
  decrypt_failed: { coap: '4.00', protectedAnswer: false, diagnostic: 'Decryption failed' },
  /** Section 7.4: the Partial IV was seen before or is older than the replay window (the caller's window says so). */
  replay: { coap: '4.01', protectedAnswer: false, diagnostic: 'Replay detected' },
  /** Section 8.2 step 8: the plaintext verified but is no CoAP message of the expected kind. */
  malformed_plaintext: { coap: '4.00', protectedAnswer: true, diagnostic: 'Malformed inner message' },
} as const satisfies Record<string, { coap: string; protectedAnswer: boolean; diagnostic: string }>;

export type OscoreErrorCode = keyof typeof OSCORE_ERRORS;

/**
 * A refusal caused by the peer's bytes (never by the caller's misuse, which is a TypeError). Its
 * message is fixed text: it names no byte of the datagram, so it may go to a log line as it is.
 */
export class OscoreError extends Error {
  readonly code: OscoreErrorCode;
  /** For 'malformed_plaintext' only: the request verified, so the caller can protect its answer and must count its sequence number as seen. */
  readonly request: RequestBinding | undefined;
  readonly sequenceNumber: number | undefined;

  constructor(code: OscoreErrorCode, verified?: { request: RequestBinding; sequenceNumber?: number }) {
    // No stack trace: it is the peer's bytes, not a bug, so a trace says nothing, and capturing
    // one is most of an Error's cost (several microseconds), which a flood of forged datagrams
    // would otherwise buy from the gateway at will.
    const traceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`OSCORE: ${OSCORE_ERRORS[code].diagnostic.toLowerCase()}`);
    Error.stackTraceLimit = traceLimit;
    this.name = 'OscoreError';
    this.code = code;
    this.request = verified?.request;
    this.sequenceNumber = verified?.sequenceNumber;
  }

  /** The CoAP response code section 8.2 gives this failure. */
  get coapCode(): string {
    return OSCORE_ERRORS[this.code].coap;
  }
}
