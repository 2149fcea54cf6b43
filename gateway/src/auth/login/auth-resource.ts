import type { AuthenticatedBy, CoapRequest, CoapResponse, Handled, RequestSource } from '../../messages.ts';
import { AuthError, GatewayError, ProtectionError, RequestError } from '../../errors.ts';
import type { Logger } from '../../log/index.ts';
import {
  StoreUnavailableError, type DeviceRecord, type DeviceView, type RefreshFamilies, type RefreshFamily, type Revocations,
} from '../../store/index.ts';
import {
  AuthRequestKey, AuthResponseKey, ContentFormat, TokenFormat, decodeCbor, encodeCbor, type TokenFormatName,
} from '../../wire/index.ts';
import type { AssertionVerifier } from './assertion.ts';
import { DEVICE_ID_PATTERN, secretMatches } from './credentials.ts';
import { ACCESS_TOKEN_TYP, type TokenIssuer } from '../tokens/issue-tokens.ts';
import type { LoginLimiter } from '../limits/login-limiter.ts';
import type { NonceIssuer } from './nonce-issuer.ts';
import { recordIdOf } from '../tokens/record-id.ts';
import { newRefreshToken, readRefreshToken } from './refresh-tokens.ts';
import type { RevocationView } from '../tokens/revocation-view.ts';
import type { TokenVerifier } from '../tokens/verify-token.ts';

export type LoginMethod = 'secret' | 'assertion' | 'refresh';
export type LoginOutcome = 'ok' | 'bad_credentials' | 'bad_request' | 'rate_limited' | 'rejected' | 'reused';

export interface AuthResourceOptions {
  /** The gateway's view of the registry (a login reads through it). */
  devices: DeviceView;
  /** The store's refresh-token families: the hash of each family's one current refresh token. */
  refreshFamilies: RefreshFamilies;
  /** Where a revoked family is recorded for the fleet; every gateway's `families` hears of it. */
  revocations: Revocations;
  /**
   * Whether the shared store answers now. Logins and refreshes fail closed while it does not
   * (5.03 with Max-Age): a login would count failures nobody else sees, a refresh could spend
   * a token twice on two gateways.
   */
  storeAvailable?: () => boolean;
  issuer: TokenIssuer;
  verifyToken: TokenVerifier;
  limiter: LoginLimiter;
  assertions: AssertionVerifier;
  nonces: NonceIssuer;
  /** This gateway's view of revocations (the verifier's `isRevoked`): a revoked family's access tokens stop at once. */
  revocationView: RevocationView;
  leewaySec: number;
  /** Access token lifetime: a revoked family's access tokens have all expired this long after. */
  accessTtlSec: number;
  refreshTtlSec: number;
  /** Whether the device must use OSCORE (its record says so, or the gateway's `deviceSecurity` does). */
  requiresOscore: (device: DeviceRecord) => boolean;
  nowMs?: () => number;
  logger?: Logger;
  onLogin?: (method: LoginMethod, outcome: LoginOutcome) => void;
  /** A spent refresh token was presented again and its family revoked (metrics). */
  onFamilyRevoked?: () => void;
}

/**
 * The auth resources. Each returns its answer or its refusal with the device it names; a device
 * that got tokens proved who it is (the principal), so their answer may outgrow the request.
 */
export interface AuthResource {
  /**
   * `POST /auth`: a device id and its secret or a signed assertion; a new token pair in a new
   * refresh-token family. Under OSCORE (`source.principal`) only for the context's own device.
   */
  login(request: CoapRequest, source: RequestSource): Promise<Handled>;
  /** `POST /auth/refresh`: an opaque refresh token, once; the next pair of its family. */
  refresh(request: CoapRequest, source: RequestSource): Promise<Handled>;
  /** `POST /auth/nonce`: a nonce for a device without a clock to put in its assertion; only to a proved address. */
  nonce(request: CoapRequest, source: RequestSource): Promise<Handled>;
}

