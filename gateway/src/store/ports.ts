import type { JWK } from 'jose';
import type { RateLimiterAbstract } from 'rate-limiter-flexible';
import { GatewayError } from '../errors.ts';

/**
 * The state that gateways of one fleet share, as small async ports. Two backends implement them
 * (`file`: the embedded default, one gateway; `redis`: a fleet), and one contract test suite
 * (test/contract) runs unchanged against both.
 *
 * No port is on the hot path of a verified token: each gateway keeps in-memory views (devices
 * it has seen, fleet keys, revocations) that the change feed keeps current, and a full resync
 * (`{ kind: 'resync' }`) follows any moment the feed may have missed something.
 */

/** A provisioned device. Only a hash of its secret is ever stored. */
export interface DeviceRecord {
  id: string;
  /** base64url SHA-256 of the device's 32-byte secret. */
  secretHash: string;
  scopes: string[];
  /** ISO 8601. */
  createdAt: string;
  /**
   * Random (16 bytes, base64url), made when the device is provisioned; tokens carry it as `rid`,
   * so removing a device and adding it again refuses its old tokens. Older state files have
   * none: such a record counts as `legacy:${createdAt}` (see `recordIdOf`).
   */
  recordId?: string;
}

export interface DeviceRegistry {
  get(id: string): Promise<DeviceRecord | undefined>;
  /** Adds all or none; rejects with AdminError GW_ERR_ADMIN_DUPLICATE_DEVICE on an id that exists. */
  add(records: readonly DeviceRecord[]): Promise<void>;
  /** Resolves false when there was no such device. */
  remove(id: string): Promise<boolean>;
  count(): Promise<number>;
  /** Every device, in batches, in no particular order (a listing of a million costs a million). */
  list(): AsyncIterable<DeviceRecord[]>;
}

/** One-use ids: spent refresh tokens, replayed assertion jtis. */
export interface OneTimeIds {
  /**
   * Marks `id` spent. Resolves false when it was spent already. The store may forget it after
   * `expiresAtSec` (seconds since the epoch), which callers set to when the id stops mattering.
   */
  consume(id: string, expiresAtSec: number): Promise<boolean>;
}

/** A refresh family revoked (RFC 9700 section 4.14.2) until its last token stops verifying. */
export interface FamilyRevocation {
  family: string;
  deviceId: string;
  /** Seconds since the epoch: when it was revoked. */
  atSec: number;
  /** Seconds since the epoch: when the last token of the family stops verifying. */
  untilSec: number;
}

export interface Revocations {
  revokeFamily(revocation: FamilyRevocation): Promise<void>;
  /** Every revocation whose `untilSec` is still ahead (for a view's resync). */
  list(nowSec: number): Promise<FamilyRevocation[]>;
}

export type PublishedKeyState = 'active' | 'verifying' | 'retired';

/** A gateway's public key as the fleet sees it. The private key never leaves its gateway. */
export interface PublishedKey {
  kid: string;
  alg: 'ES256' | 'EdDSA';
  state: PublishedKeyState;
  /** Which gateway holds the private key (its state directory's gateway id). */
  gateway: string;
  createdAt: string;
  verifyUntil?: string;
  retiredAt?: string;
  publicJwk: JWK;
}

export interface PublicKeys {
  /** Records a key (new, or a state change by its own gateway). */
  publish(key: PublishedKey): Promise<void>;
  /** Every key the store knows, retired ones included (they are pruned a while after retirement). */
  list(): Promise<PublishedKey[]>;
  /**
   * Retires `kid` fleet-wide, from any gateway or CLI. Resolves false when no such key is active
   * or verifying; rejects with AdminError GW_ERR_ADMIN_ONLY_ACTIVE_KEY for an active key.
   */
  retire(kid: string, atIso: string): Promise<boolean>;
}

export interface LimiterOptions {
  /** Distinguishes the limiter's keys from other limiters' in a shared store. */
  keyPrefix: string;
  points: number;
  durationSec: number;
}

/** Counters shared by the fleet: one API (rate-limiter-flexible) over memory or Redis. */
export interface Limits {
  limiter(options: LimiterOptions): RateLimiterAbstract;
}

/** Changes, as the feed reports them; each arrives after the change is visible to the ports. */
export type StoreChange =
  | { kind: 'device'; id: string }
  | { kind: 'key'; kid: string }
  | { kind: 'revocation'; revocation: FamilyRevocation }
  /** The feed may have missed changes (a reconnect, a compacted log): re-read everything held. */
  | { kind: 'resync' };

export type StoreKind = 'file' | 'redis';

export interface Store {
  readonly kind: StoreKind;
  readonly devices: DeviceRegistry;
  readonly onceIds: OneTimeIds;
  readonly revocations: Revocations;
  readonly keys: PublicKeys;
  readonly limits: Limits;
  /** Listens to the change feed (this process's changes too); returns the unsubscribe. */
  subscribe(listener: (change: StoreChange) => void): () => void;
  /** Listens to the backend going down and coming back (for the `file` store it never does). */
  onAvailability(listener: (up: boolean) => void): () => void;
  /** Whether the backend answers now. */
  available(): boolean;
  /** Round trips to the backend so far (for `store_calls_total` and the bench). */
  calls(): number;
  close(): Promise<void>;
}

/** How long a device is told to wait when the store cannot answer. */
export const STORE_RETRY_AFTER_SEC = 5;

/**
 * The store did not answer (Redis down, or too slow): logins and refreshes fail closed with 5.03
 * and Max-Age, while tokens already verified keep being served from memory.
 */
export class StoreUnavailableError extends GatewayError {
  constructor(message: string, cause?: unknown) {
    super('GW_ERR_STORE_UNAVAILABLE', message, { cause, maxAgeSec: STORE_RETRY_AFTER_SEC });
  }
}
