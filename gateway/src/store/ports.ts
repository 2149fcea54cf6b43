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

/** A device's own public key, for assertion login: the private key never leaves the device. */
export interface DeviceKey {
  /** The key's id: the JWK's own `kid`, else its RFC 7638 thumbprint. */
  kid: string;
  alg: 'ES256' | 'EdDSA';
  /** The public JWK (EC P-256 or OKP Ed25519), with no private members. */
  publicJwk: JWK;
  /** ISO 8601. */
  addedAt: string;
  /** ISO 8601: assertions signed by this key are refused from then on. */
  expiresAt?: string;
}

/** A provisioned device. Only a hash of its secret is ever stored, and only public keys. */
export interface DeviceRecord {
  id: string;
  /** base64url SHA-256 of the device's 32-byte secret; absent for a device that logs in only with its keys. */
  secretHash?: string;
  /** At most MAX_DEVICE_KEYS public keys; absent or empty for a device that logs in only with its secret. */
  keys?: DeviceKey[];
  scopes: string[];
  /** ISO 8601. */
  createdAt: string;
  /**
   * Random (16 bytes, base64url), made when the device is provisioned and again when it is
   * revoked; tokens carry it as `rid`, so removing a device and adding it again, or revoking it,
   * refuses its old tokens. Older state files have none: such a record counts as
   * `legacy:${createdAt}` (see `recordIdOf`).
   */
  recordId?: string;
  /** A disabled device can neither log in nor refresh, and its tokens are refused, until enabled. */
  disabled?: boolean;
  /** The access-token format of a login that does not ask for one (key 6); absent: JWT. */
  tokenFormat?: 'jwt' | 'cwt';
  /** The device's OSCORE security context (RFC 8613), when it has one: it holds the master secret. */
  oscore?: DeviceOscore;
  /** `oscore`: the device is refused without OSCORE (login, refresh, tokens). Absent: either way. */
  security?: 'oscore';
}

/**
 * One device's OSCORE security context, as the store keeps it (AES-CCM-16-64-128, HKDF-SHA-256,
 * no ID Context). The record is the only place the master secret and salt are kept; listings never
 * show them. Sender and Recipient ID are named from the device's side, as its firmware holds them.
 */
export interface DeviceOscore {
  /** The device's Sender ID (the gateway's Recipient ID for it), lower-case hex: unique in the fleet, never empty. */
  senderId: string;
  /** The gateway's Sender ID in this context, lower-case hex: always '' (each context has its own master secret). */
  recipientId: string;
  /** base64url, 16 random bytes. */
  masterSecret: string;
  /** base64url, 8 random bytes. */
  masterSalt: string;
  /**
   * Random (12 bytes, base64url), new with every context made for the device: names its replay
   * window and the gateway's sender sequence numbers (`OscoreWindows`), so a rotated context starts
   * both afresh while keeping the device's Sender ID.
   */
  generation: string;
  /** ISO 8601. */
  createdAt: string;
}

/** A device holds at most this many public keys at once (as Cloud IoT Core did). */
export const MAX_DEVICE_KEYS = 3;

export interface DeviceRegistry {
  get(id: string): Promise<DeviceRecord | undefined>;
  /** Adds all or none; rejects with AdminError GW_ERR_ADMIN_DUPLICATE_DEVICE on an id that exists. */
  add(records: readonly DeviceRecord[]): Promise<void>;
  /**
   * Compare-and-set: replaces the device's record with `next` only if it is still `expected`
   * (as `get` returned it). Resolves false when it changed or went meanwhile (read it again).
   */
  replace(expected: DeviceRecord, next: DeviceRecord): Promise<boolean>;
  /** Resolves false when there was no such device. */
  remove(id: string): Promise<boolean>;
  count(): Promise<number>;
  /** Every device, in batches, in no particular order (a listing of a million costs a million). */
  list(): AsyncIterable<DeviceRecord[]>;
  /**
   * The id of the device whose OSCORE context has this Sender ID (lower-case hex, as `oscore.senderId`),
   * or undefined. The index is kept in step with add, replace and remove: `add` and `replace` reject
   * with AdminError GW_ERR_ADMIN_CONFLICT when a record's Sender ID is another device's.
   */
  idOfSender(senderIdHex: string): Promise<string | undefined>;
  /**
   * Takes `count` Sender IDs (lower-case hex) from the fleet's counter, in order: the first 256 are
   * 1 byte, the next 65536 are 2, then 3 (`senderIdOfCounter`). An id is handed out once, ever: a
   * removed device's stays spent. Rejects with AdminError GW_ERR_ADMIN_STATE when the ids are spent.
   */
  allocateSenderIds(count: number): Promise<string[]>;
}

