import { encodeCbor } from '../cbor.ts';

/** COSE algorithm AES-CCM-16-64-128 (RFC 9053 section 4.2): 128-bit key, 64-bit tag, 13-byte nonce. */
export const AES_CCM_16_64_128 = 10;
/** RFC 8613 section 5.4: the only OSCORE version. */
const OSCORE_VERSION = 1;
const ALGORITHMS = [AES_CCM_16_64_128];
const EMPTY = Buffer.alloc(0);

/**
 * What binds a response to its request (RFC 8613 section 7.1): the request's 'kid' (the
 * client's Sender ID) and Partial IV. Both sides keep it from the request until its last
 * response: it is in the AAD of every response, and a response without a Partial IV of its own
 * reuses the request's nonce, which is built from the same two values.
 */
export interface RequestBinding {
  readonly kid: Buffer;
  readonly partialIv: Buffer;
}

/**
 * Section 5.4: aad_array = [oscore_version, [alg_aead], request_kid, request_piv, options], the
 * same for a request and for its responses. `options` are the Class I options, of which none is
 * defined: the empty byte string.
 */
export function externalAad(request: RequestBinding): Buffer {
  return encodeCbor([OSCORE_VERSION, ALGORITHMS, request.kid, request.partialIv, EMPTY]);
}

/** RFC 9052 section 5.3: the AEAD's AAD is Enc_structure ["Encrypt0", h'' (protected, empty in OSCORE), external_aad as a bstr]. */
export function aeadAad(request: RequestBinding): Buffer {
  return encodeCbor(['Encrypt0', EMPTY, externalAad(request)]);
}
