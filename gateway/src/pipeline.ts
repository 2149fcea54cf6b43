import type { Metrics } from './admin/index.ts';
import {
  ACCESS_TOKEN_TYP, type BackendTokens, type TokenVerifier, type VerifiedToken, createAuthResource,
} from './auth/index.ts';
import { checkRequestContentFormat, type Bridge, type RouteMatch, type Router } from './bridge/index.ts';
import type { RouteConfig } from './config/index.ts';
import { AuthError, RequestError } from './errors.ts';
import { cut } from './log/index.ts';
import type { CoapRequest, CoapResponse, RequestContext, RequestHandler } from './messages.ts';
import { createWellKnownCore } from './well-known-core.ts';
import { ContentFormat, Paths } from './wire/index.ts';

export interface PipelineParts {
  auth: ReturnType<typeof createAuthResource>;
  verifyToken: TokenVerifier;
  /** The JWTs backends receive, one per device token. */
  backendTokens: BackendTokens;
  router: Router;
  routes: readonly RouteConfig[];
  bridge: Bridge;
  maxPayloadBytes: number;
  metrics: Metrics;
}

/** Tokens are only issued to a device that proved who it is: its answer may outgrow the request. */
function proved(response: CoapResponse, context: RequestContext): CoapResponse {
  context.authenticated = true;
  return response;
}

/** Login bodies are a device id and a secret or an assertion (at most 2048 characters): a few hundred bytes. */
const MAX_AUTH_BODY_BYTES = 4096;

/**
 * The request pipeline, in DESIGN.md's order: the gateway's own resources, then for bridged
 * routes: token (4.01) -> route (4.04, 4.05) -> scope (4.03) -> size (4.13) -> content format
 * (4.15) -> backend. `admit` is the same checks without the body, for the first block of an upload.
 */
export function createPipeline(parts: PipelineParts): RequestHandler {
  const { auth, verifyToken, router, bridge, metrics } = parts;
  const wellKnownCore = createWellKnownCore(parts.routes);
  // One histogram child per configured route, made at start: no label hashing per request.
  const backendTimers = new Map(parts.routes.map((route) => [route.path, metrics.backendLatency.labels({ route: route.path })]));
  const backendTimer = (route: string) => backendTimers.get(route) ?? metrics.backendLatency.labels({ route });
  const onlyMethod = (method: string, request: CoapRequest) => {
    if (request.method !== method) throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} ${cut(request.path)}`);
  };
  const checkSize = (bytes: number | undefined, max: number) => {
    if (bytes !== undefined && bytes > max) {
      throw new RequestError('GW_ERR_PAYLOAD_TOO_LARGE', `${bytes} bytes > ${max}`, { size1Bytes: max });
    }
  };

  const checkCbor = (request: CoapRequest) => {
    if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.cbor) {
      throw new RequestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT', `content format ${request.contentFormat} is not CBOR (60)`);
    }
  };

  /** The gateway's own resources; undefined for a path that may be bridged. */
  const ownResource = (request: CoapRequest, context: RequestContext): string | undefined => {
    switch (request.path) {
      case Paths.auth:
      case Paths.refresh:
      case Paths.nonce:
        context.route = request.path;
        onlyMethod('POST', request);
        return request.path;
      case Paths.wellKnownCore:
        context.route = request.path;
        onlyMethod('GET', request);
        return request.path;
      default:
        return undefined;
    }
  };

  const authorize = async (request: CoapRequest, context: RequestContext, bytes: number | undefined)
    : Promise<{ match: RouteMatch; token: VerifiedToken; accessToken: string }> => {
    // Match first so refusals are counted per route, but answer 4.01 before 4.04 so that a
    // request without a valid token cannot probe for paths beyond what /.well-known/core lists.
    const match = router.match(request.segments);
    if (match !== undefined) context.route = match.route.path;
    if (request.accessToken === undefined) throw new AuthError('GW_ERR_AUTH_TOKEN_MISSING', 'no Access-Token option');
    const token = await verifyToken(request.accessToken, ACCESS_TOKEN_TYP, true, { address: request.peer.address });
    context.deviceId = token.sub;
    context.authenticated = true;
    if (match === undefined) throw new RequestError('GW_ERR_NOT_FOUND', `no route for ${cut(request.path)}`);
    if (!match.route.methods.includes(request.method as never)) {
      throw new RequestError('GW_ERR_METHOD_NOT_ALLOWED', `${request.method} not allowed on ${match.route.path}`);
    }
    if (!token.scopes.has(match.route.scope)) {
      throw new AuthError('GW_ERR_AUTH_FORBIDDEN', `token lacks scope ${match.route.scope}`);
    }
    checkSize(bytes, parts.maxPayloadBytes);
    checkRequestContentFormat(match.route, request.contentFormat);
    return { match, token, accessToken: request.accessToken };
  };

  return {
    async admit(request, context, declaredBytes) {
      const own = ownResource(request, context);
      if (own === undefined) {
        const { token } = await authorize(request, context, declaredBytes);
        return { maxBodyBytes: parts.maxPayloadBytes, authenticated: true, owner: token.sub };
      }
      // Login bodies come from devices nobody has authenticated yet: small, CBOR, and only where
      // a body belongs (/.well-known/core takes none).
      const maxBodyBytes = own === Paths.wellKnownCore ? 0 : MAX_AUTH_BODY_BYTES;
      checkSize(declaredBytes ?? request.payload.length, maxBodyBytes);
      checkCbor(request);
      return { maxBodyBytes, authenticated: false };
    },

    async handle(request, context) {
      switch (ownResource(request, context)) {
        case Paths.auth:
          checkSize(request.payload.length, MAX_AUTH_BODY_BYTES);
          return proved(await auth.login(request, context), context);
        case Paths.refresh:
          checkSize(request.payload.length, MAX_AUTH_BODY_BYTES);
          return proved(await auth.refresh(request, context), context);
        case Paths.nonce:
          // Not proved: a nonce answer is bigger than its request, so the endpoint first checks the address (Echo).
          return auth.nonce(request, context);
        case Paths.wellKnownCore:
          return { code: '2.05', contentFormat: ContentFormat.linkFormat, payload: wellKnownCore(request.query) };
        default:
          break;
      }
      const { match, token } = await authorize(request, context, request.payload.length);
      // Backends verify full JWTs (iss, aud, scope...), which the compact tokens on the radio leave
      // out: each device token gets one with the same claims, minted once and held until it expires.
      const accessToken = await parts.backendTokens.jwtFor(token);
      const stopTimer = backendTimer(match.route.path).startTimer();
      try {
        return await bridge.forward({ request, match, deviceId: token.sub, accessToken, context });
      } finally {
        stopTimer();
      }
    },
  };
}
