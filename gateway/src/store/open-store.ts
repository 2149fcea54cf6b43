import type { StoreConfig } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import type { Store } from './ports.ts';
import { logTightened } from './state-dir-mode.ts';

export interface OpenStoreOptions {
  /** The `file` store lives in it; with `redis` it holds only this gateway's private keys. */
  stateDir: string;
  nowMs?: () => number;
  logger?: Logger;
  /** `file`: OSCORE replay windows held in memory at once (default 100,000); past it the least recently used is forgotten. */
  maxOscoreWindows?: number;
  /** `file`: called for each replay window forgotten to stay within maxOscoreWindows (an eviction metric). */
  onOscoreWindowEvicted?: () => void;
  /** `redis`: how long a replay window lives without a fresh request (default 30 days). */
  oscoreWindowIdleSec?: number;
}

/**
 * Opens the configured store. Redis is loaded only when chosen, so a gateway on the embedded
 * file store never loads a Redis client.
 */
export async function openStore(config: StoreConfig, options: OpenStoreOptions): Promise<Store> {
  const { logger, nowMs } = options;
  if (config.kind === 'file') {
    const { buildFileStore } = await import('./file/index.ts');
    return buildFileStore(options.stateDir, {
      ...(nowMs !== undefined ? { nowMs } : {}),
      ...(options.maxOscoreWindows !== undefined ? { maxOscoreWindows: options.maxOscoreWindows } : {}),
      ...(options.onOscoreWindowEvicted !== undefined ? { onOscoreWindowEvicted: options.onOscoreWindowEvicted } : {}),
      onTightened: (change) => { if (logger !== undefined) logTightened(logger, change); },
    });
  }
  const { buildRedisStore } = await import('./redis/index.ts');
  return buildRedisStore({
    url: config.url, keyPrefix: config.keyPrefix, connectTimeoutMs: config.connectTimeoutMs,
    commandTimeoutMs: config.commandTimeoutMs, ...(nowMs !== undefined ? { nowMs } : {}),
    ...(options.oscoreWindowIdleSec !== undefined ? { oscoreWindowIdleSec: options.oscoreWindowIdleSec } : {}),
    onLog: (level, message, fields) => logger?.[level](fields ?? {}, message),
  });
}
