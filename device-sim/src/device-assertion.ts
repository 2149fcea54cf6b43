import { randomBytes } from 'node:crypto';
import { SignJWT, importJWK, type CryptoKey, type JWK } from 'jose';

/** A device's own private key as `gateway devices add --key-type` writes it: a JWK with its `d`. */
export type DevicePrivateJwk = JWK & { kty: string; d: string };

/** The algorithms the gateway accepts for a device key (the wire contract, assertion login). */
export type DeviceKeyAlg = 'ES256' | 'EdDSA';

/** An assertion's lifetime when the device has a clock: `exp = iat + 300`. */
export const ASSERTION_LIFETIME_SEC = 300;
/** With a gateway nonce, the nonce's own lifetime bounds it: `exp = iat + 60`. */
export const NONCE_ASSERTION_LIFETIME_SEC = 60;
const JTI_BYTES = 16;

export interface AssertionClaims {
  /** The gateway's audience (its `tokens.audience`). */
  audience: string;
  /** Seconds since the epoch: the device's estimate of the gateway's clock, or a nonce answer's server time. */
  iatSec: number;
  lifetimeSec: number;
  /** The nonce of `POST /auth/nonce` (bytes); the claim carries it base64url. */
  nonce?: Uint8Array;
}

/** The JWS algorithm of a device key: the JWK's own `alg`, else what its curve implies. */
export function deviceKeyAlg(jwk: DevicePrivateJwk): DeviceKeyAlg {
  if (jwk.alg === 'ES256' || jwk.alg === 'EdDSA') return jwk.alg as DeviceKeyAlg;
  if (jwk.alg === undefined && jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.alg === undefined && jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  throw new TypeError(`device key: expected an ES256 (EC P-256) or EdDSA (OKP Ed25519) JWK, got kty ${jwk.kty}, crv ${String(jwk.crv)}, alg ${String(jwk.alg)}`);
}

/**
 * One device's signer of login assertions (RFC 7523 JWT bearer assertion): a compact JWS with
 * header `{alg, kid}` and claims `aud`, `iat`, `exp`, `jti` and, for a device without a clock,
 * `nonce`. The key is imported once, on the first assertion.
 */
export class AssertionSigner {
  readonly jwk: DevicePrivateJwk;
  readonly alg: DeviceKeyAlg;
  #key: Promise<CryptoKey | Uint8Array> | undefined;

  constructor(jwk: DevicePrivateJwk) {
    this.jwk = jwk;
    this.alg = deviceKeyAlg(jwk);
  }

  async sign(claims: AssertionClaims): Promise<string> {
    const { audience, iatSec, lifetimeSec, nonce } = claims;
    if (!Number.isInteger(iatSec) || !Number.isInteger(lifetimeSec) || lifetimeSec <= 0) {
      throw new TypeError(`assertion: iat ${iatSec} and lifetime ${lifetimeSec} must be whole seconds, the lifetime above 0`);
    }
    this.#key ??= importJWK(this.jwk, this.alg);
    const payload = nonce === undefined ? {} : { nonce: Buffer.from(nonce).toString('base64url') };
    return new SignJWT(payload)
      // No kid: the gateway uses the device's one key of this alg.
      .setProtectedHeader(this.jwk.kid === undefined ? { alg: this.alg } : { alg: this.alg, kid: this.jwk.kid })
      .setAudience(audience)
      .setIssuedAt(iatSec)
      .setExpirationTime(iatSec + lifetimeSec)
      .setJti(randomBytes(JTI_BYTES).toString('base64url'))
      .sign(await this.#key);
  }
}
