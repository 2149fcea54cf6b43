import { sign, verify, type KeyObject } from 'node:crypto';
import type { SigningAlg } from '../../config/index.ts';
import { decodeCbor, encodeCbor } from '../../wire/index.ts';

/**
 * COSE_Sign1 (RFC 9052 section 4.2) over node:crypto and the wire's CBOR settings. No COSE
 * library fitted: cose-kit and @auth0/cose pull in jose 4 (we use 6), a WebCrypto polyfill and
 * an X.509 stack for mdoc; cose-js signs with `elliptic` and has no EdDSA. What is here is the
 * structure only: the signatures are node:crypto's (ECDSA P-256 with SHA-256 in IEEE P1363 form,
 * as RFC 9053 section 2.1 requires, and Ed25519).
 */

/** RFC 9053 section 2: the COSE algorithm ids of our two signing algorithms. */
export const CoseAlg = { ES256: -7, EdDSA: -8 } as const satisfies Record<SigningAlg, number>;
/** RFC 9052 section 3.1 header labels. */
export const CoseHeader = { alg: 1, kid: 4 } as const;
/** RFC 9052 section 2: the CBOR tag of a COSE_Sign1. */
export const COSE_SIGN1_TAG = 18;

/** A COSE_Sign1 that parsed; nothing in it is verified yet. */
export interface CoseSign1 {
  alg: SigningAlg;
  kid: Buffer;
  /** The protected header exactly as sent: the signature covers these bytes. */
  protectedBytes: Buffer;
  payload: Buffer;
  signature: Buffer;
}

/** Why a COSE_Sign1 was refused before any signature work; the message names no bytes of it. */
export class CoseFormatError extends Error {}

/** Both algorithms give 64-byte signatures (r || s for ES256, RFC 9053 section 2.1). */
const SIGNATURE_BYTES = 64;
const TAG_BYTE = 0xc0 | COSE_SIGN1_TAG; // d2: major type 6, tag 18
const ARRAY_OF_4 = 0x84;
const ALG_BY_ID = new Map<number, SigningAlg>(Object.entries(CoseAlg).map(([name, id]) => [id, name as SigningAlg]));
const EMPTY = Buffer.alloc(0);

/** RFC 9052 section 4.4: what is signed. */
function toBeSigned(protectedBytes: Uint8Array, externalAad: Uint8Array, payload: Uint8Array): Buffer {
  return encodeCbor(['Signature1', Buffer.from(protectedBytes), Buffer.from(externalAad), Buffer.from(payload)]);
}

function rawSign(alg: SigningAlg, data: Buffer, key: KeyObject): Buffer {
  return alg === 'ES256' ? sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' }) : sign(null, data, key);
}

/**
 * A tagged COSE_Sign1 of `payload`: protected header `{1: alg}`, unprotected `{4: kid}`.
 * `externalAad` is signed but not sent (RFC 9052 section 4.3): both sides must know it.
 */
export function signCoseSign1(payload: Uint8Array, key: { alg: SigningAlg; kid: Uint8Array; privateKey: KeyObject },
  externalAad: Uint8Array = EMPTY): Buffer {
  const protectedBytes = encodeCbor(new Map([[CoseHeader.alg, CoseAlg[key.alg]]]));
  const signature = rawSign(key.alg, toBeSigned(protectedBytes, externalAad, payload), key.privateKey);
  const body = encodeCbor([protectedBytes, new Map([[CoseHeader.kid, Buffer.from(key.kid)]]), Buffer.from(payload), signature]);
  return Buffer.concat([Buffer.of(TAG_BYTE), body]);
}

/**
 * Parses a COSE_Sign1 strictly, so that one message has one spelling (each other spelling would
 * be a cache miss and a fresh signature check, and the unprotected header is not signed):
 * exactly tag 18 (no other tag, none nested, not untagged), an array of exactly 4, a protected
 * header that is exactly `{1: alg}` with alg ES256 or EdDSA, an unprotected header that is
 * exactly `{4: kid}`, a byte-string payload, a 64-byte signature, every length in its shortest
 * form and no trailing bytes.
 */
export function decodeCoseSign1(bytes: Uint8Array): CoseSign1 {
  if (bytes.length < 2 || bytes[0] !== TAG_BYTE) throw new CoseFormatError('not a tagged COSE_Sign1 (tag 18)');
  if (bytes[1] !== ARRAY_OF_4) throw new CoseFormatError('a COSE_Sign1 is an array of 4');
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.length - 1);
  let value: unknown;
  try {
    value = decodeCbor(body);
  } catch {
    throw new CoseFormatError('malformed CBOR or trailing bytes');
  }
  const [protectedBytes, unprotected, payload, signature] = value as unknown[];
  if (!(protectedBytes instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw new CoseFormatError('protected header, payload and signature must be byte strings');
  }
  if (!(unprotected instanceof Map) || unprotected.size !== 1 || !(unprotected.get(CoseHeader.kid) instanceof Uint8Array)) {
    throw new CoseFormatError('the unprotected header must be exactly {4: kid}');
  }
  let header: unknown;
  try {
    header = decodeCbor(protectedBytes);
  } catch {
    throw new CoseFormatError('the protected header is not CBOR');
  }
  const algId = header instanceof Map && header.size === 1 ? header.get(CoseHeader.alg) : undefined;
  const alg = typeof algId === 'number' ? ALG_BY_ID.get(algId) : undefined;
  // Signed, but still one spelling: no longer head, no label twice, no float for the alg.
  if (alg === undefined || !encodeCbor(new Map([[CoseHeader.alg, algId]])).equals(protectedBytes)) {
    throw new CoseFormatError('the protected header must be exactly {1: -7} or {1: -8}');
  }
  if (signature.length !== SIGNATURE_BYTES) throw new CoseFormatError(`a signature of ${signature.length} bytes`);
  const kid = Buffer.from(unprotected.get(CoseHeader.kid) as Uint8Array);
  const parsed: CoseSign1 = {
    alg, kid, protectedBytes: Buffer.from(protectedBytes), payload: Buffer.from(payload), signature: Buffer.from(signature),
  };
  // cbor-x writes the shortest form: whatever does not come back byte for byte was spelled otherwise.
  const again = encodeCbor([parsed.protectedBytes, new Map([[CoseHeader.kid, kid]]), parsed.payload, parsed.signature]);
  if (!again.equals(body)) throw new CoseFormatError('not in the shortest CBOR form');
  return parsed;
}

/** Checks the signature with `publicKey` (whose algorithm the caller matched to `message.alg`). */
export function verifyCoseSign1(message: CoseSign1, publicKey: KeyObject, externalAad: Uint8Array = EMPTY): boolean {
  const data = toBeSigned(message.protectedBytes, externalAad, message.payload);
  try {
    return message.alg === 'ES256'
      ? verify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, message.signature)
      : verify(null, data, publicKey, message.signature);
  } catch {
    return false; // a key of the other type
  }
}
