import type { Metrics } from './admin/index.ts';
import {
  ACCESS_TOKEN_TYP, type AuthResource, type BackendTokens, type TokenVerifier, type VerifiedToken,
} from './auth/index.ts';
import { checkRequestContentFormat, type Bridge, type RouteMatch, type Router } from './bridge/index.ts';
import type { RouteConfig } from './config/index.ts';
import { AuthError, ProtectionError, RequestError } from './errors.ts';
import { cut } from './log/index.ts';
import type { Admitted, CoapRequest, Handled, Learned, Principal, RequestHandler, RequestSource } from './messages.ts';
import { createWellKnownCore } from './well-known-core.ts';
import { ContentFormat, Paths } from './wire/index.ts';

export interface PipelineParts {
  auth: AuthResource;
  verifyToken: TokenVerifier;
  /** The JWTs backends receive, one per device token. */
  backendTokens: BackendTokens;
  router: Router;
  routes: readonly RouteConfig[];
  bridge: Bridge;
  maxPayloadBytes: number;
  metrics: Metrics;
  /** Whether this device must use OSCORE (its record, or the gateway's `deviceSecurity`): a token in clear is refused. */
  requiresOscore: (deviceId: string) => boolean;
}

/** Login bodies are a device id and a secret or an assertion (at most 2048 characters): a few hundred bytes. */
const MAX_AUTH_BODY_BYTES = 4096;

/** The gateway's own resources and the one method each takes. */
const OWN_RESOURCES: ReadonlyMap<string, string> = new Map([
  [Paths.auth, 'POST'], [Paths.refresh, 'POST'], [Paths.nonce, 'POST'], [Paths.wellKnownCore, 'GET'],
]);

/**
 * A device proved by its access token or its OSCORE context: who it is, and the token the
 * backend's JWT is minted for (none for a request under OSCORE without one).
 */
interface Authorized {
  match: RouteMatch;
  principal: Principal;
  token: VerifiedToken | undefined;
}

/** A request refused, with what was learned before the refusal. */
type Refusal = Learned & { error: unknown };

/**
 * The request pipeline: the gateway's own resources, then for bridged routes: token (4.01) ->
 * route (4.04, 4.05) -> scope (4.03) -> size (4.13) -> content format (4.15) -> backend. `admit`
 * is the same checks without the body, for the first block of an upload. Each returns what it
 * found out (who the request proved to be, its route) with its answer or its refusal.
 */