/** One-use ids: replayed assertion jtis. */
export interface OneTimeIds {
  /**
   * Marks `id` spent. Resolves false when it was spent already. The store may forget it after
   * `expiresAtSec` (seconds since the epoch), which callers set to when the id stops mattering.
   */
  consume(id: string, expiresAtSec: number): Promise<boolean>;
}

/**
 * A login's refresh-token family (RFC 9700 section 4.14.2): the store keeps only the hash of the
 * one refresh token that is good now, so each is used once and a spent one is recognised.
 */
export interface RefreshFamily {
  family: string;
  deviceId: string;
  /** The device record the family was started for: a revoked device's families end with it. */
  recordId: string;
  /** base64url SHA-256 of the family's current refresh token. */
  currentHash: string;
  /** Seconds since the epoch: the current refresh token's expiry; the family is forgotten then. */
  expiresAtSec: number;
}

export type RotateOutcome =
  /** The presented token was the current one: the family moved on to the next. */
  | { outcome: 'rotated'; family: RefreshFamily }
  /** The family exists and the presented token is not its current one: spent (or forged). */
  | { outcome: 'reused'; family: RefreshFamily }
  /** No such family (never, expired, or ended). */
  | { outcome: 'unknown' };

export interface RefreshFamilies {
  /**
   * Starts a family. A device keeps at most MAX_FAMILIES_PER_DEVICE: its oldest family ends
   * when a login would start one more (the device holds a newer refresh token by then).
   */
  start(family: RefreshFamily): Promise<void>;
  /** Atomically: if `presentedHash` is the current token's, the next one becomes current. */
  rotate(family: string, presentedHash: string, next: { currentHash: string; expiresAtSec: number }): Promise<RotateOutcome>;
  /** Ends a family: its current refresh token stops working. Resolves false when there was none. */
  end(family: string): Promise<boolean>;
}

/** Live refresh families per device; a login past it ends the device's oldest. */
export const MAX_FAMILIES_PER_DEVICE = 3;

/** Gateway nonces for devices without a clock: issued by `POST /auth/nonce`, taken once by a login. */
export interface NonceEntry {
  /** The address it was issued to. */
  address: string;
  issuedAtMs: number;
}

export interface Nonces {
  /** Keeps `nonce` until `issuedAtMs + ttlMs`. */
  put(nonce: string, entry: NonceEntry, ttlMs: number): Promise<void>;
  /** Takes `nonce` once: its entry, or undefined when unknown, expired or taken already. */
  take(nonce: string): Promise<NonceEntry | undefined>;
}

/** A refresh family revoked (RFC 9700 section 4.14.2) until its last token stops verifying. */
export interface FamilyRevocation {
  kind?: 'family';
  family: string;
  deviceId: string;
  /** Seconds since the epoch: when it was revoked. */
  atSec: number;
  /** Seconds since the epoch: when the last token of the family stops verifying. */
  untilSec: number;
}

/** One access token revoked by its `jti` (`gateway tokens revoke`), until it can no longer verify. */
export interface TokenRevocation {
  kind: 'token';
  jti: string;
  atSec: number;
  untilSec: number;
}

export type Revocation = FamilyRevocation | TokenRevocation;

