import type { Store } from '../ports.ts';
import { createChangeFeed, type StoreLog } from './redis-change-feed.ts';
import { createRedisDevices } from './redis-devices.ts';
import { redisKeyLayout, type RedisPortContext } from './redis-key-layout.ts';
import { createRedisLimits } from './redis-limits.ts';
import { createRedisNonces } from './redis-nonces.ts';
import { createRedisOnceIds } from './redis-once-ids.ts';
import { createRedisOscoreWindows } from './redis-oscore-windows.ts';
import { createRedisPublicKeys } from './redis-public-keys.ts';
import { createRedisRefreshFamilies } from './redis-refresh-families.ts';
import { createRedisRevocations } from './redis-revocations.ts';
import { defineStoreScripts } from './redis-scripts.ts';
import { openRedisSession } from './redis-session.ts';
import { parseRedisUrl } from './redis-url.ts';

export interface RedisStoreOptions {
  /** `redis://[[USER]:PASSWORD@]HOST:PORT[/DB]`, `rediss://...` (TLS) or `redis+unix:///PATH[?db=DB]`: see parseRedisUrl. */
  url: string;
  /** Before every key and the feed's channel, so fleets (or tests) can share one Redis. */
  keyPrefix: string;
  /** How long opening may take before the store (and the gateway) gives up. */
  connectTimeoutMs: number;
  /** How long one round trip may take before it fails with StoreUnavailableError. */
  commandTimeoutMs: number;
  nowMs?: () => number;
  onLog?: StoreLog;
  /** How long an OSCORE replay window lives without a fresh request (default 30 days); then its next request recovers with Echo. */
  oscoreWindowIdleSec?: number;
}

/** Thirty days: a device that sends less often than that pays one Echo round trip for its next request. */
export const DEFAULT_OSCORE_WINDOW_IDLE_SEC = 30 * 24 * 3600;

/**
 * The `redis` store, for a fleet of gateways on one Redis: two connections (commands, and a
 * subscriber for the change feed), every change published on `<prefix>changes`. Resolves once
 * both are connected; rejects with StoreUnavailableError when Redis does not answer within
 * `connectTimeoutMs`. Afterwards it never throws for Redis being down: it reports it
 * (`available`, `onAvailability`, StoreUnavailableError from each call), reconnects by itself,
 * and asks listeners for a resync when the feed is back.
 */
export async function buildRedisStore(options: RedisStoreOptions): Promise<Store> {
  for (const name of ['connectTimeoutMs', 'commandTimeoutMs'] as const) {
    const value = options[name];
    if (!Number.isInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer of milliseconds, got ${value}`);
  }
  const oscoreWindowIdleSec = options.oscoreWindowIdleSec ?? DEFAULT_OSCORE_WINDOW_IDLE_SEC;
  if (!Number.isInteger(oscoreWindowIdleSec) || oscoreWindowIdleSec < 1) {
    throw new TypeError(`oscoreWindowIdleSec must be a positive integer of seconds, got ${oscoreWindowIdleSec}`);
  }
  const target = parseRedisUrl(options.url);
  const layout = redisKeyLayout(options.keyPrefix);
  const onLog: StoreLog = options.onLog ?? (() => undefined);
  const feed = createChangeFeed(onLog);
  const session = await openRedisSession({
    target,
    connectTimeoutMs: options.connectTimeoutMs,
    commandTimeoutMs: options.commandTimeoutMs,
    channel: layout.changes,
    onLog,
    onMessage: (message) => feed.deliver(message),
    onResync: () => feed.resync(),
  });
  const context: RedisPortContext = {
    session, scripts: defineStoreScripts(session.client), layout, nowMs: options.nowMs ?? Date.now, oscoreWindowIdleMs: oscoreWindowIdleSec * 1000,
  };
  return {
    kind: 'redis',
    devices: createRedisDevices(context),
    onceIds: createRedisOnceIds(context),
    refreshFamilies: createRedisRefreshFamilies(context),
    nonces: createRedisNonces(context),
    revocations: createRedisRevocations(context),
    keys: createRedisPublicKeys(context),
    limits: createRedisLimits(context),
    oscoreWindows: createRedisOscoreWindows(context),
    subscribe: (listener) => feed.subscribe(listener),
    onAvailability: (listener) => session.onAvailability(listener),
    available: () => session.available(),
    calls: () => session.calls(),
    close: () => session.close(),
  };
}
