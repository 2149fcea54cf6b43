import type { CoapRequest, CoapResponse, RequestContext } from '../messages.ts';
import { AuthError, RequestError } from '../errors.ts';
import type { Logger } from '../log/index.ts';
import { StoreUnavailableError, type DeviceRecord, type DeviceView, type OneTimeIds, type Revocations } from '../store/index.ts';
import { AuthRequestKey, AuthResponseKey, ContentFormat, decodeCbor, encodeCbor } from '../wire/index.ts';
import { DEVICE_ID_PATTERN, secretMatches } from './credentials.ts';
import { ACCESS_TOKEN_TYP, REFRESH_TOKEN_TYP, type IssuedTokens, type TokenIssuer } from './issue-tokens.ts';
import type { LoginLimiter } from './login-limiter.ts';
import { recordIdOf } from './record-id.ts';
import { createRefreshFamilies, type RefreshFamilies } from './refresh-families.ts';
import type { TokenVerifier } from './verify-token.ts';

export type LoginOutcome =
  'ok' | 'bad_credentials' | 'bad_request' | 'rate_limited' | 'refreshed' | 'refresh_rejected' | 'refresh_reused';

export interface AuthResourceOptions {
  /** The gateway's view of the registry (a login reads through it). */
  devices: DeviceView;
  /** Spent refresh tokens, fleet-wide. */
  onceIds: OneTimeIds;
  /** Where a revoked family is recorded for the fleet; every gateway's `families` hears of it. */
  revocations?: Revocations;
  /**
   * Whether the shared store answers now. Logins and refreshes fail closed while it does not
   * (5.03 with Max-Age): a login would count failures nobody else sees, a refresh could spend
   * a token twice on two gateways.
   */
  storeAvailable?: () => boolean;
  issuer: TokenIssuer;
  verifyToken: TokenVerifier;
  limiter: LoginLimiter;
  /** The verifier accepts a refresh token until exp + leeway: it must stay spent that long. */
  leewaySec: number;
  /**
   * Revoked refresh-token families. Share it with the verifier (its `isRevoked`) so that a
   * family's access tokens stop too; without one, only its refresh tokens are refused.
   */
  families?: RefreshFamilies;
  /** The refresh token lifetime now; a revocation lasts at least this long past the reuse. */
  refreshTtlSec?: number;
  nowMs?: () => number;
  logger?: Logger;
  onLogin?: (outcome: LoginOutcome) => void;
  /** A refresh token was presented again and its family revoked (metrics). */
  onFamilyRevoked?: () => void;
}

export interface AuthResource {
  /** `POST /auth`: a device id and its secret; a new token pair in a new refresh-token family. */
  login(request: CoapRequest, context: RequestContext): Promise<CoapResponse>;
  /** `POST /auth/refresh`: a refresh token, once; the next pair of its family. */
  refresh(request: CoapRequest, context: RequestContext): Promise<CoapResponse>;
}

/** `POST /auth` and `POST /auth/refresh`: CBOR in, CBOR tokens out (DESIGN.md wire contract). */
export function createAuthResource(options: AuthResourceOptions): AuthResource {
  const { devices, onceIds, issuer, verifyToken, limiter, leewaySec } = options;
  const storeAvailable = options.storeAvailable ?? (() => true);
  const failClosed = (): void => {
    if (!storeAvailable()) throw new StoreUnavailableError('the shared store is down: logins and refreshes wait for it');
  };
  const nowMs = options.nowMs ?? Date.now;
  const families = options.families ?? createRefreshFamilies({ nowMs });
  const count = options.onLogin ?? (() => undefined);
  const familyRevoked = options.onFamilyRevoked ?? (() => undefined);
  const issue = async (device: DeviceRecord, family?: string): Promise<CoapResponse> => {
    const tokens = await issuer.issue({ id: device.id, scopes: device.scopes, recordId: recordIdOf(device) }, family);
    verifyToken.remember(tokens.accessToken, ACCESS_TOKEN_TYP, tokens.accessClaims);
    return tokensResponse(tokens);
  };

  return {
    async login(request, context) {
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
      failClosed();
      const device = await devices.get(deviceId);
      if (!secretMatches(secret, device?.secretHash) || device === undefined) {
        // The limit applies to failures only: a right secret always gets in, so nobody can lock
        // a device out by sending wrong secrets in its name (secrets are 256 bits: no guessing).
        const retryAfterSec = await limiter.recordFailure(deviceId, request.peer.address);
        if (retryAfterSec !== undefined) {
          count('rate_limited');
          throw new AuthError('GW_ERR_TOO_MANY_REQUESTS', 'too many failed logins', { maxAgeSec: retryAfterSec });
        }
        count('bad_credentials');
        throw new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', device === undefined ? 'unknown device' : 'wrong secret');
      }
      count('ok');
      // A login starts a new family (RFC 9700 section 4.14.2).
      // Proved by its secret: from this address its tokens answer to the address's budget only.
      verifyToken.trust(request.peer.address, device.id);
      return issue(device);
    },

    async refresh(request, context) {
      const body = decodeMap(request);
      const refreshToken = body.get(AuthRequestKey.refreshToken);
      if (typeof refreshToken !== 'string') {
        throw new RequestError('GW_ERR_BAD_REQUEST', 'key 5 (refresh token) must be a text string');
      }
      failClosed();
      let claims;
      try {
        // One use each, so never cached; forged ones count against their source's budget.
        claims = await verifyToken(refreshToken, REFRESH_TOKEN_TYP, false, { address: request.peer.address });
      } catch (err) {
        count('refresh_rejected');
        throw err;
      }
      context.deviceId = claims.sub;
      // The verifier asks `families` too once it is given as its `isRevoked`; asking here keeps
      // the refresh side right whatever verifier this resource is given.
      if (families.isRevoked(claims)) {
        count('refresh_rejected');
        throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token of a revoked family');
      }
      // Refresh tokens rotate: each one can be used once (RFC 9700 section 4.14.2).
      if (!(await onceIds.consume(`refresh:${claims.jti}`, claims.exp + leewaySec))) {
        count('refresh_reused');
        if (claims.fam === undefined) {
          // Issued before families: nothing names its successors, so only this copy is refused.
          options.logger?.warn({ deviceId: claims.sub }, 'refresh token used twice (possible theft); it names no family to revoke');
          throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token already used');
        }
        // The device or a thief holds a copy, and either may hold the successor: revoke it all
        // until the last refresh token the family can hold has stopped verifying.
        const lifetimeSec = Math.max(claims.exp - claims.iat, options.refreshTtlSec ?? 0);
        const revocation = {
          family: claims.fam, deviceId: claims.sub, atSec: Math.floor(nowMs() / 1000),
          untilSec: Math.ceil(nowMs() / 1000) + lifetimeSec + leewaySec,
        };
        families.revoke(revocation);
        // For the fleet too; the token is refused here whatever the store says.
        await options.revocations?.revokeFamily(revocation).catch((err: unknown) =>
          options.logger?.error({ err }, 'recording a revoked family in the store failed; it holds on this gateway only'));
        familyRevoked();
        options.logger?.warn({ deviceId: claims.sub, family: claims.fam },
          'refresh token used twice: its family is revoked (possible theft)');
        throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token already used: family revoked');
      }
      const device = await devices.get(claims.sub);
      if (device === undefined) {
        count('refresh_rejected');
        throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'device removed while refreshing');
      }
      count('refreshed');
      // A refresh token from before families starts one; every other refresh continues its own.
      verifyToken.trust(request.peer.address, device.id);
      return issue(device, claims.fam);
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