/** `POST /auth`, `/auth/refresh` and `/auth/nonce`: CBOR in, CBOR out (gateway/docs/wire-contract.md). */
export function createAuthResource(options: AuthResourceOptions): AuthResource {
  const { devices, refreshFamilies, issuer, verifyToken, limiter, leewaySec, revocationView } = options;
  const storeAvailable = options.storeAvailable ?? (() => true);
  const failClosed = (): void => {
    if (!storeAvailable()) throw new StoreUnavailableError('the shared store is down: logins and refreshes wait for it');
  };
  const nowMs = options.nowMs ?? Date.now;
  const nowSec = () => Math.floor(nowMs() / 1000);
  const onLogin = options.onLogin ?? (() => undefined);
  const familyRevoked = options.onFamilyRevoked ?? (() => undefined);
  /** Counts a login's outcome (a refusal by its kind) and passes it on. */
  const tally = (method: LoginMethod, handled: Handled): Handled => {
    onLogin(method, handled.response !== undefined ? 'ok' : outcomeOf(handled.error));
    return handled;
  };
  /** What `task` grants, or its refusal naming the device it was for. */
  const attempt = (deviceId: string, task: () => Promise<Handled>): Promise<Handled> =>
    task().catch((error: unknown) => ({ error, deviceId }));
  /**
   * Why a device that proved itself may not have tokens this way, if it may not: under OSCORE,
   * the context must be the device's own; in clear, the device must not be one that must use OSCORE
   * (so that a credential or token copied off the air before the switch is worth nothing).
   */
  const protectionProblem = (device: DeviceRecord, oscoreDevice: string | undefined): ProtectionError | undefined => {
    if (oscoreDevice !== undefined) {
      return oscoreDevice === device.id ? undefined
        : new ProtectionError('GW_ERR_OSCORE_DEVICE_MISMATCH', `the OSCORE context is device "${oscoreDevice}"'s, the credentials another's`);
    }
    return options.requiresOscore(device) ? new ProtectionError('GW_ERR_OSCORE_REQUIRED', 'this device must use OSCORE: refused in clear') : undefined;
  };
  const oscoreDeviceOf = (source: RequestSource): string | undefined =>
    source.principal?.protection === 'oscore' ? source.principal.deviceId : undefined;

  /** A new token pair for a device that just proved itself `by` its credentials. */
  const grant = async (device: DeviceRecord, by: AuthenticatedBy, family: string, refreshToken: Buffer, asked: TokenFormatName | undefined,
    oscore: boolean): Promise<Handled> => {
    const format = asked ?? device.tokenFormat ?? 'jwt';
    const tokens = await issuer.issue({ id: device.id, scopes: device.scopes, recordId: recordIdOf(device) }, family, format);
    verifyToken.remember(tokens.accessToken, ACCESS_TOKEN_TYP, tokens.accessClaims);
    const body = new Map<number, string | number | Buffer>([
      [AuthResponseKey.accessToken, tokens.answerValue],
      [AuthResponseKey.expiresInSec, tokens.expiresInSec],
      [AuthResponseKey.refreshToken, refreshToken],
      [AuthResponseKey.serverTimeSec, tokens.serverTimeSec],
    ]);
    const response: CoapResponse = { code: '2.01', contentFormat: ContentFormat.cbor, payload: encodeCbor(body) };
    return { response, principal: { deviceId: device.id, scopes: new Set(device.scopes), by, ...(oscore ? { protection: 'oscore' as const } : {}) } };
  };
  /** A login starts a new family (RFC 9700 section 4.14.2); the store ends the device's oldest past three. */
  const startFamily = async (device: DeviceRecord, by: LoginMethod, address: string, format: TokenFormatName | undefined,
    oscoreDevice: string | undefined): Promise<Handled> => {
    const problem = protectionProblem(device, oscoreDevice);
    if (problem !== undefined) throw problem;
    const next = newRefreshToken();
    await refreshFamilies.start({
      family: next.family, deviceId: device.id, recordId: recordIdOf(device), currentHash: next.hash,
      expiresAtSec: nowSec() + options.refreshTtlSec,
    });
    // Proved from this address: its tokens answer to the address's budget of forgeries only.
    verifyToken.trust(address, device.id);
    return grant(device, by, next.family, next.token, format, oscoreDevice !== undefined);
  };
  /** A failed login counts against the device id and the source; past the budget, 4.29. */
  const failed = async (err: AuthError, deviceId: string, address: string): Promise<never> => {
    const retryAfterSec = await limiter.recordFailure(deviceId, address);
    if (retryAfterSec !== undefined) {
      throw new AuthError('GW_ERR_TOO_MANY_REQUESTS', `too many failed logins (last: ${err.message})`, { maxAgeSec: retryAfterSec });
    }
    throw err;
  };

  const secretLogin = async (deviceId: string, secret: Uint8Array, address: string, format: TokenFormatName | undefined,
    oscoreDevice: string | undefined): Promise<Handled> => {
    const device = await devices.get(deviceId);
    if (!secretMatches(secret, device?.secretHash) || device === undefined) {
      // The limit applies to failures only: a right secret always gets in, so nobody can lock
      // a device out by sending wrong secrets in its name (secrets are 256 bits: no guessing).
      const why = device === undefined ? 'unknown device' : device.secretHash === undefined ? 'device has no secret' : 'wrong secret';
      return failed(new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', why), deviceId, address);
    }
    if (device.disabled === true) throw new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', 'device disabled');
    return startFamily(device, 'secret', address, format, oscoreDevice);
  };

  const assertionLogin = async (deviceId: string, assertion: string, address: string, format: TokenFormatName | undefined,
    oscoreDevice: string | undefined): Promise<Handled> => {
    const device = await devices.get(deviceId);
    if (device === undefined) return failed(new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', 'unknown device'), deviceId, address);
    // A signature check costs a thousand times a secret's hash: none once the budget is spent.
    const retryAfterSec = await limiter.spent(deviceId, address);
    if (retryAfterSec !== undefined) {
      throw new AuthError('GW_ERR_TOO_MANY_REQUESTS', 'too many failed logins: assertion not checked', { maxAgeSec: retryAfterSec });
    }
    try {
      const checked = options.assertions.precheck(device, assertion);
      await options.assertions.verify(checked, assertion, deviceId, address);
    } catch (err) {
      if (err instanceof AuthError && err.code === 'GW_ERR_AUTH_BAD_CREDENTIALS') return failed(err, deviceId, address);
      throw err;
    }
    if (device.disabled === true) throw new AuthError('GW_ERR_AUTH_BAD_CREDENTIALS', 'device disabled');
    return startFamily(device, 'assertion', address, format, oscoreDevice);
  };

  return {
    async login(request, source) {
      let body: Map<unknown, unknown>;
      try {
        body = decodeMap(request);
      } catch (error) {
        return tally('secret', { error }); // no body to tell the method by
      }
      const secret = body.get(AuthRequestKey.secret);
      const assertion = body.get(AuthRequestKey.assertion);
      const method: LoginMethod = assertion !== undefined && secret === undefined ? 'assertion' : 'secret';
      let deviceId: string;
      let format: TokenFormatName | undefined;
      try {
        deviceId = loginDeviceId(body, method);
        format = askedFormat(body);
      } catch (error) {
        return tally(method, { error });
      }
      return tally(method, await attempt(deviceId, () => {
        failClosed();
        return method === 'secret'
          ? secretLogin(deviceId, secret as Uint8Array, request.peer.address, format, oscoreDeviceOf(source))
          : assertionLogin(deviceId, assertion as string, request.peer.address, format, oscoreDeviceOf(source));
      }));
    },

    async refresh(request, source) {
      let rotated: Rotated;
      try {
        rotated = await rotate(request);
      } catch (error) {
        return tally('refresh', { error });
      }
      const { family, reused, token, format } = rotated;
      return tally('refresh', await attempt(family.deviceId, async () => {
        if (reused) {
          await revokeFamily(family.family, family.deviceId);
          options.logger?.warn({ deviceId: family.deviceId, family: family.family },
            'refresh token used twice: its family is revoked (possible theft)');
          throw new RefreshReusedError();
        }
        const device = await devices.get(family.deviceId);
        const why = device === undefined ? 'device removed' : recordIdOf(device) !== family.recordId ? 'device revoked since the login'
          : device.disabled === true ? 'device disabled' : undefined;
        if (why !== undefined || device === undefined) {
          await refreshFamilies.end(family.family);
          throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `refresh refused: ${why}`);
        }
        // The token is spent by now: its family ends, and the device logs in again the right way.
        const problem = protectionProblem(device, oscoreDeviceOf(source));
        if (problem !== undefined) {
          await refreshFamilies.end(family.family);
          throw problem;
        }
        verifyToken.trust(request.peer.address, device.id);
        return grant(device, 'refresh', family.family, token, format, oscoreDeviceOf(source) !== undefined);
      }));
    },

    async nonce(request, source) {
      try {
        if (request.payload.length > 0) throw new RequestError('GW_ERR_BAD_REQUEST', 'POST /auth/nonce takes no body');
        // A nonce is state kept for whoever asked: only for an address that proved it receives
        // there. Refused without one, and marked so that the transport asks for the Echo round trip.
        if (!source.addressProved && source.principal === undefined) {
          return { error: new AuthError('GW_ERR_AUTH_ADDRESS_UNVERIFIED', 'a nonce, to an unverified address'), provedAddressOnly: true };
        }
        failClosed();
        const { nonce, serverTimeSec } = await options.nonces.issue(request.peer.address);
        const body = new Map<number, number | Buffer>([[AuthResponseKey.nonce, nonce], [AuthResponseKey.serverTimeSec, serverTimeSec]]);
        return { response: { code: '2.05', contentFormat: ContentFormat.cbor, payload: encodeCbor(body) } };
      } catch (error) {
        return { error };
      }
    },
  };

  /**
   * Spends the presented refresh token: refresh tokens rotate, each one can be used once (RFC
   * 9700 section 4.14.2). Its family, and whether the token had been spent before.
   */
  async function rotate(request: CoapRequest): Promise<Rotated> {
    const body = decodeMap(request);
    const value = body.get(AuthRequestKey.refreshToken);
    const format = askedFormat(body);
    // A device that kept a refresh JWT from before opaque refresh tokens logs in again, as after any refused refresh.
    if (typeof value === 'string') throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'a text refresh token (a JWT of an earlier version): log in again');
    if (!(value instanceof Uint8Array)) throw new RequestError('GW_ERR_BAD_REQUEST', 'key 5 (refresh token) must be a byte string');
    const presented = readRefreshToken(value);
    if (presented === undefined) throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', `a refresh token of ${value.length} bytes is none of ours`);
    failClosed();
    const next = newRefreshToken(presented.family);
    const rotation = await refreshFamilies.rotate(presented.family, presented.hash, {
      currentHash: next.hash, expiresAtSec: nowSec() + options.refreshTtlSec,
    });
    if (rotation.outcome === 'unknown') throw new AuthError('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token of no live family');
    return { family: rotation.family, reused: rotation.outcome === 'reused', token: next.token, format };
  }

  /**
   * The device or a thief holds a copy of the spent token, and either may hold its successor:
   * the family ends, and its access tokens are refused until the last of them has expired.
   */
  async function revokeFamily(family: string, deviceId: string): Promise<void> {
    const revocation = { family, deviceId, atSec: nowSec(), untilSec: nowSec() + options.accessTtlSec + leewaySec + 1 };
    revocationView.revoke(revocation);
    familyRevoked();
    // For the fleet too; refused here whatever the store says.
    await Promise.all([
      refreshFamilies.end(family),
      options.revocations.revokeFamily(revocation),
    ]).catch((err: unknown) => options.logger?.error({ err }, 'recording a revoked family in the store failed; it holds on this gateway only'));
  }
}

