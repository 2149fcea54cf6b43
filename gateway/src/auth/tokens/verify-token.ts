import { hash, type KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { DEFAULTS } from '../../config/index.ts';
import { AuthError } from '../../errors.ts';
import type { DeviceRecord, DeviceView } from '../../store/index.ts';
import { CoseFormatError, decodeCoseSign1, verifyCoseSign1, type CoseSign1 } from './cose-sign1.ts';
import { CWT_FIRST_BYTE, CwtClaimsError, cwtExternalAad, kidText, readCwtClaims, type CwtClaims } from './cwt.ts';
import { quoted } from '../../log/index.ts';
import { MAX_TOKEN_CHARS, decodeJws, splitCompactJws, type JwsParts } from './decode-token.ts';
import type { Keystore } from '../keys/keystore.ts';
import { recordIdOf } from './record-id.ts';
import { readJti, recordTag, type JtiParts } from './token-id.ts';
import { createVerificationBudget, type BudgetKind } from '../limits/verification-budget.ts';

export interface VerifiedToken {
  sub: string;
  /** Issued at, seconds. */
  iat: number;
  scopes: ReadonlySet<string>;
  jti: string;
  exp: number;
  kid: string;
  /** The device record it was issued to; '' for a token from before records had ids. */
  rid: string;
  /** Its refresh-token family; undefined for a token from before families. */
  fam: string | undefined;
}

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
  cacheEntries?: number;
  /** A verified token pushed out of the full cache (it is verified again when seen). */
  onCacheEvicted?: () => void;
  onOutcome?: (outcome: VerifyOutcome) => void;
  /** Asked on every cache hit and after every signature check: a revocation holds from the next request. */
  isRevoked?: (token: VerifiedToken) => boolean;
  /** Failed signature checks per source address and per claimed device a minute; then 4.29. */
  forgedTokensPerMinute?: number;
  /** A token was refused unchecked because its source's or its device's budget was spent (metrics). */
  onBudgetExceeded?: (kind: BudgetKind) => void;
  /** The budget forgot a source's failures because its table was full (metrics). */
  onBudgetEvicted?: () => void;
}

