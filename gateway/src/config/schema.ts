export const COAP_METHODS = ['GET', 'POST', 'PUT', 'DELETE'] as const;
export type CoapMethod = (typeof COAP_METHODS)[number];

export const SIGNING_ALGS = ['ES256', 'EdDSA'] as const;
export type SigningAlg = (typeof SIGNING_ALGS)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type BodyMode = 'cbor-json' | 'pass-through';

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
  stateDir: string;
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
    forgedTokensPerMinute: number;
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

/** What a config file or CLI flags may set; every field optional, validated by `loadConfig`. */
export interface ConfigInput {
  coapHost?: unknown;
  coapPort?: unknown;
  piggybackReplyMs?: unknown;
  exchangeLifetimeSec?: unknown;
  maxExchanges?: unknown;
  maxPayloadBytes?: unknown;
  udpRecvBufferBytes?: unknown;
  responseCacheBytes?: unknown;
  blockBufferBytes?: unknown;
  blockLifetimeSec?: unknown;
  representationBytes?: unknown;
  backend?: unknown;
  backendCa?: unknown;
  backendTimeoutMs?: unknown;
  backendConnections?: unknown;
  state?: unknown;
  tokenTtl?: unknown;
  refreshTtl?: unknown;
  leeway?: unknown;
  issuer?: unknown;
  audience?: unknown;
  signingAlg?: unknown;
  loginFailuresPerMinute?: unknown;
  forgedTokensPerMinute?: unknown;
  routes?: unknown;
  logLevel?: unknown;
  adminHost?: unknown;
  adminPort?: unknown;
  adminCert?: unknown;
  adminKey?: unknown;
  adminCa?: unknown;
  jwksPort?: unknown;
}

export const CONFIG_KEYS: readonly (keyof ConfigInput)[] = [
  'coapHost', 'coapPort', 'piggybackReplyMs', 'exchangeLifetimeSec', 'maxExchanges', 'maxPayloadBytes',
  'udpRecvBufferBytes', 'responseCacheBytes', 'blockBufferBytes', 'blockLifetimeSec', 'representationBytes',
  'backend', 'backendCa', 'backendTimeoutMs', 'backendConnections', 'state', 'tokenTtl', 'refreshTtl',
  'leeway', 'issuer', 'audience', 'signingAlg', 'loginFailuresPerMinute', 'routes', 'logLevel',
  'adminHost', 'adminPort', 'adminCert', 'adminKey', 'adminCa', 'jwksPort',
  'forgedTokensPerMinute',
];
