import type { Peer } from './peer.ts';

/** RFC 7252 section 4.8: the transmission parameters, defaults of the RFC. */
export interface TransmissionParameters {
  ackTimeoutMs: number;
  ackRandomFactor: number;
  maxRetransmit: number;
}

export const DEFAULT_TRANSMISSION: TransmissionParameters = { ackTimeoutMs: 2000, ackRandomFactor: 1.5, maxRetransmit: 4 };

/**
 * How a confirmable message ended: acknowledged, rejected (RST), never acknowledged, pushed out
 * by a newer one when the table was full, or dropped because the endpoint closed.
 */
export type Settled = 'ack' | 'reset' | 'timeout' | 'evicted' | 'cleared';

interface Outstanding {
  readonly peer: Peer;
  readonly datagram: Buffer;
  readonly onSettled: ((how: Settled) => void) | undefined;
  retransmissions: number;
  timeoutMs: number;
  timer: NodeJS.Timeout;
}

export interface RetransmissionsOptions {
  send: (datagram: Buffer, peer: Peer) => void;
  maxOutstanding: number;
  parameters?: TransmissionParameters;
  random?: () => number;
  onRetransmit?: () => void;
  /** Given up after MAX_RETRANSMIT, or pushed out by a newer one when the table was full. */
  onGiveUp?: (reason: 'timeout' | 'evicted') => void;
}

/**
 * The confirmable messages the endpoint sends (separate responses, RFC 7252 section 5.2.2; and
 * notifications, RFC 7641 section 4.5) waiting for the device's ACK: retransmitted after
 * ACK_TIMEOUT x a random factor, doubling each time, MAX_RETRANSMIT times (section 4.2), and
 * stopped by the matching ACK or RST. Bounded: the oldest goes first.
 */
export class Retransmissions {
  readonly #outstanding = new Map<string, Outstanding>();
  readonly #options: RetransmissionsOptions;
  readonly #parameters: TransmissionParameters;
  readonly #random: () => number;

  constructor(options: RetransmissionsOptions) {
    this.#options = options;
    this.#parameters = options.parameters ?? DEFAULT_TRANSMISSION;
    this.#random = options.random ?? Math.random;
  }

  get size(): number {
    return this.#outstanding.size;
  }

  /** Sends `datagram` now and again until it is settled; `onSettled` hears how it ended. */
  send(key: string, peer: Peer, datagram: Buffer, onSettled?: (how: Settled) => void): void {
    // The same message ID to the same peer again (the ID counter wrapped): the new one replaces it.
    this.#stop(key, 'evicted');
    if (this.#outstanding.size >= this.#options.maxOutstanding) {
      const oldest = this.#outstanding.keys().next();
      if (oldest.done !== true) {
        this.#stop(oldest.value, 'evicted');
        this.#options.onGiveUp?.('evicted');
      }
    }
    const { ackTimeoutMs, ackRandomFactor } = this.#parameters;
    const timeoutMs = ackTimeoutMs * (1 + this.#random() * (ackRandomFactor - 1));
    const entry: Outstanding = { peer, datagram, onSettled, retransmissions: 0, timeoutMs, timer: this.#arm(key, timeoutMs) };
    this.#outstanding.set(key, entry);
    this.#options.send(datagram, peer);
  }

  /** The device's ACK or RST for this message: stop. False when nothing was waiting for it. */
  settle(key: string, how: 'ack' | 'reset'): boolean {
    return this.#stop(key, how);
  }

  clear(): void {
    for (const key of [...this.#outstanding.keys()]) this.#stop(key, 'cleared');
  }

  #arm(key: string, afterMs: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.#retransmit(key), afterMs);
    timer.unref();
    return timer;
  }

  #retransmit(key: string): void {
    const entry = this.#outstanding.get(key);
    if (entry === undefined) return;
    if (entry.retransmissions >= this.#parameters.maxRetransmit) {
      this.#outstanding.delete(key);
      this.#options.onGiveUp?.('timeout');
      entry.onSettled?.('timeout');
      return;
    }
    entry.retransmissions += 1;
    entry.timeoutMs *= 2;
    entry.timer = this.#arm(key, entry.timeoutMs);
    this.#options.onRetransmit?.();
    this.#options.send(entry.datagram, entry.peer);
  }

  #stop(key: string, how: Settled): boolean {
    const entry = this.#outstanding.get(key);
    if (entry === undefined) return false;
    clearTimeout(entry.timer);
    this.#outstanding.delete(key);
    entry.onSettled?.(how);
    return true;
  }
}