export interface TokenVerifier {
  /**
   * Verifies `token` as a `typ` token. `cacheable`: remember it and answer from memory next time
   * (false for one-use tokens). `source`: the peer it came from, counted against its budget.
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

/** What the checks before the signature found: the key to check it with, and who it names. */
interface Prechecked {
  key: { alg: string; publicKey: KeyObject };
  sub: string;
  /** A compact JWT's jti, read: undefined for a token of the earlier, full shape (iat, rid, fam, scope claims). */
  compact: JtiParts | undefined;
}

const REQUIRED_CLAIMS = ['sub', 'exp', 'jti'];
/** Both of our algorithms (ES256 in IEEE P1363 form, Ed25519) have 64-byte signatures. */
const SIGNATURE_BYTES = 64;

/**
 * Verifies a gateway-issued token, cheapest checks first, so that a forgery costs a signature
 * check only when nothing cheaper refuses it:
 * 1. size, three parts, canonical base64url (before the cache: one token, one spelling);
 * 2. the verified-token cache (a hit re-checks what can change: expiry, key, device record,
 *    revocation), so a device's cached token never waits behind anything below;
 * 3. header (alg on the keystore's allow-list, a kid it knows, typ), claims (iss, aud, exp, nbf,
 *    iat with the leeway; iat not in the future) and the device record the token is bound to;
 * 4. the budget of failed signature checks of the source and of the device it names: past it,
 *    4.29 with Max-Age and no signature check;
 * 5. the signature, by jose, which checks the claims again.
 * Every failure is an AuthError whose message (for the log only) carries no token material and
 * at most 64 characters of anything the sender chose.
 */
export function createTokenVerifier(options: TokenVerifierOptions): TokenVerifier {
  const { keystore, devices, issuer, audience, leewaySec, nowMs } = options;
  const cacheEntries = options.cacheEntries ?? 100_000;
  const cache = new Map<string, VerifiedToken>();
  const outcome = options.onOutcome ?? (() => undefined);
  const isRevoked = options.isRevoked ?? (() => false);
  const onBudgetExceeded = options.onBudgetExceeded ?? (() => undefined);
  const budget = createVerificationBudget({
    failuresPerMinute: options.forgedTokensPerMinute ?? DEFAULTS.forgedTokensPerMinute, nowMs, onEvicted: options.onBudgetEvicted,
  });
  const invalid = (message: string) => new AuthError('GW_ERR_AUTH_TOKEN_INVALID', message);

  /**
   * Tokens are good only for the device record they were issued to (`rid`), so removing a
   * device and adding it again (the answer to a compromise) refuses its old tokens, even
   * within the same second. A token from before `rid` existed is bound as it was then: to
   * the record's creation second.
   */
  const bindingProblem = (device: DeviceRecord | undefined, sub: string, rid: string, iat: number): string | undefined => {
    if (device === undefined) return `device ${quoted(sub)} is not provisioned`;
    if (device.disabled === true) return `device ${quoted(sub)} is disabled`;
    const bound = rid === '' ? iat >= Math.floor(Date.parse(device.createdAt) / 1000) : rid === recordIdOf(device);
    return bound ? undefined : `token of an earlier record of device ${quoted(sub)}`;
  };
  /** A compact JWT's jti names its record by a 4-byte tag. */
  const compactBindingProblem = (device: DeviceRecord, sub: string, compact: JtiParts): string | undefined => {
    if (device.disabled === true) return `device ${quoted(sub)} is disabled`;
    return recordTag(recordIdOf(device)).equals(compact.recordTag) ? undefined : `token of an earlier record of device ${quoted(sub)}`;
  };
  const stillValid = (token: VerifiedToken, device: DeviceRecord | undefined): boolean =>
    token.exp + leewaySec > nowMs() / 1000
    && keystore.verificationKey(token.kid) !== undefined
    && bindingProblem(device, token.sub, token.rid, token.iat) === undefined;

  const precheck = async (parts: JwsParts, typ: string): Promise<Prechecked> => {
    const { header, claims, signatureBytes } = decodeJws(parts);
    if (typeof header.alg !== 'string' || !keystore.algorithms().includes(header.alg as never)) {
      throw invalid(`alg ${quoted(header.alg)} is not allowed`);
    }
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(typ)) {
      throw invalid(`typ ${quoted(header.typ)}, expected "${typ}"`);
    }
    if (signatureBytes !== SIGNATURE_BYTES) throw invalid(`signature of ${signatureBytes} bytes, expected ${SIGNATURE_BYTES}`);
    for (const claim of REQUIRED_CLAIMS) if (!Object.hasOwn(claims, claim)) throw invalid(`no ${claim} claim`);
    const { sub, exp, nbf, rid } = claims;
    if (typeof sub !== 'string' || typeof claims.jti !== 'string') throw invalid('sub and jti must be strings');
    // A compact token (no iat claim) has its issue second, family and record tag in its jti.
    const compact = claims.iat === undefined ? readJti(claims.jti) : undefined;
    if (claims.iat === undefined && compact === undefined) throw invalid('no iat claim, and a jti that does not hold one');
    const iat = compact?.iatSec ?? claims.iat;
    if (typeof iat !== 'number' || typeof exp !== 'number' || (nbf !== undefined && typeof nbf !== 'number')) {
      throw invalid('iat, exp and nbf must be numbers');
    }
    if (rid !== undefined && typeof rid !== 'string') throw invalid('rid must be a string');
    if (claims.scope !== undefined && typeof claims.scope !== 'string') throw invalid('scope must be a string');
    // Compact tokens leave out iss and aud (the keys sign for this issuer and audience only); present, they must be ours.
    if (claims.iss !== undefined && claims.iss !== issuer) throw invalid(`iss ${quoted(claims.iss)}`);
    if (claims.aud !== undefined && !(claims.aud === audience || (Array.isArray(claims.aud) && claims.aud.includes(audience)))) {
      throw invalid('aud is not ours');
    }
    // The same arithmetic as jose's (whole seconds), so both agree on every token.
    const nowSec = Math.floor(nowMs() / 1000);
    if (exp <= nowSec - leewaySec) throw new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'token expired');
    if (nbf !== undefined && nbf > nowSec + leewaySec) throw invalid(`nbf ${nbf} is more than ${leewaySec} s ahead`);
    // jose checks iat only against a maximum age; a token from the future is no token of ours.
    if (iat > nowSec + leewaySec) throw invalid(`iat ${iat} is more than ${leewaySec} s ahead`);
    // Only from the view: a token nobody has authenticated yet never costs a store call. A
    // device the view does not hold is checked after the signature (see verifyToken); one that
    // such a check found absent (a removed device's tokens, replayed) is refused here from then on.
    if (devices.absent(sub)) throw invalid(`device ${quoted(sub)} is not provisioned`);
    const held = devices.peek(sub);
    const problem = held === undefined ? undefined : compact !== undefined
      ? compactBindingProblem(held, sub, compact)
      : bindingProblem(held, sub, rid ?? '', iat);
    if (problem !== undefined) throw invalid(problem);
    // Last, as the only check that may read files: an unknown kid reloads the keystore, at most
    // once a second for all callers together.
    const kid = typeof header.kid === 'string' ? header.kid : undefined;
    const key = keystore.verificationKey(kid) ?? (await keystore.reloadForUnknownKid(kid));
    if (key === undefined || key.alg !== header.alg) throw invalid(`no verifying key for kid ${quoted(header.kid)} and alg ${quoted(header.alg)}`);
    return { key, sub, compact };
  };

  /** The signature and, again, the claims, by jose; the token's record and scopes are settled by the caller. */
  const verifySignature = async (token: string, typ: string, checked: Prechecked, settle: (signatureFailed: boolean) => void)
    : Promise<VerifiedToken & { scopeClaim: boolean }> => {
    const { key, compact } = checked;
    let payload: JWTPayload;
    let kid: string;
    try {
      const result = await jwtVerify(token, key.publicKey, {
        typ, algorithms: [key.alg], clockTolerance: leewaySec, currentDate: new Date(nowMs()),
        requiredClaims: REQUIRED_CLAIMS,
      });
      payload = result.payload;
      kid = result.protectedHeader.kid!;
    } catch (err) {
      // Only a failed signature counts against the budget: anything else jose refuses cost next to nothing.
      settle(err instanceof errors.JWSSignatureVerificationFailed);
      if (err instanceof errors.JWTExpired) throw new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'token expired');
      // By code only: some of jose's messages quote the token's header (a crit parameter name).
      throw invalid(`token rejected (${err instanceof errors.JOSEError ? err.code : (err as Error).name})`);
    }
    settle(false);
    const scope = typeof payload.scope === 'string' ? payload.scope : '';
    return {
      sub: payload.sub!, iat: compact?.iatSec ?? payload.iat!, scopes: new Set(scope.split(' ').filter(Boolean)), jti: payload.jti!,
      exp: payload.exp!, kid, rid: typeof payload.rid === 'string' ? payload.rid : '',
      fam: compact?.family ?? (typeof payload.fam === 'string' ? payload.fam : undefined),
      scopeClaim: typeof payload.scope === 'string',
    };
  };

  /**
   * A CWT's checks before its signature, the same rules as a JWT's: algorithm on the allow-list
   * (the COSE parser knows only ES256 and EdDSA), iss and aud if present (they are signed in the
   * external AAD either way), exp, nbf and iat with the leeway, the device view, the key.
   */
  const precheckCwt = async (message: CoseSign1, claims: CwtClaims): Promise<Prechecked['key']> => {
    if (!keystore.algorithms().includes(message.alg)) throw invalid(`alg ${message.alg} is not allowed`);
    if (claims.iss !== undefined && claims.iss !== issuer) throw invalid(`iss ${quoted(claims.iss)}`);
    if (claims.aud !== undefined && claims.aud !== audience) throw invalid('aud is not ours');
    const nowSec = Math.floor(nowMs() / 1000);
    if (claims.exp <= nowSec - leewaySec) throw new AuthError('GW_ERR_AUTH_TOKEN_EXPIRED', 'token expired');
    if (claims.nbf !== undefined && claims.nbf > nowSec + leewaySec) throw invalid(`nbf ${claims.nbf} is more than ${leewaySec} s ahead`);
    if (claims.iat > nowSec + leewaySec) throw invalid(`iat ${claims.iat} is more than ${leewaySec} s ahead`);
    if (devices.absent(claims.sub)) throw invalid(`device ${quoted(claims.sub)} is not provisioned`);
    const held = devices.peek(claims.sub);
    if (held?.disabled === true) throw invalid(`device ${quoted(claims.sub)} is disabled`);
    const kid = kidText(message.kid);
    const key = keystore.verificationKey(kid) ?? (await keystore.reloadForUnknownKid(kid));
    if (key === undefined || key.alg !== message.alg) throw invalid(`no verifying key for kid ${quoted(kid)} and alg ${message.alg}`);
    return key;
  };

  /**
   * A CWT (RFC 8392) after a cache miss. Its device record is needed before the signature check,
   * since the record's id is in the signed external AAD: a device the view does not hold costs
   * a store read only once the source's and device's budget has granted a signature check, and
   * not finding it counts as a failed one.
   */
  const verifyCwt = async (token: string, cacheKeyOf: string, source: TokenSource | undefined): Promise<VerifiedToken> => {
    let message: CoseSign1;
    let claims: CwtClaims;
    try {
      if (token.length > MAX_TOKEN_CHARS) throw invalid(`token of ${token.length} bytes (at most ${MAX_TOKEN_CHARS})`);
      message = decodeCoseSign1(Buffer.from(token, 'latin1'));
      claims = readCwtClaims(message.payload);
    } catch (err) {
      const known = err instanceof CoseFormatError || err instanceof CwtClaimsError;
      return refuse('rejected_early', known ? invalid(`CWT: ${err.message}`) : err);
    }
    let key: Prechecked['key'];
    try {
      key = await precheckCwt(message, claims);
    } catch (err) {
      return refuse((err as AuthError).code === 'GW_ERR_AUTH_TOKEN_EXPIRED' ? 'expired' : 'rejected_early', err);
    }
    const reservation = await reserveSignatureCheck(source, claims.sub);
    const device = devices.peek(claims.sub) ?? (await devices.get(claims.sub, { rememberAbsent: true }));
    if (device === undefined || device.disabled === true) {
      reservation.settle(device === undefined);
      return refuse('invalid', invalid(`device ${quoted(claims.sub)} is ${device === undefined ? 'not provisioned' : 'disabled'}`));
    }
    const rid = recordIdOf(device);
    const authentic = verifyCoseSign1(message, key.publicKey, cwtExternalAad(issuer, audience, rid));
    reservation.settle(!authentic);
    // An earlier record's token fails here too: its record id is signed in the AAD.
    if (!authentic) return refuse('invalid', invalid('CWT signature does not verify (or the token is of an earlier record)'));
    const verified: VerifiedToken = {
      sub: claims.sub, iat: claims.iat, exp: claims.exp, kid: kidText(message.kid), rid, fam: claims.family,
      jti: claims.cti.toString('base64url'),
      scopes: new Set(claims.scope !== undefined ? claims.scope.split(' ').filter(Boolean) : device.scopes),
    };
    if (isRevoked(verified)) return refuse('invalid', invalid('token revoked'));
    outcome('ok');
    if (source !== undefined) budget.trust(source.address, verified.sub);
    if (cacheKeyOf !== '') remember(cacheKeyOf, verified);
    return verified;
  };

  /** A signature check, if neither the source's nor the device's budget of failed ones is spent; else 4.29 with Max-Age. */
  const reserveSignatureCheck = async (source: TokenSource | undefined, sub: string) => {
    const reservation = await budget.reserve(source?.address, sub);
    if (reservation.granted) return reservation;
    const { kind, retryAfterSec } = reservation.exceeded;
    onBudgetExceeded(kind);
    return refuse('rate_limited', new AuthError('GW_ERR_TOO_MANY_REQUESTS',
      `too many failed signature checks for this ${kind}`, { maxAgeSec: retryAfterSec }));
  };

  const cacheKey = (token: string, typ: string): string => hash('sha256', `${typ} ${token}`, 'base64');
  const remember = (key: string, verified: VerifiedToken): void => {
    if (cache.size >= cacheEntries) {
      cache.delete(cache.keys().next().value!);
      options.onCacheEvicted?.();
    }
    cache.set(key, verified);
  };
  const refuse = (result: VerifyOutcome, err: unknown): never => {
    outcome(result);
    throw err;
  };

  async function verifyToken(token: string, typ: string, cacheable = true, source?: TokenSource): Promise<VerifiedToken> {
    // The cache first: it holds only tokens that verified, so a hit is canonical by construction,
    // and the checks below (a pass over every character) are paid only on a miss.
    const useCache = cacheable && cacheEntries > 0 && token.length <= MAX_TOKEN_CHARS;
    const key = useCache ? cacheKey(token, typ) : '';
    if (useCache) {
      const hit = cache.get(key);
      // A device in the view (the usual case) is a map read; only one it forgot waits for the store.
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
    if (token.charCodeAt(0) === CWT_FIRST_BYTE) return verifyCwt(token, key, cacheable ? source : undefined);
    let parts: JwsParts;
    try {
      parts = splitCompactJws(token);
    } catch (err) {
      return refuse('rejected_early', err);
    }
    let checked: Prechecked;
    try {
      checked = await precheck(parts, typ);
    } catch (err) {
      return refuse((err as AuthError).code === 'GW_ERR_AUTH_TOKEN_EXPIRED' ? 'expired' : 'rejected_early', err);
    }
    const reservation = await reserveSignatureCheck(source, checked.sub);
    let signed: VerifiedToken & { scopeClaim: boolean };
    try {
      signed = await verifySignature(token, typ, checked, reservation.settle);
    } catch (err) {
      return refuse((err as AuthError).code === 'GW_ERR_AUTH_TOKEN_EXPIRED' ? 'expired' : 'invalid', err);
    }
    const { scopeClaim, ...verified } = signed;
    if (isRevoked(verified)) return refuse('invalid', invalid('token revoked'));
    // Authentic now: worth a store call when the view does not hold its device.
    const device = devices.peek(verified.sub) ?? (await devices.get(verified.sub, { rememberAbsent: true }));
    const problem = checked.compact === undefined || device === undefined
      ? bindingProblem(device, verified.sub, verified.rid, verified.iat)
      : compactBindingProblem(device, verified.sub, checked.compact);
    if (problem !== undefined) return refuse('invalid', invalid(problem));
    if (checked.compact !== undefined) {
      // Bound to this record now: cache hits compare its whole id; the scopes are the record's.
      verified.rid = recordIdOf(device!);
      if (!scopeClaim) verified.scopes = new Set(device!.scopes);
    }
    outcome('ok');
    // Refresh tokens (never cached) are trusted by the auth resource once the refresh succeeds.
    if (source !== undefined && cacheable) budget.trust(source.address, verified.sub);
    if (useCache) remember(key, verified);
    return verified;
  }

  return Object.assign(verifyToken, {
    remember(token: string, typ: string, verified: VerifiedToken): void {
      if (cacheEntries > 0) remember(cacheKey(token, typ), verified);
    },
    /** A device that logged in from `address` proved itself there (see VerificationBudget.trust). */
    trust(address: string, device: string): void {
      budget.trust(address, device);
    },
  });
}

/** RFC 8725 section 3.11 and jose: media types compare case-insensitively, `application/` optional. */
function normalizeTyp(value: string): string {
  const lower = value.toLowerCase();
  return lower.includes('/') ? lower : `application/${lower}`;
}
