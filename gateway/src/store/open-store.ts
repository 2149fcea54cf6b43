import type { StoreConfig } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import type { Store } from './ports.ts';
import { logTightened } from './state-dir-mode.ts';

export interface OpenStoreOptions {
  /** The `file` store lives in it; with `redis` it holds only this gateway's private keys. */
  stateDir: string;
  nowMs?: () => number;
  logger?: Logger;
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
      onTightened: (change) => { if (logger !== undefined) logTightened(logger, change); },
    });
  }
  const { buildRedisStore } = await import('./redis/index.ts');
  return buildRedisStore({
    url: config.url, keyPrefix: config.keyPrefix, connectTimeoutMs: config.connectTimeoutMs,
    commandTimeoutMs: config.commandTimeoutMs, ...(nowMs !== undefined ? { nowMs } : {}),
    onLog: (level, message, fields) => logger?.[level](fields ?? {}, message),
  });
}
