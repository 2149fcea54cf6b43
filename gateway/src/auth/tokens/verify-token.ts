import type { KeyObject } from 'node:crypto';
import { AuthError } from '../../errors.ts';
import { quoted } from '../../log/index.ts';
import type { DeviceRecord, DeviceView } from '../../store/index.ts';
import type { Keystore } from '../keys/keystore.ts';
import { createVerificationBudget, type BudgetKind, type Reservation } from '../limits/verification-budget.ts';

/** A signature check the budget granted: `settle` says how it went. */
type Granted = Extract<Reservation, { granted: true }>;
import { checkClaims, type AccessClaims, type ClaimRules, type VerifiedToken } from './claims.ts';
import { MAX_TOKEN_CHARS } from './compact-jws.ts';
import { verifyCoseSign1 } from './cose-sign1.ts';
import { CWT_FIRST_BYTE, cwtExternalAad, readAccessCwt, type AccessCwt } from './cwt.ts';
import { bindingOf, bindingProblem, type Binding } from './device-binding.ts';
import { jwtSignatureVerifies, readAccessJwt, type AccessJwt } from './jwt.ts';
import { recordIdOf } from './record-id.ts';
import { createVerifiedTokenCache } from './verified-token-cache.ts';

export type { VerifiedToken } from './claims.ts';

/**
 * What became of one verification. `rejected_early`: refused before any signature work (size,
 * shape, encoding, header, claims, device); `invalid`: refused by or after the signature check,
 * or a cached token revoked since; `rate_limited`: its source or device spent its budget of
 * failed signature checks.
 */
export type VerifyOutcome = 'ok' | 'cache_hit' | 'expired' | 'invalid' | 'rejected_early' | 'rate_limited';

/** Where a token came from, for the per-source budget. */
export interface TokenSource {
  address: string;
}

export interface TokenVerifierOptions {
  keystore: Keystore;
  /** The gateway's view of the registry: a device it holds costs no store call. */
  devices: DeviceView;
  issuer: string;
  audience: string;
  leewaySec: number;
  nowMs: () => number;
  /** Verified access tokens remembered by hash; 0 turns the cache off. */
  cacheEntries: number;
  /** Failed signature checks per source address and per claimed device a minute; then 4.29. */
  forgedTokensPerMinute: number;
  /** A verified token pushed out of the full cache (it is verified again when seen). */
  onCacheEvicted?: () => void;
  onOutcome?: (outcome: VerifyOutcome) => void;
  /** Asked on every cache hit and after every signature check: a revocation holds from the next request. */
  isRevoked?: (token: VerifiedToken) => boolean;
  /** A token was refused unchecked because its source's or its device's budget was spent (metrics). */
  onBudgetExceeded?: (kind: BudgetKind) => void;
  /** The budget forgot a source's failures because its table was full (metrics). */
  onBudgetEvicted?: () => void;
}

export interface TokenVerifier {
  /**
   * Verifies `token` as a `typ` token. `cacheable`: remember it and answer from memory next time.
   * `source`: the peer it came from, counted against its budget and, once it verifies, trusted.
   */
  (token: string, typ: string, cacheable?: boolean, source?: TokenSource): Promise<VerifiedToken>;
  /**
   * Remembers a token this gateway has just signed, so a device's first request after login
   * costs no signature check, and is never refused for someone else's flood of forgeries in
   * its name. Hits re-check expiry, key, device record and revocation like any other.
   */
  remember(token: string, typ: string, verified: VerifiedToken): void;
  /**
   * The device proved itself from `address` (a login): from there its tokens answer only to the
   * address's budget of failed signature checks, not the device's, which forgeries naming the
   * device from elsewhere may have spent.
   */
  trust(address: string, device: string): void;
}

/** What the two formats have in common before the signature: who, when, which key, which record. */
interface ReadToken {
  alg: string;
  kid: string | undefined;
  claims: AccessClaims;
  binding: Binding;
}

