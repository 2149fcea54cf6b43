import { hkdfSync } from 'node:crypto';
import { encodeCbor } from '../cbor.ts';
import { AES_CCM_16_64_128 } from './external-aad.ts';
import { MAX_ID_BYTES, NONCE_BYTES } from './nonce.ts';

/** AES-CCM-16-64-128's key length (RFC 9053 section 4.2). */
export const KEY_BYTES = 16;
/** Section 6.1: the kid context's length is one byte. */
const MAX_ID_CONTEXT_BYTES = 255;

/** The preestablished input of RFC 8613 section 3.2; AEAD and HKDF are the defaults (AES-CCM-16-64-128, HKDF SHA-256). */
export interface SecurityContextInput {
  masterSecret: Uint8Array;
  /** Default: the empty byte string (which HKDF takes as 32 zero bytes, RFC 5869 section 2.2). */
  masterSalt?: Uint8Array;
  senderId: Uint8Array;
  recipientId: Uint8Array;
  /** Absent is nil in the derivation, which is not the same as an empty ID Context. */
  idContext?: Uint8Array;
}

/**
 * The fixed part of a security context (section 3.1): derived once, then only read, so one
 * object serves every message of the context. The mutable parts (the Sender Sequence Number,
 * the Replay Window) are the caller's, since where they live (memory, the store) is its choice.
 */
export interface SecurityContext {
  readonly senderId: Buffer;
  readonly recipientId: Buffer;
  readonly idContext: Buffer | undefined;
  readonly senderKey: Buffer;
  readonly recipientKey: Buffer;
  readonly commonIv: Buffer;
}

/**
 * Section 3.2.1: info = [id, id_context / nil, alg_aead, type, L] as CBOR. The id is the Sender
 * or Recipient ID for the keys and the empty byte string for the Common IV.
 */
export function derivationInfo(id: Buffer, idContext: Buffer | undefined, type: 'Key' | 'IV', length: number): Buffer {
  return encodeCbor([id, idContext ?? null, AES_CCM_16_64_128, type, length]);
}

/** A copy as a Buffer: cbor-x writes a plain Uint8Array as a tagged typed array, not as a byte string. */
function bytesOf(name: string, value: unknown, maxBytes: number): Buffer {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${name} must be a Buffer or Uint8Array`);
  if (value.length > maxBytes) throw new TypeError(`${name} is at most ${maxBytes} bytes, not ${value.length}`);
  return Buffer.from(value);
}

/** Section 3.2: Sender Key, Recipient Key and Common IV by HKDF SHA-256 (salt = Master Salt, IKM = Master Secret). */
export function deriveContext(input: SecurityContextInput): SecurityContext {
  const masterSecret = bytesOf('masterSecret', input.masterSecret, Number.MAX_SAFE_INTEGER);
  if (masterSecret.length === 0) throw new TypeError('masterSecret must not be empty');
  const masterSalt = input.masterSalt === undefined ? Buffer.alloc(0) : bytesOf('masterSalt', input.masterSalt, Number.MAX_SAFE_INTEGER);
  // Section 3.3: an id longer than the nonce allows cannot be placed in a nonce (section 5.2).
  const senderId = bytesOf('senderId', input.senderId, MAX_ID_BYTES);
  const recipientId = bytesOf('recipientId', input.recipientId, MAX_ID_BYTES);
  const idContext = input.idContext === undefined ? undefined : bytesOf('idContext', input.idContext, MAX_ID_CONTEXT_BYTES);
  // Equal ids would give both directions the same key and the same nonces: every message of
  // one side would be a nonce reuse of the other's.
  if (senderId.equals(recipientId)) throw new TypeError('senderId and recipientId must differ');

  const derive = (id: Buffer, type: 'Key' | 'IV', length: number): Buffer =>
    Buffer.from(hkdfSync('sha256', masterSecret, masterSalt, derivationInfo(id, idContext, type, length), length));
  return Object.freeze({
    senderId,
    recipientId,
    idContext,
    senderKey: derive(senderId, 'Key', KEY_BYTES),
    recipientKey: derive(recipientId, 'Key', KEY_BYTES),
    commonIv: derive(Buffer.alloc(0), 'IV', NONCE_BYTES),
  });
}
