import { BridgeError } from '../errors.ts';
import type { Layer } from './layer.ts';

/** How long a device should wait before it tries a gateway that is stopping (RFC 7252 section 5.10.5). */
const STOPPING_RETRY_SEC = 5;

export interface DrainLayer extends Layer {
  /** From now on, every new request gets 5.03 with Max-Age; those already above finish. */
  stop(): void;
}

/**
 * Refuses new requests once the gateway is stopping, so that those in flight can finish. It sits
 * above the message protection (OSCORE, next): its 5.03 is protected like any other answer.
 */
export function createDrainLayer(): DrainLayer {
  let stopping = false;
  return {
    async handle(inbound, next) {
      if (stopping) throw new BridgeError('GW_ERR_BUSY', 'gateway shutting down', { maxAgeSec: STOPPING_RETRY_SEC });
      return next(inbound);
    },
    stop() {
      stopping = true;
    },
  };
}
