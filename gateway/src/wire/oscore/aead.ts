import { createCipheriv, createDecipheriv, type DecipherCCM } from 'node:crypto';

/** AES-CCM-16-64-128: an 8-byte tag after the ciphertext (COSE puts it there, RFC 9053 section 4.2). */
export const TAG_BYTES = 8;
/** A 13-byte nonce leaves CCM a 2-byte length field: at most 65535 bytes of plaintext (RFC 3610 section 2). */
export const MAX_PLAINTEXT_BYTES = 65_535;
const CIPHER = 'aes-128-ccm';

/** Encrypts and tags: ciphertext || tag. */
export function sealAesCcm(key: Buffer, nonce: Buffer, aad: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad, { plaintextLength: plaintext.length });
  const ciphertext = cipher.update(plaintext);
  cipher.final();
  return Buffer.concat([ciphertext, cipher.getAuthTag()]);
}

/**
 * The plaintext, or undefined when the tag does not verify (or the input cannot be a CCM
 * output at all). node:crypto reports a bad tag only from final(), after update() has run, so
 * update()'s output is handed out only once final() has passed: nothing of a forged or altered
 * message ever leaves this function.
 */
export function openAesCcm(key: Buffer, nonce: Buffer, aad: Buffer, sealed: Buffer): Buffer | undefined {
  if (sealed.length < TAG_BYTES) return undefined;
  const ciphertextLength = sealed.length - TAG_BYTES;
  try {
    const decipher = createDecipheriv(CIPHER, key, nonce, { authTagLength: TAG_BYTES });
    decipher.setAuthTag(sealed.subarray(ciphertextLength));
    decipher.setAAD(aad, { plaintextLength: ciphertextLength });
    const plaintext = decipher.update(sealed.subarray(0, ciphertextLength));
    return finalPasses(decipher) ? plaintext : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether the tag verified. node:crypto says no by throwing, with a stack trace nobody reads;
 * a forged datagram is the attacker's to send as often as it likes, so the trace (a few
 * microseconds each) is not captured. Synchronous: nothing else runs before the limit is back.
 */
function finalPasses(decipher: DecipherCCM): boolean {
  const traceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    decipher.final();
    return true;
  } catch {
    return false;
  } finally {
    Error.stackTraceLimit = traceLimit;
  }
}
