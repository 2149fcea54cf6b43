import { join } from 'node:path';
import {
  ACCESS_TOKEN_TYP, Keystore, createAuthResource, createLoginLimiter, createTokenIssuer, createTokenVerifier,
} from './auth/index.ts';
import { buildBridge, createRouter } from './bridge/index.ts';
import { buildCoapServer, type CoapServer, type RequestHandler } from './coap/index.ts';
import type { GatewayConfig } from './config/index.ts';
import { AuthError, RequestError } from './errors.ts';
import { createLogger, type Logger } from './log/index.ts';
import { buildFileStore, watchStateDir, type Store } from './store/index.ts';
import { ContentFormat, Paths } from './wire/index.ts';
import { linkFormat } from './well-known-core.ts';

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
  readonly keystore: Keystore;
  readonly store: Store;
}

/** Builds every part from config: store, keystore, auth, bridge, CoAP transport. */
export async function buildGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<Gateway> {
  const nowMs = deps.nowMs ?? Date.now;
  const logger = deps.logger ?? createLogger(config.logLevel);
  const store = deps.store ?? (await buildFileStore(config.stateDir, nowMs));
  const { tokens } = config;
  const keystore = await Keystore.open({
    dir: join(config.stateDir, 'keys'),
    signingAlg: tokens.signingAlg,
    maxTokenLifetimeSec: Math.max(tokens.ttlSec, tokens.refreshTtlSec) + tokens.leewaySec,
    nowMs,
  }, true);
  const issuer = createTokenIssuer({ keystore, issuer: tokens.issuer, audience: tokens.audience,
    ttlSec: tokens.ttlSec, refreshTtlSec: tokens.refreshTtlSec, nowMs });
  const verifyToken = createTokenVerifier({ keystore, store, issuer: tokens.issuer, audience: tokens.audience,
    leewaySec: tokens.leewaySec, nowMs });
  const auth = createAuthResource({
    store, issuer, verifyToken, limiter: createLoginLimiter(config.auth.loginFailuresPerMinute, nowMs),
  });
  const router = createRouter(config.routes);
  const bridge = buildBridge({ ...config.backend, nowMs });
  const wellKnown = { code: '2.05', contentFormat: ContentFormat.linkFormat, payload: Buffer.from(linkFormat(config.routes)) };

  const handler: RequestHandler = async (request, context) => {
    switch (request.path) {
      case Paths.auth:
      case Paths.refresh:
        context.route = request.path;
        if (request.method !== 'POST') throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${request.path}`);
        return request.path === Paths.auth ? auth.login(request, context) : auth.refresh(request, context);
      case Paths.wellKnownCore:
        context.route = request.path;
        if (request.method !== 'GET') throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${request.path}`);
        return wellKnown;
      default:
        break;
    }
    if (request.accessToken === undefined) throw new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token option');
    const token = await verifyToken(request.accessToken, ACCESS_TOKEN_TYP);
    context.deviceId = token.sub;
    const match = router.match(request.path);
    if (match === undefined) throw new RequestError('GW_ERR_NOT_FOUND', `no route for ${request.path}`);
    context.route = match.route.path;
    if (!match.route.methods.includes(request.method as never)) {
      throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} not allowed on ${match.route.path}`);
    }
    if (!token.scopes.has(match.route.scope)) {
      throw new AuthError('GW_ERR_AUTH_FORBIDDEN', `token lacks scope ${match.route.scope}`);
    }
    if (request.payload.length > config.coap.maxPayloadBytes) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', `${request.payload.length} bytes > ${config.coap.maxPayloadBytes}`);
    }
    return bridge.forward({ request, match, deviceId: token.sub, accessToken: request.accessToken, context });
  };

  let server: CoapServer | undefined;
  let watcher: { close(): void } | undefined;
  const reloadFailed = (what: string) => (err: unknown) => logger.error({ err }, `reloading ${what} failed`);

  return {
    keystore,
    store,
    async start() {
      server = await buildCoapServer({ ...config.coap, handler, logger, nowMs });
      // The state directory is the source of truth: the CLI's changes reach us through inotify.
      const keysWatcher = watchStateDir(keystore.dir, () => keystore.reload().catch(reloadFailed('keys')));
      const stateWatcher = watchStateDir(config.stateDir, (file) => {
        if (file === 'devices.json') store.reload().catch(reloadFailed('devices'));
      });
      watcher = { close: () => { keysWatcher.close(); stateWatcher.close(); } };
      const address = server.address();
      logger.info({ coap: `${address.address}:${address.port}`, backend: config.backend.url,
        kid: keystore.signingKey().kid, devices: store.deviceCount() }, 'gateway listening');
    },
    async close() {
      watcher?.close();
      await server?.close();
      await bridge.close();
      await store.close();
      logger.flush?.();
    },
    address() {
      if (server === undefined) throw new TypeError('gateway not started');
      return server.address();
    },
  };
}
