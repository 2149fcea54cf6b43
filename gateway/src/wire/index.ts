// The device <-> gateway wire contract. Firmware and the device simulator may import this module;
// it has no dependencies on gateway internals. The wire contract (gateway/docs/wire-contract.md) mirrors it.

/** CoAP option carrying the access token (a JWT's text or a CWT's bytes). RFC 7252 section 5.4.6: odd = critical, bit 1 = unsafe. */
export const ACCESS_TOKEN_OPTION = 65003;

/** RFC 7252 section 12.3 / IANA CoAP Content-Formats. */
export const ContentFormat = {
  textPlain: 0,
  linkFormat: 40,
  octetStream: 42,
  json: 50,
  cbor: 60,
} as const;

/** Integer map keys of `POST /auth` and `POST /auth/refresh` request bodies. */
export const AuthRequestKey = {
  deviceId: 1,
  /** The device's 32-byte secret (bytes). */
  secret: 2,
  /** A compact JWS the device signed with its own key (text): see the wire contract, assertion login. */
  assertion: 3,
  /** The opaque refresh token of the last answer (bytes). */
  refreshToken: 5,
  /** Optional: the access token's format, a TokenFormat; without it, the device's default (set at provisioning). */
  tokenFormat: 6,
} as const;

/**
 * Values of AuthRequestKey.tokenFormat. A JWT (RFC 9068) travels as text; a CWT (RFC 8392, a
 * tagged COSE_Sign1) as bytes, in the answer and in the Access-Token option alike. The option's
 * first byte tells them apart: a JWT starts with `e` (0x65), a CWT with tag 18 (0xd2).
 */
export const TokenFormat = {
  jwt: 1,
  cwt: 2,
} as const;
export type TokenFormatName = keyof typeof TokenFormat;

/** Integer map keys of the 2.01 body of `/auth` and `/auth/refresh`, and of the 2.05 of `/auth/nonce`. */
export const AuthResponseKey = {
  /** The access token: a JWT as text, or a CWT as bytes (see TokenFormat). */
  accessToken: 1,
  expiresInSec: 2,
  /** The opaque refresh token (REFRESH_TOKEN_BYTES bytes): one use, the answer to it carries the next. */
  refreshToken: 3,
  serverTimeSec: 4,
  /** `/auth/nonce`: NONCE_BYTES random bytes; an assertion names them, base64url, as its `nonce` claim. */
  nonce: 7,
} as const;

/** An opaque refresh token's length: its family's id (8 bytes), then 8 random bytes. */
export const REFRESH_TOKEN_BYTES = 16;
/** A login nonce's length. */
export const NONCE_BYTES = 8;
/** How long a login nonce stays good after it is issued. */
export const NONCE_LIFETIME_SEC = 60;

/** Integer map keys of every error body: `{0: wire error code, 4: server time s}`. */
export const ErrorKey = {
  code: 0,
  serverTimeSec: 4,
} as const;

/**
 * Wire error codes, sent as key 0 of an error body. Stable: never renumbered or reused.
 * They tell a device what to do next (log in again, back off, fix the request); they never say
 * which half of a credential was wrong.
 */
export const WireError = {
  badRequest: 1,
  badCredentials: 2,
  tokenMissing: 3,
  tokenExpired: 4,
  tokenInvalid: 5,
  forbidden: 6,
  notFound: 7,
  methodNotAllowed: 8,
  payloadTooLarge: 9,
  unsupportedContentFormat: 10,
  tooManyRequests: 11,
  badGateway: 12,
  serviceUnavailable: 13,
  gatewayTimeout: 14,
  internal: 15,
  badOption: 16,
  notAcceptable: 17,
  proxyingNotSupported: 18,
  requestIncomplete: 19,
  echoRequired: 20,
  /** RFC 8613: no security context for the request's kid (none, removed, rotated away, device disabled). */
  oscoreUnknownContext: 21,
  /** RFC 8613: the request does not decrypt under the context its kid names. */
  oscoreDecryptFailed: 22,
  /** RFC 8613 section 7.4: the request's Partial IV was seen before (or is older than the window). */
  oscoreReplay: 23,
  /** This device (or every device) must use OSCORE: the request came in clear. */
  oscoreRequired: 24,
} as const;

export type WireErrorCode = (typeof WireError)[keyof typeof WireError];

export const Paths = {
  auth: '/auth',
  refresh: '/auth/refresh',
  nonce: '/auth/nonce',
  wellKnownCore: '/.well-known/core',
} as const;

export { decodeCbor, encodeCbor } from './cbor.ts';
