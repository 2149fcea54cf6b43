// What the rest of the gateway reads: the validated, frozen configuration. `schema.ts` checks
// what a file and flags say, and `load-config.ts` turns it into this shape.

export const COAP_METHODS = ['GET', 'POST', 'PUT', 'DELETE'] as const;
export type CoapMethod = (typeof COAP_METHODS)[number];

export const SIGNING_ALGS = ['ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const BODY_MODES = ['cbor-json', 'pass-through'] as const;
export type BodyMode = (typeof BODY_MODES)[number];

export interface RouteConfig {
  /** CoAP path pattern, `{name}` matches one segment. */
  path: string;
  methods: CoapMethod[];
  /** Scope the device's token must carry. */
  scope: string;
  /** Backend path template: `{sub}` is the device id, other `{names}` come from the CoAP path. */
  backendPath: string;
  /** `cbor-json`: CBOR request bodies become JSON, JSON answers become CBOR. */
  body: BodyMode;
}

/**
 * Where the state shared by the gateways of a fleet lives: devices, spent tokens, revocations,
 * public keys and limits. Each gateway's private keys stay in its own state directory.
 */
export type StoreConfig =
  | { kind: 'file' }
  | {
    kind: 'redis';
    /** redis://, rediss:// or redis+unix://; may hold a password: never log it. */
    url: string;
    /** Prepended to every key, so that one Redis can serve several fleets. */
    keyPrefix: string;
    connectTimeoutMs: number;
    commandTimeoutMs: number;
  };

export interface GatewayConfig {
  coap: {
    host: string;
    port: number;
    piggybackReplyMs: number;
    exchangeLifetimeSec: number;
    maxExchanges: number;
    maxPayloadBytes: number;
    udpRecvBufferBytes: number;
    responseCacheBytes: number;
    blockBufferBytes: number;
    blockLifetimeSec: number;
    representationBytes: number;
  };
  backend: {
    url: string;
    caFile: string | undefined;
    timeoutMs: number;
    connections: number;
  };
  /** This gateway's own private keys, and the shared state too when `store` is `file`. */
  stateDir: string;
  store: StoreConfig;
  tokens: {
    issuer: string;
    audience: string;
    ttlSec: number;
    refreshTtlSec: number;
    leewaySec: number;
    signingAlg: SigningAlg;
  };
  auth: {
    loginFailuresPerMinute: number;
    maxAssertionLifetimeSec: number;
    assertionIatSkewSec: number;
    noncesPerAddress: number;
    maxNonces: number;
    forgedTokensPerMinute: number;
    verifiedTokenCacheEntries: number;
    deviceViewEntries: number;
  };
  routes: RouteConfig[];
  logLevel: LogLevel;
  /** Off (port undefined) unless configured. Always on loopback. */
  admin: {
    host: string;
    port: number | undefined;
    certFile: string;
    keyFile: string;
    caFile: string;
    jwksPort: number | undefined;
  };
}
