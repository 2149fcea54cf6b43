import { join } from 'node:path';
import { buildAdminServer, createFleetKeys, createMetrics, type AdminServer } from './admin/index.ts';
import {
  Keystore, createAssertionVerifier, createAuthResource, createLoginLimiter, createNonceIssuer, createRevocationView,
  createBackendTokens, createTokenIssuer, createTokenVerifier,
} from './auth/index.ts';
import { buildBridge, createRouter } from './bridge/index.ts';
import { createOscoreContexts } from './auth/oscore/oscore-contexts.ts';
import { buildCoapServer, type CoapServer } from './coap/index.ts';
import type { GatewayConfig } from './config/index.ts';
import { createLogger, type Logger } from './log/index.ts';
import { createPipeline } from './pipeline.ts';
import { createDeviceView, openStore, watchStateDir, type Store } from './store/index.ts';

export interface GatewayDeps {
  logger?: Logger;
  /** The clock, injectable so tests move time instead of sleeping. */
  nowMs?: () => number;
  store?: Store;
}

export interface Gateway {
  start(): Promise<void>;
  close(): Promise<void>;
  /** The bound CoAP address (port 0 in config becomes the real port after start). */
  address(): { address: string; port: number; family: string };
  adminAddress(): { port: number; jwksPort: number | undefined } | undefined;
  /** Retires verifying keys whose tokens have all expired; also runs every second by itself. */
  retireExpiredKeys(): Promise<string[]>;
  readonly keystore: Keystore;
  readonly store: Store;
  readonly metrics: ReturnType<typeof createMetrics>;
}

const KEY_MAINTENANCE_INTERVAL_MS = 1000;

