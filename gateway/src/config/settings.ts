import {
  httpUrl, ipAddress, loopbackAddress, nonEmptyText, oneOf, readableFile, wholeNumber,
} from './fields.ts';
import { DEFAULT_ROUTES, ROUTES_SETTING } from './route-setting.ts';
import type { SettingsTable } from './setting.ts';
import { STORE_SETTING } from './store-setting.ts';
import { LOG_LEVELS, SIGNING_ALGS } from './values.ts';

const port = () => wholeNumber(0, 65535);
const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const DAY_SEC = 24 * 3600;

/**
 * Every setting a config file or flags may give, once: its key, what it accepts, its default and
 * what it is for, in the groups the gateway reads them in (`config.coap.port` is `coapPort`).
 * The schema, the config's type, the defaults --help and the operator guide quote, and the `serve` flags'
 * help all come from here.
 */
export const GATEWAY_SETTINGS = {
  coap: {
    host: { key: 'coapHost', kind: ipAddress(), default: '0.0.0.0', description: 'address to listen on, IPv4 or IPv6' },
    port: { key: 'coapPort', kind: port(), default: 5683, description: 'UDP port; 0 picks a free one' },
    piggybackReplyMs: {
      key: 'piggybackReplyMs', kind: wholeNumber(0, 60_000), default: 50,
      description: 'answers slower than this go as a separate response (RFC 7252 section 5.2.2)',
    },
    exchangeLifetimeSec: {
      key: 'exchangeLifetimeSec', kind: wholeNumber(1, 3600), default: 247,
      description: 'how long an exchange is kept to answer retransmissions (RFC 7252 section 4.8.2 EXCHANGE_LIFETIME)',
    },
    maxExchanges: {
      key: 'maxExchanges', kind: wholeNumber(100, 10_000_000), default: 100_000,
      description: 'exchanges kept to answer retransmissions, separate responses awaiting an ACK among them',
    },
    maxPayloadBytes: {
      key: 'maxPayloadBytes', kind: wholeNumber(64, MIB), default: 16 * KIB,
      description: 'larger request bodies get 4.13 with Size1 (RFC 7252 section 5.9.2.9)',
    },
    udpRecvBufferBytes: {
      key: 'udpRecvBufferBytes', kind: wholeNumber(4096, GIB), default: 4 * MIB,
      description: 'kernel receive queue of the CoAP socket; Linux caps it at net.core.rmem_max',
    },
    responseCacheBytes: {
      key: 'responseCacheBytes', kind: wholeNumber(KIB, GIB), default: 8 * MIB,
      description: 'bytes of stored answers the exchange table keeps to answer retransmitted requests',
    },
    blockBufferBytes: {
      key: 'blockBufferBytes', kind: wholeNumber(KIB, GIB), default: 8 * MIB,
      description: 'bytes of Block1 uploads buffered at once, over all devices (RFC 7959); at least twice maxPayloadBytes',
    },
    blockLifetimeSec: {
      key: 'blockLifetimeSec', kind: wholeNumber(1, 3600), default: 60,
      description: 'how long an unfinished upload or a stored Block2 answer is kept',
    },
    representationBytes: {
      key: 'representationBytes', kind: wholeNumber(KIB, GIB), default: 8 * MIB,
      description: 'bytes of answers kept to serve their later Block2 blocks',
    },
  },
  backend: {
    url: { key: 'backend', kind: httpUrl('the backend\'s base URL'), description: 'backend base URL, http:// or https://' },
    caFile: { key: 'backendCa', kind: readableFile(), optional: true, description: 'PEM CA certificate that signed the backend\'s TLS certificate' },
    timeoutMs: { key: 'backendTimeoutMs', kind: wholeNumber(1, 600_000), default: 5000, description: 'backend answer timeout in ms' },
    connections: { key: 'backendConnections', kind: wholeNumber(1, 10_000), default: 64, description: 'keep-alive connections to the backend' },
  },
  /** This gateway's own private keys, and the shared state too when `store` is `file`. */
  stateDir: {
    key: 'state', kind: nonEmptyText(), default: './var',
    description: 'where this gateway keeps its own private keys, and the file store',
  },
  store: {
    key: 'store', kind: STORE_SETTING, default: 'file',
    description: 'where devices, refresh families, spent assertion ids, revocations, public keys and limits live: file (in --state) '
      + 'or redis://HOST:PORT[/DB], rediss://..., redis+unix:///PATH[?db=DB], shared by a fleet',
  },
  tokens: {
    ttlSec: { key: 'tokenTtlSec', kind: wholeNumber(1, 30 * DAY_SEC), default: 3600, description: 'access token lifetime in seconds' },
    refreshTtlSec: {
      key: 'refreshTtlSec', kind: wholeNumber(1, 365 * DAY_SEC), default: 7 * DAY_SEC, description: 'refresh token lifetime in seconds',
    },
    leewaySec: { key: 'leewaySec', kind: wholeNumber(0, 3600), default: 30, description: 'clock-skew leeway in seconds' },
    issuer: { key: 'issuer', kind: nonEmptyText(), default: 'coap-gateway', description: '`iss` of issued tokens, checked on verification' },
    audience: { key: 'audience', kind: nonEmptyText(), default: 'coap-gateway', description: '`aud` of issued tokens, checked on verification' },
    signingAlg: { key: 'signingAlg', kind: oneOf(SIGNING_ALGS), default: 'ES256', description: 'algorithm of the first signing key' },
  },
  auth: {
    loginFailuresPerMinute: {
      key: 'loginFailuresPerMinute', kind: wholeNumber(1, 1_000_000), default: 10,
      description: 'failed logins per device id and per source address before 4.29',
    },
    maxAssertionLifetimeSec: {
      key: 'maxAssertionLifetimeSec', kind: wholeNumber(1, DAY_SEC), default: 3600,
      description: 'assertion login: the longest `exp - iat` a device\'s assertion may state',
    },
    assertionIatSkewSec: {
      key: 'assertionIatSkewSec', kind: wholeNumber(0, DAY_SEC), default: 600,
      description: 'assertion login: how far `iat` may be from the gateway\'s clock (unless the assertion carries a nonce)',
    },
    noncesPerAddress: {
      key: 'noncesPerAddress', kind: wholeNumber(1, 1000), default: 4,
      description: 'login nonces outstanding per source address (an IPv6 /64 counts as one); past it the oldest goes',
    },
    maxNonces: {
      key: 'maxNonces', kind: wholeNumber(1, 10_000_000), default: 100_000,
      description: 'login nonces outstanding on this gateway, over all addresses; past it the oldest goes',
    },
    forgedTokensPerMinute: {
      key: 'forgedTokensPerMinute', kind: wholeNumber(1, 1_000_000), default: 20,
      description: 'failed token signature checks per source address, and per device named, before 4.29',
    },
    verifiedTokenCacheEntries: {
      key: 'verifiedTokenCacheEntries', kind: wholeNumber(0, 10_000_000), default: 100_000,
      description: 'verified access tokens remembered by hash, so their next use costs no signature check (0: off)',
    },
    deviceViewEntries: {
      key: 'deviceViewEntries', kind: wholeNumber(1, 10_000_000), default: 200_000,
      description: 'devices held in memory (those seen lately), so a cached token costs no store call',
    },
  },
  oscore: {
    deviceSecurity: {
      key: 'deviceSecurity', kind: oneOf(['any', 'oscore'] as const), default: 'any',
      description: 'oscore: every device must use OSCORE (RFC 8613), logins, refreshes and tokens in clear get 4.01; any: as each device\'s record says',
    },
    contextEntries: {
      key: 'oscoreContextEntries', kind: wholeNumber(1, 10_000_000), default: 200_000,
      description: 'OSCORE security contexts held derived in memory (about 250 bytes each), so a request costs no key derivation',
    },
    windowEntries: {
      key: 'oscoreWindowEntries', kind: wholeNumber(1, 10_000_000), default: 200_000,
      description: 'OSCORE replay windows held in memory with the file store (Redis holds them for the fleet); an evicted one is recovered with Echo',
    },
    sequenceBlocks: {
      key: 'oscoreSequenceBlocks', kind: wholeNumber(1, 10_000_000), default: 100_000,
      description: 'contexts holding a block of the gateway\'s own OSCORE sequence numbers (reserved from the store 64 at a time)',
    },
  },
  routes: { key: 'routes', kind: ROUTES_SETTING, default: DEFAULT_ROUTES, description: 'bridged routes: CoAP path, methods, scope, backend path' },
  logLevel: { key: 'logLevel', kind: oneOf(LOG_LEVELS), default: 'info', description: LOG_LEVELS.join('|') },
  /** Off (port undefined) unless configured. Always on loopback. */
  admin: {
    host: { key: 'adminHost', kind: loopbackAddress(), default: '127.0.0.1', description: 'loopback address of the admin API' },
    port: {
      key: 'adminPort', kind: port(), optional: true,
      description: 'serve the admin API (HTTPS, mutual TLS) on this loopback port; off by default',
    },
    certFile: { key: 'adminCert', kind: nonEmptyText(), default: 'certs/out/admin-server.cert.pem', description: 'admin API server certificate' },
    keyFile: { key: 'adminKey', kind: nonEmptyText(), default: 'certs/out/admin-server.key.pem', description: 'admin API server key' },
    caFile: {
      key: 'adminCa', kind: nonEmptyText(), default: 'certs/out/admin-ca.cert.pem',
      description: 'CA whose client certificates may use the admin API',
    },
    jwksPort: {
      key: 'jwksPort', kind: port(), optional: true,
      description: 'also serve GET /.well-known/jwks.json on this loopback port without client certificates',
    },
  },
} as const satisfies SettingsTable;
