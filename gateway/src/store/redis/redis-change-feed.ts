import { asRevocation, type StoreChange } from '../ports.ts';

export type StoreLog = (level: 'info' | 'warn' | 'error', message: string, fields?: object) => void;

/** A change as it travels on the channel: `resync` never does (each process makes its own). */
export type PublishedChange = Exclude<StoreChange, { kind: 'resync' }>;

export interface ChangeFeed {
  subscribe(listener: (change: StoreChange) => void): () => void;
  /** A message from the channel: decoded and handed to every listener; a malformed one is logged and dropped. */
  deliver(message: string): void;
  /** The subscription was lost and is back: listeners re-read what they hold. */
  resync(): void;
}

/** The channel's message for a change: small JSON, made here only (Lua scripts publish it as given). */
export function encodeChange(change: PublishedChange): string {
  return JSON.stringify(change);
}

/**
 * Fans the channel's messages out to this process's listeners. A listener that throws is logged
 * and the others still hear the change: nothing thrown here may reach ioredis's event emitter.
 */
export function createChangeFeed(onLog: StoreLog): ChangeFeed {
  const listeners = new Set<(change: StoreChange) => void>();
  const emit = (change: StoreChange): void => {
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch (error) {
        onLog('error', 'store change listener failed', { change: change.kind, error: String(error) });
      }
    }
  };
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    deliver(message) {
      const change = decodeChange(message);
      if (change === undefined) {
        onLog('warn', 'store change feed: malformed message dropped', { bytes: message.length });
        return;
      }
      emit(change);
    },
    resync() {
      emit({ kind: 'resync' });
    },
  };
}

function decodeChange(message: string): PublishedChange | undefined {
  let value: unknown;
  try {
    value = JSON.parse(message);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const change = value as Record<string, unknown>;
  switch (change.kind) {
    case 'device':
      return typeof change.id === 'string' ? { kind: 'device', id: change.id } : undefined;
    case 'key':
      return typeof change.kid === 'string' ? { kind: 'key', kid: change.kid } : undefined;
    case 'revocation': {
      const revocation = asRevocation(change.revocation);
      return revocation === undefined ? undefined : { kind: 'revocation', revocation };
    }
    default:
      return undefined;
  }
}