/** Builds every part from config: store, keystore, auth, bridge, CoAP transport, admin API. */
export async function buildGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<Gateway> {
  const nowMs = deps.nowMs ?? Date.now;
  const logger = deps.logger ?? createLogger(config.logLevel);
  const store = deps.store ?? (await openStore(config.store, {
    stateDir: config.stateDir, nowMs, logger,
    maxOscoreWindows: config.oscore.windowEntries, onOscoreWindowEvicted: () => metrics.evictions.inc({ table: 'oscore_windows' }),
  }));
  const { tokens } = config;
  const reloadFailed = (what: string) => (err: unknown) => logger.error({ err }, `reloading ${what} failed`);
  const keystore = await Keystore.open({
    dir: join(config.stateDir, 'keys'),
    signingAlg: tokens.signingAlg,
    maxTokenLifetimeSec: Math.max(tokens.ttlSec, tokens.refreshTtlSec) + tokens.leewaySec,
    nowMs,
  }, true);
  const metrics = createMetrics(() => keystore, {
    loginLimiterEntries: () => limiter.size(),
    revokedFamilies: () => revocationView.size(),
    storeCalls: () => store.calls(),
    storeUp: () => store.available(),
    deviceViewEntries: () => devices.size(),
    nonceEntries: () => nonces.size(),
    backendTokenEntries: () => backendTokens.size(),
    oscoreContexts: () => oscoreContexts.size(),
  });
  const devices = createDeviceView(store, { maxEntries: config.auth.deviceViewEntries, onEvicted: () => metrics.evictions.inc({ table: 'device_view' }) });
  const oscoreContexts = createOscoreContexts({
    devices, maxEntries: config.oscore.contextEntries, onEvicted: () => metrics.evictions.inc({ table: 'oscore_contexts' }),
  });
  const requiresOscore = (device: { security?: 'oscore' } | undefined): boolean =>
    config.oscore.deviceSecurity === 'oscore' || device?.security === 'oscore';
  const limiter = createLoginLimiter(config.auth.loginFailuresPerMinute, nowMs, {
    onEvicted: () => metrics.evictions.inc({ table: 'login_limiter' }), limits: store.limits,
  });
  const revocationView = createRevocationView({ nowMs, onEvicted: () => metrics.evictions.inc({ table: 'revoked_families' }) });
  const fleetKeys = createFleetKeys(keystore, store);
  keystore.onUnknownKidReload = () => metrics.keyReloads.inc({ cause: 'unknown_kid' });
  keystore.reloadFleet = () => fleetKeys.sync().catch((err: unknown) => logger.warn({ err }, 'reading the fleet\'s keys failed'));
  // What the views need from the store, again after anything the feed may have missed.
  const catchUp = async (): Promise<void> => {
    for (const revocation of await store.revocations.list(Math.floor(nowMs() / 1000))) revocationView.apply(revocation);
    await fleetKeys.sync();
  };
  await catchUp();
  const unsubscribe = store.subscribe((change) => {
    if (change.kind === 'revocation') {
      revocationView.apply(change.revocation);
      metrics.revocations.inc({ kind: change.revocation.kind === 'token' ? 'token' : 'family' });
    }
    else if (change.kind === 'key') void keystore.reloadFleet?.();
    else if (change.kind === 'resync') {
      catchUp().then(() => logger.info('caught up with the store after a gap in its change feed'), reloadFailed('store state'));
    }
  });
  const unwatchAvailability = store.onAvailability((up) => {
    if (up) {
      logger.info({ store: store.kind }, 'store is back: logins and refreshes resume');
    } else {
      metrics.storeOutages.inc();
      logger.error({ store: store.kind }, 'store is down: logins and refreshes get 5.03 until it is back; cached tokens still verify');
    }
  });
  const issuer = createTokenIssuer({ keystore, issuer: tokens.issuer, audience: tokens.audience, ttlSec: tokens.ttlSec, nowMs });
  const nonces = createNonceIssuer({
    nonces: store.nonces, nowMs, perAddress: config.auth.noncesPerAddress, maxEntries: config.auth.maxNonces,
    onEvicted: () => metrics.evictions.inc({ table: 'nonces' }),
  });
  const assertions = createAssertionVerifier({
    audience: tokens.audience, maxLifetimeSec: config.auth.maxAssertionLifetimeSec, iatSkewSec: config.auth.assertionIatSkewSec,
    leewaySec: tokens.leewaySec, nowMs, onceIds: store.onceIds, takeNonce: (nonce) => nonces.take(nonce),
  });
  const verifyToken = createTokenVerifier({ keystore, devices, issuer: tokens.issuer, audience: tokens.audience,
    leewaySec: tokens.leewaySec, nowMs, onOutcome: (outcome) => metrics.verifications.inc({ outcome }),
    isRevoked: revocationView.isRevoked,
    forgedTokensPerMinute: config.auth.forgedTokensPerMinute,
    cacheEntries: config.auth.verifiedTokenCacheEntries,
    onBudgetExceeded: (kind) => metrics.tokenBudgetRefusals.inc({ kind }),
    onBudgetEvicted: () => metrics.evictions.inc({ table: 'verification_budget' }),
    onCacheEvicted: () => metrics.evictions.inc({ table: 'verified_tokens' }),
  });
  const auth = createAuthResource({
    devices, refreshFamilies: store.refreshFamilies, revocations: store.revocations, storeAvailable: () => store.available(),
    issuer, verifyToken, limiter, revocationView, assertions, nonces,
    leewaySec: tokens.leewaySec, accessTtlSec: tokens.ttlSec, refreshTtlSec: tokens.refreshTtlSec, nowMs, logger,
    onLogin: (method, outcome) => metrics.logins.inc({ method, outcome }),
    onFamilyRevoked: () => metrics.familiesRevoked.inc(),
    requiresOscore,
  });
  const bridge = buildBridge({ ...config.backend, nowMs });
  const backendTokens = createBackendTokens({
    keystore, issuer: tokens.issuer, audience: tokens.audience, nowMs, ttlSec: tokens.ttlSec,
    // One per verified token: a device whose token the verifier still holds costs no signature.
    maxEntries: config.auth.verifiedTokenCacheEntries,
    onEvicted: () => metrics.evictions.inc({ table: 'backend_tokens' }),
    onMinted: () => metrics.backendTokensMinted.inc(),
  });
  const handler = createPipeline({
    auth, verifyToken, bridge, backendTokens, metrics, router: createRouter(config.routes), routes: config.routes,
    maxPayloadBytes: config.coap.maxPayloadBytes,
    // A verified token's device is in the view by then.
    requiresOscore: (deviceId) => requiresOscore(devices.peek(deviceId)),
  });

  // prom-client hashes the labels on every inc(); routes and codes are few, so keep each child.
  const requestCounters = new Map<string, ReturnType<typeof metrics.requests.labels>>();
  const requestCounter = (route: string, code: string) => {
    const key = `${route} ${code}`;
    let counter = requestCounters.get(key);
    if (counter === undefined) requestCounters.set(key, (counter = metrics.requests.labels({ route, code })));
    return counter;
  };
  let server: CoapServer | undefined;
  let admin: AdminServer | undefined;
  const stoppers: (() => void)[] = [];
  let closed: Promise<void> | undefined;
  const retireExpiredKeys = async () => {
    const retired = await keystore.retireExpired();
    if (retired.length > 0) {
      logger.info({ kids: retired }, 'keys retired: every token they signed has expired');
      await fleetKeys.sync();
    }
    return retired;
  };

  return {
    keystore,
    store,
    metrics,
    retireExpiredKeys,
    async start() {
      server = await buildCoapServer({
        ...config.coap, handler, logger, nowMs,
        oscore: {
          contextOf: (kid) => oscoreContexts.contextOf(kid),
          windows: store.oscoreWindows,
          maxSequenceBlocks: config.oscore.sequenceBlocks,
          onOutcome: (outcome) => {
            metrics.oscoreRequests.inc({ outcome });
            if (outcome === 'replay') metrics.oscoreReplays.inc();
          },
          onEchoRecovered: () => metrics.oscoreEchoRecoveries.inc(),
        },
        observer: {
          answered: (route, code) => requestCounter(route ?? 'unmatched', code).inc(),
          dropped: (reason) => metrics.datagramsDropped.inc({ reason }),
          retransmitted: () => metrics.retransmissions.inc(),
          resetReceived: () => metrics.resetsReceived.inc(),
          evicted: (table) => metrics.evictions.inc({ table }),
          uploadBytes: (bytes) => metrics.blockBufferBytes.set(bytes),
          challenged: () => metrics.addressChallenges.inc(),
        },
      });
      // The state directory is the source of truth: the CLI's changes reach us through inotify.
      const keysWatcher = watchStateDir(keystore.dir, (file) => {
        if (file !== 'keys.json') return;
        metrics.keyReloads.inc({ cause: 'watch' });
        // A CLI `keys rotate --state` on this gateway's own keys: published to the fleet too.
        keystore.reload().then(() => fleetKeys.sync()).then(() => logger.info({ kid: keystore.signingKey().kid }, 'keys reloaded'),
          reloadFailed('keys'));
      });
      const maintenance = setInterval(() => void retireExpiredKeys().catch(reloadFailed('keys')), KEY_MAINTENANCE_INTERVAL_MS);
      maintenance.unref();
      stoppers.push(() => keysWatcher.close(), () => clearInterval(maintenance));
      if (config.admin.port !== undefined) {
        admin = await buildAdminServer({
          ...config.admin, port: config.admin.port, keystore, fleetKeys, store, metrics, logger,
          tokenTtlSec: tokens.ttlSec, leewaySec: tokens.leewaySec,
          health: async () => ({
            ok: server !== undefined, activeKid: keystore.signingKey().kid, store: store.kind, storeUp: store.available(),
            devices: await store.devices.count().catch(() => undefined), inFlight: server?.inFlight() ?? 0,
          }),
        });
      }
      const address = server.address();
      logger.info({ coap: `${address.address}:${address.port}`, backend: config.backend.url,
        admin: admin?.address().port, jwks: admin?.jwksAddress()?.port,
        kid: keystore.signingKey().kid, store: store.kind, devices: await store.devices.count() }, 'gateway listening');
    },
    close() {
      closed ??= (async () => {
        for (const stop of stoppers) stop();
        unsubscribe();
        unwatchAvailability();
        devices.close();
        await admin?.close();
        await server?.close();
        await bridge.close();
        await store.close();
        logger.flush?.();
      })();
      return closed;
    },
    address() {
      if (server === undefined) throw new TypeError('gateway not started');
      return server.address();
    },
    adminAddress() {
      return admin === undefined ? undefined : { port: admin.address().port, jwksPort: admin.jwksAddress()?.port };
    },
  };
}
