import { Redis, type RedisOptions } from 'ioredis';
import { StoreUnavailableError } from '../ports.ts';
import type { StoreLog } from './redis-change-feed.ts';
import type { RedisTarget } from './redis-url.ts';

export interface RedisSessionOptions {
  target: RedisTarget;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** The pub/sub channel of the change feed. */
  channel: string;
  onLog: StoreLog;
  /** A message on the channel (called from an ioredis event: must not throw). */
  onMessage: (message: string) => void;
  /** The subscription was lost and is back, and commands work: the feed may have missed changes. */
  onResync: () => void;
}

/** The two connections of one store: commands, and a subscriber for the change feed. */
export interface RedisSession {
  readonly client: Redis;
  /**
   * One round trip (a command, a script, or a MULTI): counted, and any failure (Redis down, too
   * slow, or refusing) rejects with StoreUnavailableError, never a raw ioredis error.
   */
  run<T>(send: (client: Redis) => Promise<T>): Promise<T>;
  /** The same mapping for round trips made by a library on `client` (the rate limiter). */
  unavailable(error: unknown): StoreUnavailableError;
  count(): void;
  calls(): number;
  available(): boolean;
  onAvailability(listener: (up: boolean) => void): () => void;
  close(): Promise<void>;
}

/** Reconnect at once, then back off to this, forever: Redis coming back is found within 2 s. */
const RETRY_CAP_MS = 2000;
const retryDelayMs = (attempt: number): number => Math.min(100 * 2 ** Math.min(attempt, 10), RETRY_CAP_MS);

/**
 * Opens both connections and resolves once commands work and the feed is subscribed; rejects
 * with StoreUnavailableError when that takes longer than `connectTimeoutMs` (the gateway will
 * not start without its store). After that it reconnects by itself, forever.
 */
export async function openRedisSession(options: RedisSessionOptions): Promise<RedisSession> {
  const { target, onLog } = options;
  const connectionOptions: RedisOptions = {
    ...target.connection,
    connectTimeout: options.connectTimeoutMs,
    commandTimeout: options.commandTimeoutMs,
    retryStrategy: retryDelayMs,
    // While Redis is down every command fails at once (a device gets 5.03 and Max-Age) instead of
    // waiting in a queue; one in flight when the connection drops fails too, and is never re-sent.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // The subscriber subscribes on every `ready` itself, so it knows when to ask for a resync.
    autoResubscribe: false,
    connectionName: 'coap-gateway',
  };
  const client = new Redis(connectionOptions);
  const subscriber = new Redis(connectionOptions);

  let opened = false;
  let closing = false;
  let up = false;
  let subscribed = false;
  let resyncPending = false;
  let lastError: Error | undefined;
  let calls = 0;
  const availabilityListeners = new Set<(up: boolean) => void>();

  const unavailable = (error: unknown): StoreUnavailableError => {
    if (error instanceof StoreUnavailableError) return error;
    const reason = error instanceof Error ? error.message : String(error);
    return new StoreUnavailableError(`redis at ${target.describe}: ${reason}`, error);
  };
  const announce = (nowUp: boolean): void => {
    for (const listener of [...availabilityListeners]) {
      try {
        listener(nowUp);
      } catch (error) {
        onLog('error', 'store availability listener failed', { error: String(error) });
      }
    }
  };
  const resyncIfDue = (): void => {
    if (!resyncPending || !subscribed || !up) return;
    resyncPending = false;
    options.onResync();
  };
  const subscribe = async (): Promise<void> => {
    await subscriber.subscribe(options.channel);
    subscribed = true;
  };

  // ioredis emits 'error' for every failed (re)connection: without a listener it would print
  // each one, and an EventEmitter 'error' with no listener throws. The reason is kept for the log.
  const keepError = (error: Error): void => {
    lastError = error;
  };
  client.on('error', keepError);
  subscriber.on('error', keepError);
  client.on('close', () => {
    if (!opened || closing || !up) return;
    up = false;
    onLog('warn', 'store: redis is down; logins and refreshes answer 5.03 until it is back', {
      redis: target.describe, error: lastError?.message,
    });
    announce(false);
  });
  client.on('ready', () => {
    if (!opened || closing || up) return;
    up = true;
    onLog('info', 'store: redis is back', { redis: target.describe });
    announce(true);
    resyncIfDue();
  });
  subscriber.on('close', () => {
    if (!opened || closing) return;
    subscribed = false;
    resyncPending = true;
  });
  subscriber.on('ready', () => {
    if (!opened || closing) return;
    subscribe().then(resyncIfDue, (error: unknown) => {
      lastError = error instanceof Error ? error : new Error(String(error));
      // Connected but not subscribed would be a silent feed: start over.
      if (!closing) subscriber.disconnect(true);
    });
  });
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === options.channel) options.onMessage(message);
  });

  const close = async (): Promise<void> => {
    closing = true;
    await Promise.all([shut(client), shut(subscriber)]);
  };

  let guard: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    guard = setTimeout(() => reject(new StoreUnavailableError(
      `redis at ${target.describe} did not answer within ${options.connectTimeoutMs} ms${lastError === undefined ? '' : ` (${lastError.message})`}`,
      lastError,
    )), options.connectTimeoutMs);
  });
  try {
    await Promise.race([Promise.all([whenReady(client), whenReady(subscriber).then(subscribe)]), timedOut]);
  } catch (error) {
    await close();
    throw unavailable(error);
  } finally {
    clearTimeout(guard);
  }
  opened = true;
  up = client.status === 'ready';

  return {
    client,
    async run(send) {
      if (client.status === 'ready') calls += 1;
      try {
        return await send(client);
      } catch (error) {
        throw unavailable(error);
      }
    },
    unavailable,
    count() {
      if (client.status === 'ready') calls += 1;
    },
    calls: () => calls,
    available: () => up,
    onAvailability(listener) {
      availabilityListeners.add(listener);
      return () => {
        availabilityListeners.delete(listener);
      };
    },
    close,
  };
}

function whenReady(connection: Redis): Promise<void> {
  if (connection.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve) => connection.once('ready', () => resolve()));
}

/** Quits a connection and waits until its socket is closed (no reconnect timer left behind). */
async function shut(connection: Redis): Promise<void> {
  const status = connection.status;
  if (status === 'end') return;
  // Only a connection with a socket reaches 'end'; one waiting to reconnect just drops its timer.
  const hasSocket = status === 'connecting' || status === 'connect' || status === 'ready';
  const ended = hasSocket ? new Promise<void>((resolve) => connection.once('end', () => resolve())) : Promise.resolve();
  if (status === 'ready') {
    await connection.quit().catch(() => connection.disconnect());
  } else {
    connection.disconnect();
  }
  await ended;
}
