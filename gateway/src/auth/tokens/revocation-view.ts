import type { Revocation as StoreRevocation } from '../../store/index.ts';

export interface RevocationViewOptions {
  nowMs: () => number;
  /**
   * Revoked families remembered at once (and, separately, devices whose oldest revocations were
   * folded together, see below). Default 100,000.
   */
  maxEntries?: number;
  /** A revocation was folded into a wider one because its table was full (metrics). */
  onEvicted?: () => void;
}

/** What a revocation needs to know of a verified token; `VerifiedToken` has all of it. */
export interface FamilyMember {
  sub: string;
  jti?: string;
  /** Issued at, seconds. */
  iat: number;
  /** The family; undefined for tokens issued before families existed. */
  fam?: string | undefined;
}

export interface RevocationView {
  /**
   * Revokes every token of `family` until `untilSec`, when the last of them has stopped
   * verifying (the newest refresh token's exp plus the leeway).
   */
  revoke(revocation: { family: string; deviceId: string; untilSec: number; atSec?: number }): void;
  /** Revokes the one access token `jti` until `untilSec` (`gateway tokens revoke`). */
  revokeToken(revocation: { jti: string; untilSec: number }): void;
  /** A revocation from the store (its list or its change feed), of either kind. */
  apply(revocation: StoreRevocation): void;
  /** The verifier's `isRevoked`: asked on every cache hit and every fresh verification. */
  isRevoked(token: FamilyMember): boolean;
  /** Revocations held now (families and folded devices; a gauge). */
  size(): number;
}

interface Revocation {
  /** When it was revoked; for a folded device, its tokens issued up to this second are revoked. */
  atSec: number;
  untilSec: number;
}

const DEFAULT_MAX_ENTRIES = 100_000;

/**
 * Refresh-token families (RFC 9700 section 4.14.2): a login starts a family, each refresh
 * continues it, and a refresh token presented a second time revokes the whole family, since
 * either the device or a thief holds a copy and the gateway cannot tell which. Its successor
 * refresh token and every access token of the family stop verifying, cached or not.
 *
 * Bounded by count, and failing closed: forgetting a revocation would bring a stolen family
 * back, so when the table is full its oldest entry is folded into a revocation of everything
 * its device was issued up to that family's revocation (the device logs in again with its
 * secret). Only a device that reused a refresh token has such an entry, so an attacker with
 * one stolen credential can make only devices with a reuse of their own log in again. Were the
 * device table ever full too (that many devices with a reuse), its oldest entry widens the one
 * gateway-wide revocation of everything issued until then.
 */
export function createRevocationView(options: RevocationViewOptions): RevocationView {
  const { nowMs } = options;
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new TypeError(`maxEntries must be a positive integer, got ${maxEntries}`);
  const onEvicted = options.onEvicted ?? (() => undefined);
  const families = new Map<string, Revocation & { deviceId: string }>();
  // Revoked jtis by their end. An operator's command is the only source (authenticated), and each
  // entry ends when the token can no longer verify; past the bound the oldest is forgotten
  // (metrics), which an operator would see long before: it takes maxEntries revocations within
  // one token lifetime.
  const tokens = new Map<string, number>();
  const devices = new Map<string, Revocation>();
  const everyone: Revocation = { atSec: -Infinity, untilSec: -Infinity };

  const widen = (into: Revocation, from: Revocation): void => {
    into.atSec = Math.max(into.atSec, from.atSec);
    into.untilSec = Math.max(into.untilSec, from.untilSec);
  };
  // Entries arrive with ever later ends (now + a fixed lifetime): the expired ones lead.
  const prune = <V extends Revocation>(table: Map<string, V>, nowSec: number): void => {
    for (const [key, entry] of table) {
      if (entry.untilSec > nowSec) return;
      table.delete(key);
    }
  };
  const foldDevice = (deviceId: string, revocation: Revocation): void => {
    const entry = devices.get(deviceId);
    if (entry !== undefined) {
      widen(entry, revocation);
      return;
    }
    if (devices.size >= maxEntries) {
      const [oldestId, oldest] = devices.entries().next().value!;
      devices.delete(oldestId);
      widen(everyone, oldest);
      onEvicted();
    }
    devices.set(deviceId, { ...revocation });
  };
  const live = (entry: Revocation | undefined, iat: number): boolean =>
    entry !== undefined && iat <= entry.atSec && entry.untilSec > nowMs() / 1000;
  const liveFamily = (family: string): boolean => {
    const entry = families.get(family);
    return entry !== undefined && entry.untilSec > nowMs() / 1000;
  };

  const revokeFamily: RevocationView['revoke'] = ({ family, deviceId, untilSec, atSec }) => {
      const nowSec = Math.floor(nowMs() / 1000);
      prune(families, nowSec);
      prune(devices, nowSec);
      if (families.has(family)) return;
      if (families.size >= maxEntries) {
        const [oldestFamily, oldest] = families.entries().next().value!;
        families.delete(oldestFamily);
        foldDevice(oldest.deviceId, oldest);
        onEvicted();
      }
      // Nothing is issued in a family once it is revoked: all of it was issued up to now.
      families.set(family, { atSec: atSec ?? nowSec, untilSec, deviceId });
  };
  const revokeToken: RevocationView['revokeToken'] = ({ jti, untilSec }) => {
    const nowSec = Math.floor(nowMs() / 1000);
    for (const [known, until] of tokens) {
      if (until > nowSec) break;
      tokens.delete(known);
    }
    if (untilSec <= nowSec) return;
    tokens.delete(jti);
    if (tokens.size >= maxEntries) {
      tokens.delete(tokens.keys().next().value!);
      onEvicted();
    }
    tokens.set(jti, untilSec);
  };

  return {
    revoke: revokeFamily,
    revokeToken,
    apply(revocation) {
      if (revocation.kind === 'token') revokeToken(revocation);
      else revokeFamily(revocation);
    },
    isRevoked(token) {
      if (tokens.size > 0) {
        const until = token.jti === undefined ? undefined : tokens.get(token.jti);
        if (until !== undefined && until > nowMs() / 1000) return true;
      }
      // Every token of a revoked family, whatever its iat.
      if (token.fam !== undefined && liveFamily(token.fam)) return true;
      if (devices.size > 0 && live(devices.get(token.sub), token.iat)) return true;
      return live(everyone, token.iat);
    },
    size() {
      const nowSec = Math.floor(nowMs() / 1000);
      prune(families, nowSec);
      prune(devices, nowSec);
      return families.size + devices.size + tokens.size;
    },
  };
}
