import type { RouteConfig } from './types.ts';

/**
 * Every default, with its unit in its name: the schema fills in these, and the CLI's --help and
 * README quote them.
 */
export const DEFAULTS = {
  coapHost: '0.0.0.0',
  coapPort: 5683,
  stateDir: './var',
  /** The embedded file store, in the state directory; a redis:// URL shares it across a fleet. */
  store: 'file',
  redisKeyPrefix: 'gw:',
  redisConnectTimeoutMs: 2000,
  redisCommandTimeoutMs: 1000,
  tokenTtlSec: 3600,
  refreshTtlSec: 7 * 24 * 3600,
  leewaySec: 30,
  issuer: 'coap-gateway',
  audience: 'coap-gateway',
  signingAlg: 'ES256',
  logLevel: 'info',
  backendTimeoutMs: 5000,
  backendConnections: 64,
  /** RFC 7252 section 5.2.2: answer later than this becomes a separate response. */
  piggybackReplyMs: 50,
  /** RFC 7252 section 4.8.2 EXCHANGE_LIFETIME. */
  exchangeLifetimeSec: 247,
  maxExchanges: 100_000,
  maxPayloadBytes: 16 * 1024,
  /** Kernel receive queue of the CoAP socket; Linux caps it at net.core.rmem_max. */
  udpRecvBufferBytes: 4 * 1024 * 1024,
  /** Bytes of stored answers the exchange table keeps to answer retransmitted requests. */
  responseCacheBytes: 8 * 1024 * 1024,
  /** RFC 7959: bytes of Block1 uploads buffered at once, over all devices. */
  blockBufferBytes: 8 * 1024 * 1024,
  /** How long an unfinished upload or a stored Block2 answer is kept. */
  blockLifetimeSec: 60,
  /** Bytes of answers kept to serve their later Block2 blocks. */
  representationBytes: 8 * 1024 * 1024,
  loginFailuresPerMinute: 10,
  /** Assertion login: the longest `exp - iat` a device's assertion may state. */
  maxAssertionLifetimeSec: 3600,
  /** Assertion login: how far `iat` may be from the gateway's clock (unless the assertion carries a nonce). */
  assertionIatSkewSec: 600,
  /** Login nonces outstanding per source address (an IPv6 /64 counts as one); past it the oldest goes. */
  noncesPerAddress: 4,
  /** Login nonces outstanding on this gateway, over all addresses; past it the oldest goes. */
  maxNonces: 100_000,
  /** Failed token signature checks per source address, and per device named, before 4.29. */
  forgedTokensPerMinute: 20,
  /** Verified access tokens remembered (by hash) so their next use costs no signature check. */
  verifiedTokenCacheEntries: 100_000,
  /** Devices held in memory (those seen lately), so a cached token costs no store call. */
  deviceViewEntries: 200_000,
  adminHost: '127.0.0.1',
  adminCertFile: 'certs/out/admin-server.cert.pem',
  adminKeyFile: 'certs/out/admin-server.key.pem',
  adminCaFile: 'certs/out/admin-ca.cert.pem',
} as const;

export const DEFAULT_ROUTES: readonly RouteConfig[] = [
  {
    path: '/telemetry/{name}',
    methods: ['POST', 'PUT'],
    scope: 'telemetry:write',
    backendPath: '/devices/{sub}/telemetry/{name}',
    body: 'cbor-json',
  },
  {
    path: '/config',
    methods: ['GET'],
    scope: 'config:read',
    backendPath: '/devices/{sub}/config',
    body: 'cbor-json',
  },
];