/** A refresh token spent: its family, whether it had been spent before, the family's next token, the format asked for. */
interface Rotated {
  family: RefreshFamily;
  reused: boolean;
  token: Buffer;
  format: TokenFormatName | undefined;
}

/** A spent refresh token, presented again: 4.01 like any refused refresh, counted apart. */
class RefreshReusedError extends AuthError {
  constructor() {
    super('GW_ERR_AUTH_TOKEN_INVALID', 'refresh token already used: family revoked');
  }
}

function outcomeOf(err: unknown): LoginOutcome {
  if (err instanceof RefreshReusedError) return 'reused';
  if (!(err instanceof GatewayError)) return 'rejected';
  switch (err.code) {
    case 'GW_ERR_AUTH_BAD_CREDENTIALS': return 'bad_credentials';
    case 'GW_ERR_TOO_MANY_REQUESTS': return 'rate_limited';
    case 'GW_ERR_BAD_REQUEST':
    case 'GW_ERR_UNSUPPORTED_CONTENT_FORMAT': return 'bad_request';
    default: return 'rejected';
  }
}

/** Key 1 of a login, with the credential its method needs: a byte-string secret or a text assertion. */
function loginDeviceId(body: Map<unknown, unknown>, method: LoginMethod): string {
  const deviceId = body.get(AuthRequestKey.deviceId);
  const secret = body.get(AuthRequestKey.secret);
  const assertion = body.get(AuthRequestKey.assertion);
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new RequestError('GW_ERR_BAD_REQUEST', 'key 1 (device id) must be a device id text string');
  }
  if (secret !== undefined && assertion !== undefined) {
    throw new RequestError('GW_ERR_BAD_REQUEST', 'key 2 (secret) and key 3 (assertion): give one');
  }
  if (method === 'secret' && !(secret instanceof Uint8Array)) {
    throw new RequestError('GW_ERR_BAD_REQUEST', 'key 2 (secret) must be a byte string, or key 3 (assertion) a text string');
  }
  if (method === 'assertion' && typeof assertion !== 'string') {
    throw new RequestError('GW_ERR_BAD_REQUEST', 'key 3 (assertion) must be a text string (a compact JWS)');
  }
  return deviceId;
}

/** Key 6 of a login or refresh: the token format asked for; undefined, the device's default. */
function askedFormat(body: Map<unknown, unknown>): TokenFormatName | undefined {
  const value = body.get(AuthRequestKey.tokenFormat);
  if (value === undefined) return undefined;
  if (value === TokenFormat.jwt) return 'jwt';
  if (value === TokenFormat.cwt) return 'cwt';
  throw new RequestError('GW_ERR_BAD_REQUEST', `key 6 (token format) must be ${TokenFormat.jwt} (JWT) or ${TokenFormat.cwt} (CWT)`);
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
