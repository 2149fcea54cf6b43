import { hash } from 'node:crypto';
import { newCti } from './cwt.ts';

/** Bytes of a record id's tag in a JWT's jti. */
const RECORD_TAG_BYTES = 4;
const CTI_BYTES = 12;
/** A compact JWT's jti: the CWT's cti (family, issue second), then the device record's tag. */
export const JTI_BYTES = CTI_BYTES + RECORD_TAG_BYTES;

/**
 * The first 4 bytes of SHA-256 of a device record's id. A compact JWT carries it in its jti
 * (a JWT has no external AAD to sign the whole id without sending it, as a CWT does): a token of
 * an earlier record of its device matches the new record's tag once in 4 billion, and only
 * until it expires.
 */
export function recordTag(recordId: string): Buffer {
  return hash('sha256', recordId, 'buffer').subarray(0, RECORD_TAG_BYTES);
}

/** A compact JWT's jti (base64url, 22 characters): family, issue second and record tag in 16 bytes. */
export function newJti(family: string, iatSec: number, recordId: string): string {
  return Buffer.concat([newCti(family, iatSec), recordTag(recordId)]).toString('base64url');
}

export interface JtiParts {
  family: string;
  iatSec: number;
  recordTag: Buffer;
}

/** The parts of a compact JWT's jti; undefined for any other (an older token's 12 random bytes). */
export function readJti(jti: string): JtiParts | undefined {
  const bytes = Buffer.from(jti, 'base64url');
  if (bytes.length !== JTI_BYTES || bytes.toString('base64url') !== jti) return undefined;
  return {
    family: bytes.subarray(0, 8).toString('base64url'),
    iatSec: bytes.readUInt32BE(8),
    recordTag: bytes.subarray(CTI_BYTES),
  };
}
