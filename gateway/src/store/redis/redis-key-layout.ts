import type { RedisSession } from './redis-session.ts';
import type { StoreScripts } from './redis-scripts.ts';

/** Every Redis key the store uses, under one prefix (default `gw:`), so fleets can share a Redis. */
export interface RedisKeyLayout {
  /** Hash: device id -> DeviceRecord JSON (HLEN counts, HSCAN lists). */
  devices: string;
  /** String per spent id, expiring with it: `<prefix>once:<id>`. */
  onceId(id: string): string;
  /** String per refresh family (RefreshFamily JSON), expiring with its current token: `<prefix>family:<id>`. */
  family(id: string): string;
  /** The prefix of `family(id)`, for scripts that name a device's families. */
  familyPrefix: string;
  /** Sorted set per device: its live families by start time (for MAX_FAMILIES_PER_DEVICE). */
  deviceFamilies(deviceId: string): string;
  deviceFamiliesPrefix: string;
  /** String per outstanding nonce (NonceEntry JSON), expiring with it: `<prefix>nonce:<nonce>`. */
  nonce(nonce: string): string;
  /** Hash: `family:<id>` or `token:<jti>` -> Revocation JSON (fields from before tokens: the bare family). */
  revocations: string;
  /** Sorted set: family scored by untilSec (what is still revoked, what to prune). */
  revocationsUntil: string;
  /** Hash: kid -> PublishedKey JSON. */
  keys: string;
  /** Sorted set: retired kid scored by retiredAt in ms (pruned 7 days after). */
  keysRetired: string;
  /** Prefix of rate-limiter-flexible's counters: `<prefix>limits:<limiter keyPrefix>:<key>`. */
  limits: string;
  /** Pub/sub channel of the change feed. */
  changes: string;
  /** Hash: OSCORE Sender ID (hex) -> device id, written in the same script as the record. */
  oscoreSenders: string;
  /** String: how many Sender IDs were ever handed out (INCRBY; never decremented). */
  oscoreSenderCounter: string;
  /** String per context generation: its replay window, `<highest>:<mask>`, expiring when idle: `<prefix>oscore-window:<generation>`. */
  oscoreWindow(generation: string): string;
  oscoreWindowPrefix: string;
  /** String per context generation: the gateway's next sender sequence number (INCRBY): `<prefix>oscore-seq:<generation>`. */
  oscoreSequence(generation: string): string;
  oscoreSequencePrefix: string;
}

export function redisKeyLayout(prefix: string): RedisKeyLayout {
  return {
    devices: `${prefix}devices`,
    onceId: (id) => `${prefix}once:${id}`,
    family: (id) => `${prefix}family:${id}`,
    familyPrefix: `${prefix}family:`,
    deviceFamilies: (deviceId) => `${prefix}device-families:${deviceId}`,
    deviceFamiliesPrefix: `${prefix}device-families:`,
    nonce: (nonce) => `${prefix}nonce:${nonce}`,
    revocations: `${prefix}revocations`,
    revocationsUntil: `${prefix}revocations:until`,
    keys: `${prefix}keys`,
    keysRetired: `${prefix}keys:retired`,
    limits: `${prefix}limits:`,
    changes: `${prefix}changes`,
    oscoreSenders: `${prefix}oscore-senders`,
    oscoreSenderCounter: `${prefix}oscore-sender-counter`,
    oscoreWindow: (generation) => `${prefix}oscore-window:${generation}`,
    oscoreWindowPrefix: `${prefix}oscore-window:`,
    oscoreSequence: (generation) => `${prefix}oscore-seq:${generation}`,
    oscoreSequencePrefix: `${prefix}oscore-seq:`,
  };
}

/** What each port of the Redis store is built from. */
export interface RedisPortContext {
  session: RedisSession;
  scripts: StoreScripts;
  layout: RedisKeyLayout;
  nowMs: () => number;
  /** How long an OSCORE replay window lives without a fresh request (then the next one recovers with Echo). */
  oscoreWindowIdleMs: number;
}