/**
 * Verifies a gateway-issued token, JWT (jwt.ts) or CWT (cwt.ts), cheapest checks first, so that
 * a forgery costs a signature check only when nothing cheaper refuses it:
 * 1. the verified-token cache (a hit re-checks what can change: expiry, key, device record,
 *    revocation), so a device's cached token never waits behind anything below;
 * 2. the format's own reading (size, shape, encoding, header), then what both formats share:
 *    the algorithm allow-list, the one claims check (claims.ts), the device record as the view
 *    holds it (device-binding.ts), the key;
 * 3. the budget of failed signature checks of the source and of the device it names: past it,
 *    4.29 with Max-Age and no signature check;
 * 4. the signature, and the record it binds, in each format's order; then revocation.
 * Every failure is an AuthError whose message (for the log only) carries no token material and
 * at most 64 characters of anything the sender chose.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { keystore, devices, issuer, audience, nowMs } = options;
  const rules: ClaimRules = { issuer, audience, leewaySec: options.leewaySec };
  const cache = createVerifiedTokenCache({ maxEntries: options.cacheEntries, onEvicted: options.onCacheEvicted });
  const outcome = options.onOutcome ?? (() => undefined);
  const isRevoked = options.isRevoked ?? (() => false);
  const onBudgetExceeded = options.onBudgetExceeded ?? (() => undefined);
  const budget = createVerificationBudget({ failuresPerMinute: options.forgedTokensPerMinute, nowMs, onEvicted: options.onBudgetEvicted });
  const invalid = (message: string) => new AuthError('GW_ERR_AUTH_TOKEN_INVALID', message);
  const refuse = (result: VerifyOutcome, err: unknown): never => {
    outcome(result);
    throw err;
  };
  /** After a signature check: a device the view does not hold costs a store call, and is remembered if absent. */
  const deviceOf = async (sub: string): Promise<DeviceRecord | undefined> =>
    devices.peek(sub) ?? (await devices.get(sub, { rememberAbsent: true }));

  const stillValid = (token: VerifiedToken, device: DeviceRecord | undefined): boolean =>
    token.exp + rules.leewaySec > nowMs() / 1000
    && keystore.verificationKey(token.kid) !== undefined
    && bindingProblem(device, token.sub, bindingOf(token)) === undefined;

  /** Everything before the signature that both formats share; the key to check it with. */
  const precheck = async (read: ReadToken, algorithms: readonly string[]): Promise<{ alg: string; publicKey: KeyObject }> => {
    if (!algorithms.includes(read.alg)) throw invalid(`alg ${quoted(read.alg)} is not allowed`);
    checkClaims(read.claims, rules, Math.floor(nowMs() / 1000));
    const { sub } = read.claims;
    // Only from the view: a token nobody has authenticated yet never costs a store call. A
    // device the view does not hold is checked after the budget; one that such a check found
    // absent (a removed device's tokens, replayed) is refused here from then on.
    if (devices.absent(sub)) throw invalid(`device ${quoted(sub)} is not provisioned`);
    const held = devices.peek(sub);
    const problem = held === undefined ? undefined : bindingProblem(held, sub, read.binding);
    if (problem !== undefined) throw invalid(problem);
    // Last, as the only check that may read files: an unknown kid reloads the keystore, at most
    // once a second for all callers together.
    const key = keystore.verificationKey(read.kid) ?? (await keystore.reloadForUnknownKid(read.kid));
    if (key === undefined || key.alg !== read.alg) throw invalid(`no verifying key for kid ${quoted(read.kid)} and alg ${quoted(read.alg)}`);
    return key;
  };

  /** A signature check, if neither the source's nor the device's budget of failed ones is spent; else 4.29 with Max-Age. */
  const reserveSignatureCheck = async (source: TokenSource | undefined, sub: string): Promise<Granted> => {
    const reservation = await budget.reserve(source?.address, sub);
    if (reservation.granted) return reservation;
    const { kind, retryAfterSec } = reservation.exceeded;
    onBudgetExceeded(kind);
    return refuse('rate_limited', new AuthError('GW_ERR_TOO_MANY_REQUESTS',
      `too many failed signature checks for this ${kind}`, { maxAgeSec: retryAfterSec }));
  };

  /** A JWT's signature first: only an authentic token is worth a store call for a device the view does not hold. */
  const authenticateJwt = async (token: string, jwt: AccessJwt, key: { alg: string; publicKey: KeyObject }, reservation: Granted)
    : Promise<VerifiedToken> => {
    let authentic: boolean;
    try {
      authentic = await jwtSignatureVerifies(token, key);
    } catch (err) {
      reservation.settle(false);
      return refuse('invalid', err);
    }
    reservation.settle(!authentic);
    if (!authentic) return refuse('invalid', invalid('token rejected (ERR_JWS_SIGNATURE_VERIFICATION_FAILED)'));
    const { sub, iat, exp } = jwt.claims;
    if (isRevoked({ sub, iat, jti: jwt.jti, fam: jwt.family } as VerifiedToken)) return refuse('invalid', invalid('token revoked'));
    // Authentic now: worth a store call when the view does not hold its device.
    const device = await deviceOf(sub);
    const problem = bindingProblem(device, sub, jwt.binding);
    if (problem !== undefined) return refuse('invalid', invalid(problem));
    // Bound to this record now: cache hits compare its whole id. A compact token's scopes are
    // the record's (unless it names its own); a token of the earlier shape carried them.
    const rid = jwt.binding.kind === 'created' ? '' : recordIdOf(device!);
    const compact = jwt.binding.kind === 'tag';
    const scopes = compact && jwt.scope === undefined ? new Set(device!.scopes) : scopeSet(jwt.scope ?? '');
    return { sub, iat, exp, jti: jwt.jti, kid: jwt.kid!, rid, fam: jwt.family, scopes };
  };

  /**
   * A CWT's record first: its id is in the signed external AAD. A device the view does not hold
   * costs a store read only once the budget has granted a signature check, and not finding it
   * counts as a failed one.
   */
  const authenticateCwt = async (cwt: AccessCwt, key: { alg: string; publicKey: KeyObject }, reservation: Granted)
    : Promise<VerifiedToken> => {
    const { sub, iat, exp } = cwt.claims;
    const device = await deviceOf(sub);
    const problem = bindingProblem(device, sub, { kind: 'signed' });
    if (problem !== undefined) {
      reservation.settle(device === undefined);
      return refuse('invalid', invalid(problem));
    }
    const rid = recordIdOf(device!);
    const authentic = verifyCoseSign1(cwt.message, key.publicKey, cwtExternalAad(issuer, audience, rid));
    reservation.settle(!authentic);
    // An earlier record's token fails here too: its record id is signed in the AAD.
    if (!authentic) return refuse('invalid', invalid('CWT signature does not verify (or the token is of an earlier record)'));
    const scopes = cwt.scope !== undefined ? scopeSet(cwt.scope) : new Set(device!.scopes);
    const verified: VerifiedToken = { sub, iat, exp, jti: cwt.jti, kid: cwt.kid, rid, fam: cwt.family, scopes };
    return isRevoked(verified) ? refuse('invalid', invalid('token revoked')) : verified;
  };

  async function verifyToken(token: string, typ: string, cacheable = true, source?: TokenSource): Promise<VerifiedToken> {
    // The cache first: it holds only tokens that verified, so a hit is canonical by construction,
    // and the checks below (a pass over every character) are paid only on a miss.
    const key = cacheable && token.length <= MAX_TOKEN_CHARS ? cache.keyOf(token, typ) : undefined;
    if (key !== undefined) {
      const hit = cache.get(key);
      // A device in the view (the usual case) is a map read, no await; only one it forgot waits for the store.
      if (hit !== undefined && stillValid(hit, devices.peek(hit.sub) ?? (await devices.get(hit.sub)))) {
        if (!isRevoked(hit)) {
          outcome('cache_hit');
          return hit;
        }
        cache.delete(key);
        return refuse('invalid', invalid('token revoked'));
      }
      if (hit !== undefined) cache.delete(key);
    }
    let read: (AccessJwt & { format: 'jwt' }) | (AccessCwt & ReadToken & { format: 'cwt' });
    const algorithms = keystore.algorithms();
    try {
      read = token.charCodeAt(0) === CWT_FIRST_BYTE
        ? { format: 'cwt', ...withBinding(readAccessCwt(token)) }
        : { format: 'jwt', ...readAccessJwt(token, typ, algorithms) };
    } catch (err) {
      return refuse('rejected_early', err);
    }
    let verifying: { alg: string; publicKey: KeyObject };
    try {
      verifying = await precheck(read, algorithms);
    } catch (err) {
      return refuse((err as AuthError).code === 'GW_ERR_AUTH_TOKEN_EXPIRED' ? 'expired' : 'rejected_early', err);
    }
    const reservation = await reserveSignatureCheck(source, read.claims.sub);
    const verified = read.format === 'cwt'
      ? await authenticateCwt(read, verifying, reservation)
      : await authenticateJwt(token, read, verifying, reservation);
    outcome('ok');
    if (source !== undefined) budget.trust(source.address, verified.sub);
    if (key !== undefined) cache.set(key, verified);
    return verified;
  }

  return Object.assign(verifyToken, {
    remember(token: string, typ: string, verified: VerifiedToken): void {
      const key = cache.keyOf(token, typ);
      if (key !== undefined) cache.set(key, verified);
    },
    /** A device that logged in from `address` proved itself there (see VerificationBudget.trust). */
    trust(address: string, device: string): void {
      budget.trust(address, device);
    },
  });
}

/** A CWT's alg comes from its protected header; its record binding is its signature's (the AAD). */
function withBinding(cwt: AccessCwt): AccessCwt & ReadToken {
  return { ...cwt, alg: cwt.message.alg, binding: { kind: 'signed' } };
}

function scopeSet(scope: string): Set<string> {
  return new Set(scope.split(' ').filter(Boolean));
}
