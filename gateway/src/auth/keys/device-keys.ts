import { createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { AdminError } from '../../errors.ts';
import type { DeviceKey } from '../../store/index.ts';
import { DEVICE_KEY_ALGS } from '../login/assertion.ts';

/** A public key in a file or a request is a few hundred characters; ten times that is nobody's key. */
export const MAX_PUBLIC_KEY_CHARS = 4096;
const KID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
/** A date, or a date and time with its zone: `Date.parse` alone takes "1" for the year 2001. */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;
const PEM_PUBLIC_KEY = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\s]+-----END PUBLIC KEY-----$/;

const badKey = (message: string) => new AdminError('GW_ERR_ADMIN_BAD_KEY', message);

export interface ParseDeviceKeyOptions {
  /** ISO 8601, in the future: assertions signed by the key are refused from then on. */
  expiresAt?: string;
  now?: Date;
}

/**
 * A device's public key as an operator gives it: PEM (SubjectPublicKeyInfo, as `openssl ec -pubout`
 * and `openssl pkey -pubout` write it) or a JWK (JSON text, or an object from a request body).
 * EC P-256 (ES256) or Ed25519 (EdDSA) only; a private key is refused, since only the public half
 * goes to the gateway. The key's id is the JWK's own `kid`, else its RFC 7638 thumbprint.
 *
 * Read with node:crypto's `createPublicKey`, the import the assertion verifier does with the
 * stored JWK, so a key accepted here is one a login can use, and a refusal can name the key it got.
 */
export async function parseDevicePublicKey(input: unknown, options: ParseDeviceKeyOptions = {}): Promise<DeviceKey> {
  const now = options.now ?? new Date();
  const chars = typeof input === 'string' ? input.length : JSON.stringify(input ?? null).length;
  if (chars > MAX_PUBLIC_KEY_CHARS) throw badKey(`a public key of ${chars} characters (at most ${MAX_PUBLIC_KEY_CHARS}): not a device key`);
  const text = typeof input === 'string' ? input.trim() : undefined;
  const { key, jwk } = text !== undefined && text.startsWith('-----') ? { key: fromPem(text), jwk: undefined } : fromJwk(input, text);
  const alg = algOf(key);
  if (jwk?.alg !== undefined && jwk.alg !== alg) throw badKey(`the JWK says alg ${JSON.stringify(jwk.alg)}, but its key is ${alg}`);
  const exported = await exportJWK(key);
  const publicJwk: JWK = exported.kty === 'EC' ? { kty: 'EC', crv: exported.crv, x: exported.x, y: exported.y }
    : { kty: 'OKP', crv: exported.crv, x: exported.x };
  const ownKid = jwk?.kid;
  const kid = typeof ownKid === 'string' && KID_PATTERN.test(ownKid) ? ownKid : await calculateJwkThumbprint(publicJwk, 'sha256');
  const record: DeviceKey = { kid, alg, publicJwk, addedAt: now.toISOString() };
  if (options.expiresAt !== undefined) record.expiresAt = futureDate(options.expiresAt, now);
  return record;
}

function fromPem(text: string): KeyObject {
  if (/PRIVATE KEY-----/.test(text)) throw badKey('this is a private key: give the gateway only the public key (openssl pkey -in KEY -pubout)');
  if (/-----BEGIN CERTIFICATE-----/.test(text)) throw badKey('this is a certificate: give the device\'s public key (openssl x509 -in CERT -pubkey -noout)');
  if (!PEM_PUBLIC_KEY.test(text)) throw badKey('not a PEM public key: expected one -----BEGIN PUBLIC KEY----- block');
  try {
    return createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw badKey('a PEM public key block that holds no readable key');
  }
}

function fromJwk(input: unknown, text: string | undefined): { key: KeyObject; jwk: Record<string, unknown> } {
  let value: unknown = input;
  if (text !== undefined) {
    try {
      value = JSON.parse(text);
    } catch {
      throw badKey('neither a PEM public key nor a JWK (JSON)');
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badKey('a JWK must be a JSON object');
  const jwk = value as Record<string, unknown>;
  if (jwk.d !== undefined) throw badKey('this JWK holds a private key ("d"): give the gateway only the public key');
  try {
    return { key: createPublicKey({ key: jwk as never, format: 'jwk' }), jwk };
  } catch {
    throw badKey(`not a usable public JWK (kty ${JSON.stringify(jwk.kty)}, crv ${JSON.stringify(jwk.crv)}): devices use EC P-256 or OKP Ed25519`);
  }
}

function algOf(key: KeyObject): DeviceKey['alg'] {
  if (key.type !== 'public') throw badKey('not a public key');
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const what = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve ?? '(unnamed curve)'}` : key.asymmetricKeyType;
  throw badKey(`${what} keys are not accepted: devices use ES256 (EC P-256) or EdDSA (Ed25519)`);
}

function futureDate(given: string, now: Date): string {
  const atMs = ISO_8601.test(given) ? Date.parse(given) : Number.NaN;
  if (!Number.isFinite(atMs)) throw badKey(`expiry ${JSON.stringify(given.slice(0, 64))} is not an ISO 8601 date (e.g. 2027-06-30 or 2027-06-30T00:00:00Z)`);
  if (atMs <= now.getTime()) throw badKey(`expiry ${given} is in the past`);
  return new Date(atMs).toISOString();
}

/** A key pair for a simulated device: the public key for the store, the private JWK (with kid and alg) for the devices file. */
export async function generateDeviceKeyPair(alg: DeviceKey['alg']): Promise<{ key: DeviceKey; privateJwk: JWK }> {
  if (!(DEVICE_KEY_ALGS as readonly string[]).includes(alg)) throw new TypeError(`generateDeviceKeyPair: alg must be ${DEVICE_KEY_ALGS.join(' or ')}`);
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const key = await parseDevicePublicKey(await exportJWK(publicKey));
  return { key, privateJwk: { ...(await exportJWK(privateKey)), kid: key.kid, alg } };
}