/** The key a revocation is stored under: one entry per family, one per jti. */
export function revocationKey(revocation: Revocation): string {
  return revocation.kind === 'token' ? `token:${revocation.jti}` : `family:${revocation.family}`;
}

/** A revocation read back from a journal or a channel, checked; undefined when it is not one. */
export function asRevocation(value: unknown): Revocation | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (typeof r.atSec !== 'number' || typeof r.untilSec !== 'number') return undefined;
  if (r.kind === 'token') return typeof r.jti === 'string' ? value as TokenRevocation : undefined;
  if (r.kind !== undefined && r.kind !== 'family') return undefined;
  return typeof r.family === 'string' && typeof r.deviceId === 'string' ? value as FamilyRevocation : undefined;
}

export interface Revocations {
  /** Records a family's revocation (a second one of the same family replaces the first). */
  revokeFamily(revocation: FamilyRevocation): Promise<void>;
  /** Records a token's revocation (a second one of the same jti replaces the first). */
  revokeToken(revocation: TokenRevocation): Promise<void>;
  /** Every revocation whose `untilSec` is still ahead (for a view's resync). */
  list(nowSec: number): Promise<Revocation[]>;
}

/** What `OscoreWindows.accept` says of a request's sequence number (its Partial IV). */
export type WindowVerdict =
  /** Not seen before: recorded, so the same number is a replay from now on, on every gateway sharing the windows. */
  | 'fresh'
  /** Seen already, or older than the window: refuse it (RFC 8613 section 7.4). */
  | 'replay'
  /** No window is held for this context generation (never established, lost in a restart, evicted): recover it with Echo (Appendix B.1.2). */
  | 'unknown';

/**
 * The replay windows of the devices' OSCORE contexts (RFC 8613 section 7.4, window 32: the highest
 * sequence number seen and which of the 32 below it were), and the gateway's own sender sequence
 * numbers, each named by the context's `generation`. Sequence numbers are whole numbers from 0 to
 * MAX_SEQUENCE_NUMBER (2^40 - 1, a 5-byte Partial IV); others reject with a RangeError.
 */
export interface OscoreWindows {
  /** 'fresh' (and recorded), 'replay', or 'unknown' when no window is held for this context generation. */
  accept(generation: string, sequenceNumber: number): Promise<WindowVerdict>;
  /**
   * (Re)starts the window: at `sequenceNumber` as received, every number up to it counted as seen
   * (after an Echo recovery, Appendix B.1.2), or empty for a new context (its first request is fresh).
   */
  establish(generation: string, sequenceNumber?: number): Promise<void>;
  /**
   * Reserves `count` of the gateway's sender sequence numbers for this context; returns the first.
   * Never twice the same, fleet-wide, across restarts (written before it resolves: Appendix B.1.1).
   * Rejects with a RangeError when the block would pass MAX_SEQUENCE_NUMBER (the context is spent:
   * rotate it).
   */
  reserveSequence(generation: string, count: number): Promise<number>;
  /**
   * Drops the context's window, and retires its sender sequence numbers (kept a while, so that a
   * gateway still holding the context never starts them over). The device registry does this by
   * itself when a record's context is rotated, dropped or removed (Redis: in the same script; the
   * file store: the sequence numbers on disk, and the window if this process holds it). A gateway
   * on the file store whose context was ended by another process (the CLI) may call it for the
   * window it holds, or leave that to the bound: a generation is never used again.
   */
  forget(generation: string): Promise<void>;
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
  | { kind: 'revocation'; revocation: Revocation }
  /** The feed may have missed changes (a reconnect, a compacted log): re-read everything held. */
  | { kind: 'resync' };

export type StoreKind = 'file' | 'redis';

export interface Store {
  readonly kind: StoreKind;
  readonly devices: DeviceRegistry;
  readonly onceIds: OneTimeIds;
  readonly refreshFamilies: RefreshFamilies;
  readonly nonces: Nonces;
  readonly revocations: Revocations;
  readonly keys: PublicKeys;
  readonly limits: Limits;
  readonly oscoreWindows: OscoreWindows;
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
