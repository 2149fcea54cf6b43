import type { CoapRequest, CoapResponse, RequestContext } from '../messages.ts';
import { AuthError, RequestError } from '../errors.ts';
import type { Store } from '../store/index.ts';
import { AuthRequestKey, AuthResponseKey, ContentFormat, decodeCbor, encodeCbor } from '../wire/index.ts';
import { DEVICE_ID_PATTERN, secretMatches } from './credentials.ts';
import { ACCESS_TOKEN_TYP, REFRESH_TOKEN_TYP, type IssuedTokens, type TokenIssuer } from './issue-tokens.ts';
import type { LoginLimiter } from './login-limiter.ts';
import type { TokenVerifier } from './verify-token.ts';


export interface AuthResourceOptions {
  store: Store;
  issuer: TokenIssuer;
  verifyToken: TokenVerifier;
  limiter: LoginLimiter;
  /** The verifier accepts a refresh token until exp + leeway: it must stay spent that long. */
  leewaySec: number;
  onLogin?: (outcome: 'ok' | 'bad_credentials' | 'bad_request' | 'rate_limited' | 'refreshed' | 'refresh_rejected') => void;
}

/** `POST /auth` and `POST /auth/refresh`: CBOR in, CBOR tokens out (DESIGN.md wire contract). */
export function createAuthResource(options: AuthResourceOptions) {
  const { store, issuer, verifyToken, limiter } = options;
  const count = options.onLogin ?? (() => undefined);
  const issue = async (deviceId: string, scopes: readonly string[]): Promise<CoapResponse> => {
    const tokens = await issuer.issue(deviceId, scopes);
    verifyToken.remember(tokens.accessToken, ACCESS_TOKEN_TYP, tokens.accessClaims);
    return tokensResponse(tokens);
  };

  return {
    async login(request: CoapRequest, context: RequestContext): Promise<CoapResponse> {
      let body: Map<unknown, unknown>;
      try {
        body = decodeMap(request);
      } catch (err) {
        count('bad_request');
        throw err;
      }
      const deviceId = body.get(AuthRequestKey.deviceId);
      const secret = body.get(AuthRequestKey.secret);
      if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
        count('bad_request');
        throw new RequestError('GW_ERR_BAD_REQUEST', 'key 1 (device id) must be a device id text string');
      }
      if (!(secret instanceof Uint8Array)) {
        count('bad_request');
        const why = body.has(AuthRequestKey.assertion) ? 'assertion login (key 3) is not enabled' : 'key 2 (secret) must be a byte string';
        throw new RequestError('GW_ERR_BAD_REQUEST', why);
      }
      context.deviceId = deviceId;
      const device = store.getDevice(deviceId);
      if (!secretMatches(secret, device?.secretHash) || device === undefined) {
        // The limit applies to failures only: a right secret always gets in, so nobody can lock
        // a device out by sending wrong secrets in its name (secrets are 256 bits: no guessing).
        const limitKeys = [`device:${deviceId}`, `peer:${request.peer.address}`];
        const retryAfterSec = limiter.retryAfterSec(limitKeys);
        limiter.recordFailure(limitKeys);
        if (retryAfterSec !== undefined) {
          count('rate_limited');
          throw new AuthError('GW_ERR_TOO_MANY_REQUESTS', 'too many failed logins', { maxAgeSec: retryAfterSec });
        }
        count('bad_credentials');
        throw new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', device === undefined ? 'unknown device' : 'wrong secret');
      }
      count('ok');
      return issue(device.id, device.scopes);
    },

    async refresh(request: CoapRequest, context: RequestContext): Promise<CoapResponse> {
      const body = decodeMap(request);
      const refreshToken = body.get(AuthRequestKey.refreshToken);
      if (typeof refreshToken !== 'string') {
        throw new RequestError('GW_ERR_BAD_REQUEST', 'key 5 (refresh token) must be a text string');
      }
      let claims;
      try {
        claims = await verifyToken(refreshToken, REFRESH_TOKEN_TYP, false);
      } catch (err) {
        count('refresh_rejected');
        throw err;
      }
      context.deviceId = claims.sub;
      // Refresh tokens rotate: each one can be used once, so a stolen copy is only good once.
      if (!(await store.consumeOnce(`refresh:${claims.jti}`, claims.exp + options.leewaySec))) {
        count('refresh_rejected');
        throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token already used');
      }
      const device = store.getDevice(claims.sub)!;
      count('refreshed');
      return issue(device.id, device.scopes);
    },
  };
}

function decodeMap(request: CoapRequest): Map<unknown, unknown> {
  if (request.contentFormat !== undefined && request.contentFormat !== ContentFormat.cbor) {
    throw new RequestError('GW_ERR_UNSUPPORTED_CONTENT_FORMAT', `content format ${request.contentFormat} is not CBOR (60)`);
  }
  let body: unknown;
  try {
    body = decodeCbor(request.payload);
  } catch (err) {
    throw new RequestError('GW_ERR_BAD_REQUEST', `malformed CBOR: ${(err as Error).message}`);
  }
  if (!(body instanceof Map)) throw new RequestError('GW_ERR_BAD_REQUEST', 'body must be a CBOR map');
  return body;
}

function tokensResponse(tokens: IssuedTokens): CoapResponse {
  const body = new Map<number, string | number>([
    [AuthResponseKey.accessToken, tokens.accessToken],
    [AuthResponseKey.expiresInSec, tokens.expiresInSec],
    [AuthResponseKey.refreshToken, tokens.refreshToken],
    [AuthResponseKey.serverTimeSec, tokens.serverTimeSec],
  ]);
  return { code: '2.01', contentFormat: ContentFormat.cbor, payload: encodeCbor(body) };
}
