import { MAX_PARTIAL_IV_BYTES } from './partial-iv.ts';

/** AES-CCM-16-64-128 (COSE alg 10): a 13-byte nonce, so the Common IV is 13 bytes too (RFC 8613 section 5). */
export const NONCE_BYTES = 13;
/** Section 5.2: an id fills the nonce less the S byte and the 5 Partial IV bytes, so Sender IDs are at most 7 bytes. */
export const MAX_ID_BYTES = NONCE_BYTES - 1 - MAX_PARTIAL_IV_BYTES;

/**
 * Section 5.2, Figure 8: the length S of ID_PIV, ID_PIV left-padded to 7 bytes, the Partial IV
 * left-padded to 5 bytes, all XORed with the Common IV. ID_PIV is the Sender ID of the endpoint
 * that made the Partial IV: the client's for a request and for an answer that reuses the
 * request's nonce, the server's for an answer with a Partial IV of its own.
 */
export function aeadNonce(commonIv: Buffer, idPiv: Buffer, partialIv: Buffer): Buffer {
  if (commonIv.length !== NONCE_BYTES || idPiv.length > MAX_ID_BYTES || partialIv.length > MAX_PARTIAL_IV_BYTES) {
    throw new TypeError('a nonce takes a 13-byte Common IV, an id of at most 7 bytes and a Partial IV of at most 5');
  }
  const nonce = Buffer.alloc(NONCE_BYTES);
  nonce[0] = idPiv.length;
  idPiv.copy(nonce, 1 + MAX_ID_BYTES - idPiv.length);
  partialIv.copy(nonce, NONCE_BYTES - partialIv.length);
  for (let i = 0; i < NONCE_BYTES; i += 1) nonce[i] = nonce[i]! ^ commonIv[i]!;
  return nonce;
}
