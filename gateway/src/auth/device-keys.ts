import { createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK } from 'jose';
import { AdminError } from '../errors.ts';
import type { DeviceKey } from '../store/index.ts';

/** A public key in a file or a request is a few hundred characters; ten times that is nobody's key. */
export const MAX_PUBLIC_KEY_CHARS = 4096;
const KID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

const badKey = (message: string) => new AdminError('GW_ERR_ADMIN_BAD_KEY', message);

/**
 * A device's public key as an operator gives it: PEM (SubjectPublicKeyInfo, as `openssl ec -pubout`
 * and `openssl pkey -pubout` write it) or a JWK (JSON text or object). EC P-256 (ES256) or
 * Ed25519 (EdDSA) only; a private key is refused, since only the public half goes to the gateway.
 * The key's id is the JWK's own `kid`, else its RFC 7638 thumbprint.
 */
export async function parseDevicePublicKey(input: unknown, options: { expiresAt?: string; now?: Date } = {}): Promise<DeviceKey> {
  const now = options.now ?? new Date();
  let key: KeyObject;
  let ownKid: unknown;
  let ownAlg: unknown;
  if (typeof input === 'string' && input.length > MAX_PUBLIC_KEY_CHARS) {
    throw badKey(`a public key of ${input.length} characters (at most ${MAX_PUBLIC_KEY_CHARS})`);
  }
  const text = typeof input === 'string' ? input.trim() : undefined;
  if (text !== undefined && text.startsWith('-----')) {
    if (/PRIVATE KEY-----/.test(text)) throw badKey('this is a private key: give the gateway only the public key (openssl pkey -pubout)');
    try {
      key = createPublicKey({ key: text, format: 'pem' });
    } catch {
      throw badKey('not a PEM public key (expected -----BEGIN PUBLIC KEY-----)');
    }
  } else {
    let jwk: unknown = input;
    if (text !== undefined) {
      try {
        jwk = JSON.parse(text);
      } catch {
        throw badKey('neither a PEM public key nor a JWK (JSON)');
      }
    }
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) throw badKey('a JWK must be a JSON object');
    const members = jwk as Record<string, unknown>;
    if (members.d !== undefined) throw badKey('this JWK holds a private key ("d"): give the gateway only the public key');
    ownKid = members.kid;
    ownAlg = members.alg;
    try {
      key = createPublicKey({ key: { kty: members.kty, crv: members.crv, x: members.x, y: members.y } as never, format: 'jwk' });
    } catch {
      throw badKey('not a usable public JWK (EC P-256 or OKP Ed25519)');
    }
  }
  const alg = algOf(key);
  if (ownAlg !== undefined && ownAlg !== alg) throw badKey(`the JWK says alg ${JSON.stringify(ownAlg)}, but its key is ${alg}`);
  const exported = await exportJWK(key);
  const publicJwk: JWK = exported.kty === 'EC' ? { kty: 'EC', crv: exported.crv, x: exported.x, y: exported.y }
    : { kty: 'OKP', crv: exported.crv, x: exported.x };
  const kid = typeof ownKid === 'string' && KID_PATTERN.test(ownKid) ? ownKid : await calculateJwkThumbprint(publicJwk);
  const record: DeviceKey = { kid, alg, publicJwk, addedAt: now.toISOString() };
  if (options.expiresAt !== undefined) {
    const at = Date.parse(options.expiresAt);
    if (!Number.isFinite(at)) throw badKey(`expiry ${JSON.stringify(options.expiresAt)} is not a date (ISO 8601, e.g. 2027-06-30T00:00:00Z)`);
    if (at <= now.getTime()) throw badKey(`expiry ${options.expiresAt} is in the past`);
    record.expiresAt = new Date(at).toISOString();
  }
  return record;
}

function algOf(key: KeyObject): DeviceKey['alg'] {
  if (key.type !== 'public') throw badKey('not a public key');
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  const what = key.asymmetricKeyType === 'ec' ? `EC ${key.asymmetricKeyDetails?.namedCurve}` : key.asymmetricKeyType;
  throw badKey(`a ${what} key: devices use ES256 (EC P-256) or EdDSA (Ed25519)`);
}

/** A key pair for a simulated device: the public key for the store, the private JWK (with kid and alg) for the devices file. */
export async function generateDeviceKeyPair(alg: DeviceKey['alg']): Promise<{ key: DeviceKey; privateJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const key = await parseDevicePublicKey(await exportJWK(publicKey));
  return { key, privateJwk: { ...(await exportJWK(privateKey)), kid: key.kid, alg } };
}
