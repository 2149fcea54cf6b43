/**
 * A CoAP message as OSCORE sees it: the request/response layer only (RFC 8613 section 4.2). The
 * messaging layer (type, Message ID, token) stays outer and is the caller's.
 */

/** One option occurrence: its number (RFC 7252 section 5.4) and its value as sent. */
export interface CoapOption {
  readonly number: number;
  readonly value: Buffer;
}

export interface CoapMessage {
  /** 'c.dd', e.g. '0.01' (GET) or '2.05' (Content). */
  readonly code: string;
  /** In the order they are sent: repeated options (Uri-Path, ETag...) keep their order. */
  readonly options: readonly CoapOption[];
  readonly payload: Buffer;
}

/** What goes on the wire in place of a message: the outer code and options, the ciphertext as payload. */
export interface ProtectedMessage {
  outerCode: string;
  /** The class U options and the OSCORE option, in number order; the caller may add outer ones of its own (an outer Max-Age). */
  outerOptions: CoapOption[];
  payload: Buffer;
}

const CODE = /^([0-7])\.([0-3]\d)$/;

/** The code byte of 'c.dd' (RFC 7252 section 3: 3 bits class, 5 bits detail); TypeError for anything else. */
export function codeByte(code: string): number {
  const match = typeof code === 'string' ? CODE.exec(code) : null;
  const detail = match === null ? 32 : Number(match[2]);
  if (match === null || detail > 31) throw new TypeError(`a CoAP code is 'c.dd' with c 0-7 and dd 00-31, not ${String(code).slice(0, 8)}`);
  return (Number(match[1]) << 5) | detail;
}

/** A request code: class 0, detail 1-31 (0.00 is the Empty message, never protected). */
export function isRequestCode(byte: number): boolean {
  return byte >> 5 === 0 && byte !== 0;
}

/** A response code: class 2, 4 or 5 (RFC 7252 section 12.1; 1, 6 and 7 are reserved, 7 is signaling on TCP). */
export function isResponseCode(byte: number): boolean {
  const codeClass = byte >> 5;
  return codeClass === 2 || codeClass === 4 || codeClass === 5;
}