export function createPipeline(parts: PipelineParts): RequestHandler {
  const { auth, verifyToken, router, bridge, metrics } = parts;
  const wellKnownCore = createWellKnownCore(parts.routes);
  // One histogram child per configured route, made at start: no label hashing per request.
  const backendTimers = new Map(parts.routes.map((route) => [route.path, metrics.backendLatency.labels({ route: route.path })]));
  const backendTimer = (route: string) => backendTimers.get(route) ?? metrics.backendLatency.labels({ route });
  const checkSize = (bytes: number | undefined, max: number) => {
    if (bytes !== undefined && bytes > max) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', `${bytes} bytes > ${max}`, { size1Bytes: max });
    }
  };
  const checkMethod = (request: CoapRequest) => {
    if (request.method !== OWN_RESOURCES.get(request.path)) throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${cut(request.path)}`);
  };

  const checkCbor = (request: CoapRequest) => {
    if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.cbor) {
      throw new RequestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT', `content format ${request.contentFormat} is not CBOR (60)`);
    }
  };

  /** The gateway's own resources: logins prove the device that sends them, a nonce goes to a proved address only. */
  const own = async (request: CoapRequest, source: RequestSource): Promise<Handled> => {
    const route = request.path;
    try {
      checkMethod(request);
      switch (request.path) {
        case Paths.auth:
          checkSize(request.payload.length, MAX_AUTH_BODY_BYTES);
          return { ...(await auth.login(request, source)), route };
        case Paths.refresh:
          checkSize(request.payload.length, MAX_AUTH_BODY_BYTES);
          return { ...(await auth.refresh(request, source)), route };
        case Paths.nonce:
          return { ...(await auth.nonce(request, source)), route };
        default:
          return { response: { code: '2.05', contentFormat: ContentFormat.linkFormat, payload: wellKnownCore(request.query) }, route };
      }
    } catch (error) {
      return { error, route };
    }
  };

  /**
   * Who sent the request, and may they use this route? Matched first so refusals are counted per
   * route, but 4.01 comes before 4.04 so that a request without a valid token cannot probe for
   * paths beyond what /.well-known/core lists. Under OSCORE the context proved the device: without
   * an Access-Token its record's scopes apply, with one the token must be that device's.
   */
  const authorize = async (request: CoapRequest, bytes: number | undefined, source: RequestSource): Promise<Authorized | Refusal> => {
    const match = router.match(request.segments);
    const route = match?.route.path;
    const oscore = source.principal?.protection === 'oscore' ? source.principal : undefined;
    let token: VerifiedToken | undefined;
    let principal: Principal;
    if (request.accessToken === undefined) {
      if (oscore === undefined) return { error: new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token option'), route };
      principal = oscore;
    } else {
      try {
        token = await verifyToken(request.accessToken, ACCESS_TOKEN_TYP, true, { address: request.peer.address });
        if (oscore !== undefined && token.sub !== oscore.deviceId) {
          throw new ProtectionError('GW_ERR_OSCORE_DEVICE_MISMATCH', `a token of device "${cut(token.sub)}" under device "${cut(oscore.deviceId)}"'s OSCORE context`);
        }
        if (oscore === undefined && parts.requiresOscore(token.sub)) {
          throw new ProtectionError('GW_ERR_OSCORE_REQUIRED', 'this device must use OSCORE: its token is refused in clear');
        }
      } catch (error) {
        return { error, deviceId: oscore?.deviceId, principal: oscore, route };
      }
      principal = { deviceId: token.sub, scopes: token.scopes, by: 'access-token', ...(oscore === undefined ? {} : { protection: 'oscore' as const }) };
    }
    try {
      if (match === undefined) throw new RequestError('GW_ERR_NOT_FOUND', `no route for ${cut(request.path)}`);
      if (!match.route.methods.includes(request.method as never)) {
        throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} not allowed on ${match.route.path}`);
      }
      if (!principal.scopes.has(match.route.scope)) throw new AuthError('GW_ERR_AUTH_FORBIDDEN', `token lacks scope ${match.route.scope}`);
      checkSize(bytes, parts.maxPayloadBytes);
      checkRequestContentFormat(match.route, request.contentFormat);
    } catch (error) {
      return { error, principal, route };
    }
    return { match, principal, token };
  };

  return {
    async admit(request, source, declaredBytes): Promise<Admitted> {
      if (OWN_RESOURCES.has(request.path)) {
        const route = request.path;
        try {
          checkMethod(request);
          // Login bodies come from devices nobody has authenticated yet: small, CBOR, and only where
          // a body belongs (/.well-known/core takes none).
          const maxBodyBytes = request.path === Paths.wellKnownCore ? 0 : MAX_AUTH_BODY_BYTES;
          checkSize(declaredBytes ?? request.payload.length, maxBodyBytes);
          checkCbor(request);
          return { maxBodyBytes, route };
        } catch (error) {
          return { error, route };
        }
      }
      const authorized = await authorize(request, declaredBytes, source);
      if ('error' in authorized) return authorized;
      return { maxBodyBytes: parts.maxPayloadBytes, principal: authorized.principal, route: authorized.match.route.path };
    },

    async handle(request, source) {
      if (OWN_RESOURCES.has(request.path)) return own(request, source);
      const authorized = await authorize(request, request.payload.length, source);
      if ('error' in authorized) return authorized;
      const { match, principal, token } = authorized;
      const route = match.route.path;
      try {
        // Backends verify full JWTs (iss, aud, scope...), which the compact tokens on the radio leave
        // out: each device token gets one with the same claims, minted once and held until it expires.
        // The backend also learns how the request was protected on the radio (claim `sec`).
        const protection = principal.protection;
        const accessToken = token === undefined
          ? await parts.backendTokens.jwtForContext(principal.deviceId, principal.scopes)
          : await parts.backendTokens.jwtFor(token, protection);
        const stopTimer = backendTimer(route).startTimer();
        try {
          return { ...(await bridge.forward({ request, match, deviceId: principal.deviceId, accessToken })), principal, route };
        } finally {
          stopTimer();
        }
      } catch (error) {
        return { error, principal, route };
      }
    },
  };
}
