import type { Metrics } from './admin/index.ts';
import { ACCESS_TOKEN_TYP, type TokenVerifier, createAuthResource } from './auth/index.ts';
import type { Bridge, Router } from './bridge/index.ts';
import type { CoapResponse, RequestHandler } from './coap/index.ts';
import type { RouteConfig } from './config/index.ts';
import { AuthError, RequestError } from './errors.ts';
import { linkFormat } from './well-known-core.ts';
import { ContentFormat, Paths } from './wire/index.ts';

export interface PipelineParts {
  auth: ReturnType<typeof createAuthResource>;
  verifyToken: TokenVerifier;
  router: Router;
  routes: readonly RouteConfig[];
  bridge: Bridge;
  maxPayloadBytes: number;
  metrics: Metrics;
}

/**
 * The request pipeline, in DESIGN.md's order: the gateway's own resources, then for bridged
 * routes: token (4.01) -> route (4.04, 4.05) -> scope (4.03) -> size (4.13) -> backend.
 */
export function createPipeline(parts: PipelineParts): RequestHandler {
  const { auth, verifyToken, router, bridge, metrics } = parts;
  const wellKnown: CoapResponse = {
    code: '2.05', contentFormat: ContentFormat.linkFormat, payload: Buffer.from(linkFormat(parts.routes)),
  };
  const onlyMethod = (method: string, request: { method: string; path: string }) => {
    if (request.method !== method) throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${request.path}`);
  };

  return async (request, context) => {
    switch (request.path) {
      case Paths.auth:
        context.route = request.path;
        onlyMethod('POST', request);
        return auth.login(request, context);
      case Paths.refresh:
        context.route = request.path;
        onlyMethod('POST', request);
        return auth.refresh(request, context);
      case Paths.wellKnownCore:
        context.route = request.path;
        onlyMethod('GET', request);
        return wellKnown;
      default:
        break;
    }
    // Match first so refusals are counted per route, but answer 4.01 before 4.04 so that a
    // request without a valid token cannot probe for paths beyond what /.well-known/core lists.
    const match = router.match(request.segments);
    if (match !== undefined) context.route = match.route.path;
    if (request.accessToken === undefined) throw new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token option');
    const token = await verifyToken(request.accessToken, ACCESS_TOKEN_TYP);
    context.deviceId = token.sub;
    if (match === undefined) throw new RequestError('GW_ERR_NOT_FOUND', `no route for ${request.path}`);
    if (!match.route.methods.includes(request.method as never)) {
      throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} not allowed on ${match.route.path}`);
    }
    if (!token.scopes.has(match.route.scope)) {
      throw new AuthError('GW_ERR_AUTH_FORBIDDEN', `token lacks scope ${match.route.scope}`);
    }
    if (request.payload.length > parts.maxPayloadBytes) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', `${request.payload.length} bytes > ${parts.maxPayloadBytes}`,
        { size1Bytes: parts.maxPayloadBytes });
    }
    const stopTimer = metrics.backendLatency.startTimer({ route: match.route.path });
    try {
      return await bridge.forward({ request, match, deviceId: token.sub, accessToken: request.accessToken, context });
    } finally {
      stopTimer();
    }
  };
}
